#!/usr/bin/env bash
# Drives OpenSC's pkcs11-tool against the module: token set-up, key generation, object
# listing, sign/verify per mechanism (cross-checked with OpenSSL), encryption, objects,
# pkcs11-tool's own --test, --test-ec, --test-fork and --moz-cert, and negative checks.
# Usage: pkcs11-tests/clients/pkcs11-tool.sh   (MODULE=/path/to/module.so to override)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_module
cd "$WORK"
WRONG_PIN=999999

# Inputs shared by the checks below.
head -c 1000 /dev/urandom >data.bin
cp data.bin tampered.bin
printf 'X' >>tampered.bin
openssl dgst -sha256 -binary -out data.sha256 data.bin
openssl dgst -sha384 -binary -out data.sha384 data.bin
# DER DigestInfo prefix for SHA-256 (RFC 8017, section 9.2, note 1).
{
    printf '\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20'
    cat data.sha256
} >data.digestinfo

# ---------------------------------------------------------------------------------------
log "token set-up"
use_token alpha
check_output "--init-token" "Token successfully initialized" \
    p11 --init-token --label alpha --so-pin "$SO_PIN"
check_output "--init-pin" "User PIN successfully initialized" \
    p11 --token-label alpha --init-pin --login --login-type so --so-pin "$SO_PIN" --new-pin "$USER_PIN"
check_output "token is listed as initialized with label alpha" "token label +: alpha" \
    p11 --list-token-slots

log "key generation"
check_output "--keypairgen RSA 2048" "Public Key Object; RSA 2048 bits" \
    p11u --keypairgen --key-type rsa:2048 --id 01 --label rsa2048
check_output "--keypairgen EC P-256" "Public Key Object; EC +EC_POINT 256 bits" \
    p11u --keypairgen --key-type EC:prime256v1 --id 02 --label ec256
check_output "--keypairgen EC P-384" "Public Key Object; EC +EC_POINT 384 bits" \
    p11u --keypairgen --key-type EC:secp384r1 --id 03 --label ec384
check_output "--keypairgen EC P-521" "EC_PARAMS: +06052b81040023" \
    p11u --keypairgen --key-type EC:secp521r1 --id 06 --label ec521
check_output "--keygen AES:32" "Secret Key Object; AES length 32" \
    p11u --keygen --key-type AES:32 --id 04 --label aes256
check_output "--keygen GENERIC:32" "Secret Key Object; Generic secret length 32" \
    p11u --keygen --key-type GENERIC:32 --id 05 --label hmac256

# object_listed FILE HEADER_REGEX LABEL: FILE (a --list-objects output) holds an object
# whose first line matches HEADER_REGEX and whose label is LABEL.
object_listed() {
    awk -v hdr="$2" -v label="$3" '
        /^[^ \t]/ { inobj = ($0 ~ hdr) }
        inobj && $1 == "label:" { $1 = ""; sub(/^ +/, ""); if ($0 == label) found = 1 }
        END { exit !found }' "$1"
}
list_objects_to() { p11u --list-objects >"$1" 2>&1; }
check "--list-objects (logged in)" list_objects_to objects.txt
for spec in \
    "Private Key Object; RSA|rsa2048" \
    "Public Key Object; RSA 2048 bits|rsa2048" \
    "Private Key Object; EC|ec256" \
    "Public Key Object; EC +EC_POINT 256 bits|ec256" \
    "Private Key Object; EC|ec384" \
    "Public Key Object; EC +EC_POINT 384 bits|ec384" \
    "Public Key Object; EC |ec521" \
    "Secret Key Object; AES length 32|aes256" \
    "Secret Key Object; Generic secret length 32|hmac256"; do
    check "--list-objects shows '${spec%%|*}' labelled ${spec##*|}" \
        object_listed objects.txt "^${spec%%|*}" "${spec##*|}"
done

public_only() {
    p11 --token-label alpha --list-objects >public.txt 2>&1
    cat public.txt
    grep -q "^Public Key Object; EC" public.txt
    not grep -q "^Private Key Object" public.txt
}
check "--list-objects without login shows public keys but no private key" public_only

# ---------------------------------------------------------------------------------------
log "signatures, each verified by pkcs11-tool and by OpenSSL with the exported public key"
check "--read-object --type pubkey (RSA 2048) gives a key OpenSSL reads" export_pubkey rsa2048 rsa2048.pem
check "--read-object --type pubkey (P-256) gives a key OpenSSL reads" export_pubkey ec256 ec256.pem
# pkcs11-tool 0.23 --read-object cannot convert any P-384 public key ("cannot create
# EVP_PKEY", seen with SoftHSM too); build the key from CKA_EC_PARAMS/CKA_EC_POINT instead.
check "P-384 public key from CKA_EC_PARAMS and CKA_EC_POINT is one OpenSSL reads" \
    ec_pubkey_from_attributes ec384 ec384.pem
check "--read-object --type pubkey (P-521) gives a key OpenSSL reads" export_pubkey ec521 ec521.pem
check_output "exported P-256 key is on prime256v1" "prime256v1|P-256" \
    openssl pkey -pubin -in ec256.pem -noout -text
check_output "exported RSA key has a 2048-bit modulus" "Public-Key: \(2048 bit\)" \
    openssl pkey -pubin -in rsa2048.pem -noout -text

# sign_verify NAME KEYLABEL INPUT OPENSSL_VERIFY... -- PKCS11_ARGS...
# Signs INPUT with the token, verifies with pkcs11-tool --verify (must say "Signature is
# valid") and then runs the OpenSSL verification command, which reads sig.<NAME>.
p11_sign() { # p11_sign OUT INPUT ARGS...
    local out=$1 in=$2
    shift 2
    p11u --sign "$@" -i "$in" -o "$out"
    test -s "$out"
}
p11_verify() { # p11_verify SIG INPUT ARGS...
    local sig=$1 in=$2
    shift 2
    p11u --verify "$@" -i "$in" --signature-file "$sig"
}
# verify_rejects SIG INPUT ARGS...: pkcs11-tool 0.23 exits 0 even for a bad signature, so
# judge by what it prints: CKR_SIGNATURE_INVALID reported, never "Signature is valid".
verify_rejects() {
    local sig=$1 in=$2 out
    shift 2
    test -s "$sig"
    out=$(p11u --verify "$@" -i "$in" --signature-file "$sig" 2>&1) && rc=0 || rc=$?
    printf '%s\n(exit status %s)\n' "$out" "$rc"
    grep -Eq "^Invalid signature|CKR_SIGNATURE_INVALID" <<<"$out"
    not grep -q "Signature is valid" <<<"$out"
}

# ECDSA with hashing in the token (CKM_ECDSA_SHA256), P-256.
check "sign ECDSA-SHA256 (P-256)" p11_sign sig.ecdsa-sha256 data.bin --id 02 -m ECDSA-SHA256
check_output "pkcs11-tool --verify ECDSA-SHA256 (P-256)" "Signature is valid" \
    p11_verify sig.ecdsa-sha256 data.bin --id 02 -m ECDSA-SHA256
check "sign ECDSA-SHA256 (P-256) in OpenSSL format" \
    p11_sign sig.ecdsa-sha256.der data.bin --id 02 -m ECDSA-SHA256 --signature-format openssl
check_output "openssl verifies ECDSA-SHA256 (P-256)" "^Verified OK" \
    t openssl dgst -sha256 -verify ec256.pem -signature sig.ecdsa-sha256.der data.bin
check "pkcs11-tool --verify rejects ECDSA-SHA256 over tampered data" \
    verify_rejects sig.ecdsa-sha256 tampered.bin --id 02 -m ECDSA-SHA256

# Raw CKM_ECDSA over a SHA-256 digest computed outside the token.
check "sign ECDSA (raw, P-256)" p11_sign sig.ecdsa data.sha256 --id 02 -m ECDSA
check_output "pkcs11-tool --verify ECDSA (raw, P-256)" "Signature is valid" \
    p11_verify sig.ecdsa data.sha256 --id 02 -m ECDSA
check "sign ECDSA (raw, P-256) in OpenSSL format" \
    p11_sign sig.ecdsa.der data.sha256 --id 02 -m ECDSA --signature-format openssl
check_output "openssl verifies ECDSA (raw, P-256) over the digest" "Signature Verified Successfully" \
    t openssl pkeyutl -verify -pubin -inkey ec256.pem -in data.sha256 -sigfile sig.ecdsa.der
check_output "openssl dgst verifies ECDSA (raw, P-256) over the message" "^Verified OK" \
    t openssl dgst -sha256 -verify ec256.pem -signature sig.ecdsa.der data.bin

# P-384 and P-521.
check "sign ECDSA-SHA384 (P-384) in OpenSSL format" \
    p11_sign sig.ecdsa384.der data.bin --id 03 -m ECDSA-SHA384 --signature-format openssl
check_output "openssl verifies ECDSA-SHA384 (P-384)" "^Verified OK" \
    t openssl dgst -sha384 -verify ec384.pem -signature sig.ecdsa384.der data.bin
check "sign ECDSA (raw, P-384) over a SHA-384 digest" p11_sign sig.ecdsa384 data.sha384 --id 03 -m ECDSA
check_output "pkcs11-tool --verify ECDSA (raw, P-384)" "Signature is valid" \
    p11_verify sig.ecdsa384 data.sha384 --id 03 -m ECDSA
check "sign ECDSA-SHA512 (P-521) in OpenSSL format" \
    p11_sign sig.ecdsa521.der data.bin --id 06 -m ECDSA-SHA512 --signature-format openssl
check_output "openssl verifies ECDSA-SHA512 (P-521)" "^Verified OK" \
    t openssl dgst -sha512 -verify ec521.pem -signature sig.ecdsa521.der data.bin

# RSA PKCS#1 v1.5.
check "sign SHA256-RSA-PKCS" p11_sign sig.rsa-sha256 data.bin --id 01 -m SHA256-RSA-PKCS
check_output "pkcs11-tool --verify SHA256-RSA-PKCS" "Signature is valid" \
    p11_verify sig.rsa-sha256 data.bin --id 01 -m SHA256-RSA-PKCS
check_output "openssl verifies SHA256-RSA-PKCS" "^Verified OK" \
    t openssl dgst -sha256 -verify rsa2048.pem -signature sig.rsa-sha256 data.bin
check "sign RSA-PKCS (raw, over a DigestInfo)" p11_sign sig.rsa-pkcs data.digestinfo --id 01 -m RSA-PKCS
check_output "pkcs11-tool --verify RSA-PKCS (raw)" "Signature is valid" \
    p11_verify sig.rsa-pkcs data.digestinfo --id 01 -m RSA-PKCS
check_output "openssl verifies RSA-PKCS (raw) as a SHA-256 signature of the message" "^Verified OK" \
    t openssl dgst -sha256 -verify rsa2048.pem -signature sig.rsa-pkcs data.bin
check "RSA-PKCS over the DigestInfo equals SHA256-RSA-PKCS (deterministic padding)" \
    cmp sig.rsa-pkcs sig.rsa-sha256
check "pkcs11-tool --verify rejects SHA256-RSA-PKCS over tampered data" \
    verify_rejects sig.rsa-sha256 tampered.bin --id 01 -m SHA256-RSA-PKCS

# RSA-PSS, salt length = hash length.
check "sign SHA256-RSA-PKCS-PSS --salt-len -1" \
    p11_sign sig.pss-sha256 data.bin --id 01 -m SHA256-RSA-PKCS-PSS --salt-len -1
check_output "pkcs11-tool --verify SHA256-RSA-PKCS-PSS" "Signature is valid" \
    p11_verify sig.pss-sha256 data.bin --id 01 -m SHA256-RSA-PKCS-PSS --salt-len -1
check_output "openssl verifies SHA256-RSA-PKCS-PSS (salt = 32)" "^Verified OK" \
    t openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
    -verify rsa2048.pem -signature sig.pss-sha256 data.bin
check "sign RSA-PKCS-PSS (raw, SHA-256 digest, MGF1-SHA256, --salt-len -1)" \
    p11_sign sig.pss data.sha256 --id 01 -m RSA-PKCS-PSS --hash-algorithm SHA256 \
    --mgf MGF1-SHA256 --salt-len -1
check_output "pkcs11-tool --verify RSA-PKCS-PSS (raw)" "Signature is valid" \
    p11_verify sig.pss data.sha256 --id 01 -m RSA-PKCS-PSS --hash-algorithm SHA256 \
    --mgf MGF1-SHA256 --salt-len -1
check_output "openssl verifies RSA-PKCS-PSS (raw) over the message" "^Verified OK" \
    t openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
    -verify rsa2048.pem -signature sig.pss data.bin
check "SHA384-RSA-PKCS-PSS sign" \
    p11_sign sig.pss-sha384 data.bin --id 01 -m SHA384-RSA-PKCS-PSS --salt-len -1
check_output "openssl verifies SHA384-RSA-PKCS-PSS (salt = 48)" "^Verified OK" \
    t openssl dgst -sha384 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:48 \
    -sigopt rsa_mgf1_md:sha384 -verify rsa2048.pem -signature sig.pss-sha384 data.bin

# HMAC with a generated generic secret: two signatures over the same data agree, and
# one over different data does not.
hmac_consistent() {
    p11u --sign -m SHA256-HMAC --id 05 -i data.bin -o mac1
    p11u --sign -m SHA256-HMAC --id 05 -i data.bin -o mac2
    p11u --sign -m SHA256-HMAC --id 05 -i tampered.bin -o mac3
    test "$(stat -c %s mac1)" = 32
    cmp mac1 mac2
    not cmp -s mac1 mac3
}
check "SHA256-HMAC is 32 bytes, deterministic and input-dependent" hmac_consistent

# ---------------------------------------------------------------------------------------
log "encryption, digests, random"
rsa_decrypt() { # rsa_decrypt PKCS11_MECH_ARGS -- OPENSSL_PKEYUTL_OPTS
    local p11args=() oargs=()
    while [[ $1 != -- ]]; do p11args+=("$1"); shift; done
    shift
    oargs=("$@")
    printf 'attack at dawn' >plain.txt
    openssl pkeyutl -encrypt -pubin -inkey rsa2048.pem "${oargs[@]}" -in plain.txt -out cipher.bin
    p11u --decrypt --id 01 "${p11args[@]}" -i cipher.bin -o decrypted.txt
    cmp plain.txt decrypted.txt
}
check "decrypt RSA-PKCS of an OpenSSL ciphertext" \
    rsa_decrypt -m RSA-PKCS -- -pkeyopt rsa_padding_mode:pkcs1
check "decrypt RSA-PKCS-OAEP SHA-1 of an OpenSSL ciphertext" \
    rsa_decrypt -m RSA-PKCS-OAEP --hash-algorithm SHA-1 --mgf MGF1-SHA1 -- \
    -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1
check "decrypt RSA-PKCS-OAEP SHA-256 of an OpenSSL ciphertext" \
    rsa_decrypt -m RSA-PKCS-OAEP --hash-algorithm SHA256 --mgf MGF1-SHA256 -- \
    -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256

aes_roundtrip() { # aes_roundtrip MECH [--iv HEX]
    local mech=$1
    shift
    head -c 100 /dev/urandom >aes.plain
    p11u --encrypt --id 04 -m "$mech" "$@" -i aes.plain -o aes.cipher
    not cmp -s aes.plain aes.cipher
    p11u --decrypt --id 04 -m "$mech" "$@" -i aes.cipher -o aes.decrypted
    cmp aes.plain aes.decrypted
}
check "AES-CBC-PAD encrypt/decrypt round trip" aes_roundtrip AES-CBC-PAD --iv 000102030405060708090a0b0c0d0e0f

digest_matches() { # digest_matches MECH OPENSSL_NAME
    p11 --token-label alpha --hash -m "$1" -i data.bin -o "digest.$1"
    openssl dgst "-$2" -binary -out "digest.$1.ref" data.bin
    cmp "digest.$1" "digest.$1.ref"
}
check "--hash SHA-1 matches OpenSSL" digest_matches SHA-1 sha1
check "--hash SHA256 matches OpenSSL" digest_matches SHA256 sha256
check "--hash SHA384 matches OpenSSL" digest_matches SHA384 sha384
check "--hash SHA512 matches OpenSSL" digest_matches SHA512 sha512

random_ok() {
    p11 --token-label alpha --generate-random 64 -o rnd1
    p11 --token-label alpha --generate-random 64 -o rnd2
    test "$(stat -c %s rnd1)" = 64
    not cmp -s rnd1 rnd2
}
check "--generate-random gives 64 fresh bytes each time" random_ok

# ---------------------------------------------------------------------------------------
log "objects created by the client (C_CreateObject)"
cert_roundtrip() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout sw.key \
        -subj /CN=hsmux-test -days 1 -outform DER -out sw.der
    p11u --write-object sw.der --type cert --id 0a --label swcert
    p11u --read-object --type cert --label swcert -o sw.read.der
    cmp sw.der sw.read.der
}
check "--write-object certificate, read back identical" cert_roundtrip
data_roundtrip() {
    head -c 300 /dev/urandom >blob.bin
    p11u --write-object blob.bin --type data --label blob
    p11u --read-object --type data --label blob -o blob.read
    cmp blob.bin blob.read
}
check "--write-object data object, read back identical" data_roundtrip

# Keys made outside the token and imported with C_CreateObject: the token's results must
# equal OpenSSL's with the same key material.
openssl rand -out imported-aes.key 32
IMPORTED_AES_HEX=$(od -An -tx1 imported-aes.key | tr -d ' \n')
IV=000102030405060708090a0b0c0d0e0f
head -c 96 /dev/urandom >aes96.plain
check_output "--write-object --type secrkey --key-type AES:32 (import)" "Secret Key Object; AES length 32" \
    p11u --write-object imported-aes.key --type secrkey --key-type AES:32 --id 07 --label impaes
aes_matches_openssl() { # aes_matches_openssl PKCS11_MECH OPENSSL_CIPHER [openssl enc args]
    local mech=$1 cipher=$2
    shift 2
    p11u --encrypt --id 07 -m "$mech" --iv "$IV" -i aes96.plain -o "aes96.$mech"
    openssl enc "-$cipher" -K "$IMPORTED_AES_HEX" "$@" -in aes96.plain -out "aes96.$mech.ref"
    cmp "aes96.$mech" "aes96.$mech.ref"
}
check "AES-CBC-PAD ciphertext of the imported key equals OpenSSL's" \
    aes_matches_openssl AES-CBC-PAD aes-256-cbc -iv "$IV"
check "AES-CBC ciphertext of the imported key equals OpenSSL's" \
    aes_matches_openssl AES-CBC aes-256-cbc -iv "$IV" -nopad
check "AES-ECB ciphertext of the imported key equals OpenSSL's" \
    aes_matches_openssl AES-ECB aes-256-ecb -nopad
aes_decrypts_openssl() {
    openssl enc -aes-256-cbc -K "$IMPORTED_AES_HEX" -iv "$IV" -in data.bin -out data.aes
    p11u --decrypt --id 07 -m AES-CBC-PAD --iv "$IV" -i data.aes -o data.aes.dec
    cmp data.bin data.aes.dec
}
check "AES-CBC-PAD decrypts an OpenSSL ciphertext (imported key)" aes_decrypts_openssl

imported_keypair() { # imported_keypair ALG_ARGS ID MECH OPENSSL_DGST_ARGS...
    local genargs=$1 id=$2 mech=$3
    shift 3
    # shellcheck disable=SC2086 # genargs holds several words on purpose
    openssl genpkey $genargs -out "imported-$id.key" 2>/dev/null
    openssl pkey -in "imported-$id.key" -pubout -out "imported-$id.pub"
    p11u --write-object "imported-$id.key" --type privkey --id "$id" --label "imported-$id"
    p11u --write-object "imported-$id.pub" --type pubkey --id "$id" --label "imported-$id"
    p11u --sign --id "$id" -m "$mech" --signature-format openssl -i data.bin -o "imported-$id.sig"
    openssl dgst "$@" -verify "imported-$id.pub" -signature "imported-$id.sig" data.bin
    p11u --verify --id "$id" -m "$mech" --signature-format openssl -i data.bin \
        --signature-file "imported-$id.sig" >"imported-$id.verify" 2>&1
    must_match "imported-$id.verify" "^Signature is valid"
}
check "imported EC P-256 key pair: token signs (ECDSA-SHA256), OpenSSL and token verify" \
    imported_keypair "-algorithm EC -pkeyopt ec_paramgen_curve:P-256" 11 ECDSA-SHA256 -sha256
check "imported RSA 2048 key pair: token signs (SHA256-RSA-PKCS), OpenSSL and token verify" \
    imported_keypair "-algorithm RSA -pkeyopt rsa_keygen_bits:2048" 12 SHA256-RSA-PKCS -sha256

delete_key() {
    p11u --keypairgen --key-type EC:prime256v1 --id 0d --label doomed
    p11u --delete-object --type privkey --label doomed
    p11u --delete-object --type pubkey --label doomed
    p11u --list-objects >after-delete.txt
    not grep -q "label: *doomed$" after-delete.txt
}
check "--delete-object removes a key pair" delete_key

# ---------------------------------------------------------------------------------------
log "negative checks"
check_fails "wrong user PIN is refused with CKR_PIN_INCORRECT" "CKR_PIN_INCORRECT" \
    p11 --token-label alpha --login --pin "$WRONG_PIN" --list-objects
check_fails "wrong SO PIN is refused with CKR_PIN_INCORRECT" "CKR_PIN_INCORRECT" \
    p11 --token-label alpha --login --login-type so --so-pin 87654321 --init-pin --new-pin 111111
check_output "right user PIN still logs in after the wrong ones" "^Private Key Object; EC" \
    p11u --list-objects --type privkey

# ---------------------------------------------------------------------------------------
log "pkcs11-tool --test-ec, --test-fork, --moz-cert"
# test_ec CURVE: --test-ec generates a key pair, changes its CKA_ID, signs with
# CKM_ECDSA_SHA1 (with a CKR_BUFFER_TOO_SMALL round) and deletes it again.
test_ec() {
    p11u --test-ec --session-rw --id 0e --key-type "EC:$1" >test-ec.out 2>&1 && rc=0 || rc=$?
    cat test-ec.out
    test "$rc" = 0
    grep -q "^==> OK" test-ec.out
    not grep -Eq "ERR|error|warning" test-ec.out
}
check "--test-ec --session-rw with P-256 (no error or warning)" test_ec prime256v1
check "--test-ec --session-rw with P-384 (no error or warning)" test_ec secp384r1

test_fork() {
    p11 --test-fork >test-fork.out 2>&1 && rc=0 || rc=$?
    cat test-fork.out
    test "$rc" = 0
    grep -q "Calling C_Initialize in forked child process" test-fork.out
    not grep -Eq "error|Aborting" test-fork.out
}
check "--test-fork (C_Initialize in a forked child succeeds)" test_fork

moz_cert() {
    p11u --moz-cert sw.der --session-rw --id 0c --key-type rsa:2048 >moz.out 2>&1 && rc=0 || rc=$?
    cat moz.out
    test "$rc" = 0
    grep -q "==> OK, successful" moz.out
}
check "--moz-cert --session-rw (NSS-style key generation and certificate write)" moz_cert

# ---------------------------------------------------------------------------------------
log "pkcs11-tool --test --allow-sw on a token holding only RSA keys"
# pkcs11-tool --test only exercises RSA private keys; a token with nothing else makes
# every line it prints meaningful: any "skipping", "not implemented", "ERR" or error is
# a failure. Each sub-test it reports becomes a check of its own.
init_token_rsa() {
    p11 --init-token --label rsatest --so-pin "$SO_PIN"
    p11 --token-label rsatest --init-pin --login --login-type so --so-pin "$SO_PIN" --new-pin "$USER_PIN"
    p11u --keypairgen --key-type rsa:2048 --id 01 --label rsa2048
    p11u --keypairgen --key-type rsa:3072 --id 02 --label rsa3072
}
use_token rsatest
check "token rsatest with RSA 2048 and RSA 3072 keys" init_token_rsa

run_test() {
    set +e
    p11 --token-label rsatest --login --pin "$USER_PIN" --test --allow-sw >test.stdout 2>test.stderr
    echo $? >test.rc
    set -e
    echo "--- stdout"
    cat test.stdout
    echo "--- stderr"
    cat test.stderr
}
run_logged run_test
cp "$CHECK_LOG" test.log
test_rc=$(cat test.rc 2>/dev/null || echo missing)

# Lines that pkcs11-tool prints for every mechanism that merely is not a decryption
# mechanism, and C_SeedRandom being unsupported (the spec allows a module to refuse
# seeding), are notes rather than skipped tests. Everything else below counts.
bad_lines() {
    grep -Ev '^No errors$|^ -- mechanism can.t be used to decrypt, skipping$|^  seeding \(C_SeedRandom\) not supported$' \
        test.stdout test.stderr | grep -E 'skipping|skipped|not implemented|not supported|ERR|[Ee]rror|Aborting|returning|doesn.t match|[Ff]ailed|[Ww]arning'
}
no_bad_lines() { not bad_lines; }
check "--test exits 0" test "$test_rc" = 0
check_output "--test reports 'No errors'" "^No errors$" cat test.stdout
check "--test prints no skipped, not-implemented, error or warning line" no_bad_lines

# Split its stdout into (section, sub-test, result) and make one check per sub-test.
# A sub-test line is "    NAME: ..." (4 spaces) possibly continued on following
# unindented lines (OAEP prints its parameters before "OK").
awk '
    function flush() { if (name != "") printf "%s\t%s\t%s\n", section, name, result; name = "" }
    /^(C_SeedRandom|Digests|Signatures|Verify|Decryption)/ { flush(); section = $1; next }
    /^  all 4 (digest|signature) functions seem to work$/ { flush(); print section "\tall 4 functions\tOK"; next }
    /^  seems to be OK$/ { flush(); print section "\tC_GenerateRandom\tOK"; next }
    /^    [A-Za-z0-9-]+: / { flush(); name = $1; sub(/:$/, "", name); r = $0; sub(/^    [A-Za-z0-9-]+: /, "", r); result = r; next }
    /^  [A-Z0-9-]+: / { flush(); name = $1; sub(/:$/, "", name); r = $0; sub(/^  [A-Z0-9-]+: /, "", r); result = r; next }
    /^ / { flush(); next }
    name != "" { result = result " " $0 }
    END { flush() }' test.stdout >subtests.tsv

subtest_ok() { # subtest_ok SECTION NAME: the sub-test is reported and its result ends in OK
    awk -F'\t' -v s="$1" -v n="$2" '$1 == s && $2 == n { found = 1; if ($3 !~ /(^| )OK$/) bad = 1 }
        END { exit !(found && !bad) }' subtests.tsv
}
# Sub-tests that must be there, whatever the order in which the module lists things.
expected=(
    "C_SeedRandom()|C_GenerateRandom"
    "Digests:|all 4 functions"
    "Digests:|SHA-1"
    "Signatures|all 4 functions"
    "Signatures|RSA-X-509"
    "Signatures|RSA-PKCS"
    "Signatures|SHA1-RSA-PKCS"
    "Signatures|SHA256-RSA-PKCS"
    "Verify|RSA-X-509"
    "Verify|RSA-PKCS"
    "Verify|SHA1-RSA-PKCS"
    "Decryption|RSA-PKCS"
    "Decryption|RSA-PKCS-OAEP"
    "Decryption|RSA-X-509"
)
declare -A seen=()
for e in "${expected[@]}"; do seen[$e]=1; done
# Anything else it reported (e.g. SHA256 digest, MD5 variants where offered) is checked too.
while IFS=$'\t' read -r section name _; do
    [[ -n ${seen["$section|$name"]:-} ]] && continue
    seen["$section|$name"]=1
    expected+=("$section|$name")
done <subtests.tsv
for e in "${expected[@]}"; do
    check "--test ${e%%|*} ${e##*|}" subtest_ok "${e%%|*}" "${e##*|}"
done

finish
