#!/usr/bin/env bash
# An aws-kms token (KMS keys behind the module) against LocalStack playing AWS KMS on
# 127.0.0.1: keys made with boto3 listed by pkcs11-tool; ECDSA, RSA PKCS#1 and PSS
# signatures made through the OpenSSL engine verified with the public key boto3's
# GetPublicKey returns; a TLS 1.3 s_server whose key is in KMS; --keypairgen visible in
# ListAliases; --delete-object scheduling the deletion; OAEP decryption; HMAC round trip.
# Every signature or decryption must cost exactly one KMS request (counted in
# LocalStack's request log).
# Usage: pkcs11-tests/clients/aws-kms.sh   (MODULE=/path/to/module.so to override)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_module
cd "$WORK"

ENGINE_SO=$(dpkg -L libengine-pkcs11-openssl 2>/dev/null | grep -m1 '/engines-3/pkcs11\.so$' || echo "")
if [[ -n $ENGINE_SO && -f $ENGINE_SO ]]; then
    pass "libengine-pkcs11-openssl provides $ENGINE_SO"
else
    fail "libengine-pkcs11-openssl is installed (dpkg -L libengine-pkcs11-openssl)"
    finish
    exit 1
fi

# ---------------------------------------------------------------------------------------
log "LocalStack (KMS only, no Docker) on 127.0.0.1"
# Its own instance, stopped by PID when this script ends (lib.sh's cleanup trap).
export HSMUX_LOCALSTACK_STATE=$WORK/localstack
LOCALSTACK=$REPO_ROOT/scripts/localstack.sh
start_localstack() {
    local t0 rc=0
    t0=$(date +%s)
    timeout 600 "$LOCALSTACK" start || rc=$?
    if [[ -f $HSMUX_LOCALSTACK_STATE/pid ]]; then track_pid "$(cat "$HSMUX_LOCALSTACK_STATE/pid")"; fi
    echo "install + start: $(($(date +%s) - t0)) s"
    return "$rc"
}
run_logged start_localstack
if [[ $CHECK_RC == 0 ]]; then
    pass "LocalStack KMS answers ($(grep -Eo '[0-9]+ s' "$CHECK_LOG" | tail -1) including any install)"
    grep -E '^localstack.sh: (installed|KMS answers)' "$CHECK_LOG" | sed 's/^/      /'
else
    fail "LocalStack KMS starts (scripts/localstack.sh start)" "$CHECK_LOG"
    finish
    exit 1
fi
eval "$("$LOCALSTACK" env)"
KMS_LOG=$HSMUX_LOCALSTACK_STATE/localstack.log

# kpy SCRIPT: Python with boto3, `kms` a client of LocalStack.
kpy() {
    t "$HSMUX_TEST_KMS_PYTHON" -c "import base64, json, os, sys, boto3
kms = boto3.client('kms', endpoint_url=os.environ['HSMUX_TEST_KMS_ENDPOINT'], region_name='us-east-1')
def aliases():
    return [a for p in kms.get_paginator('list_aliases').paginate() for a in p['Aliases']]
$1"
}

export HSMUX_KMS_TEST_PIN=$USER_PIN
export HSMUX_CONFIG=$WORK/hsmux.toml
cat >"$HSMUX_CONFIG" <<EOF
[[token]]
label = "kms"
backend = "aws-kms"
region = "us-east-1"
endpoint = "$HSMUX_TEST_KMS_ENDPOINT"
pin = "env:HSMUX_KMS_TEST_PIN"
deletion_window_days = 7
timeout_ms = 20000
EOF
TOKEN=kms

# ---------------------------------------------------------------------------------------
log "keys made with boto3, outside hsmux"
make_boto_keys() {
    kpy "
for alias, spec, usage in [('boto-ec', 'ECC_NIST_P256', 'SIGN_VERIFY'),
                           ('boto-ec384', 'ECC_NIST_P384', 'SIGN_VERIFY'),
                           ('boto-rsa', 'RSA_2048', 'SIGN_VERIFY'),
                           ('boto-oaep', 'RSA_2048', 'ENCRYPT_DECRYPT'),
                           ('boto-hmac', 'HMAC_256', 'GENERATE_VERIFY_MAC'),
                           ('boto-sym', 'SYMMETRIC_DEFAULT', 'ENCRYPT_DECRYPT')]:
    kid = kms.create_key(KeySpec=spec, KeyUsage=usage)['KeyMetadata']['KeyId']
    kms.create_alias(AliasName='alias/' + alias, TargetKeyId=kid)
    if spec.startswith(('ECC', 'RSA')):
        open(alias + '.der', 'wb').write(kms.get_public_key(KeyId=kid)['PublicKey'])
    print(alias, kid)
"
    for k in boto-ec boto-ec384 boto-rsa boto-oaep; do
        openssl pkey -pubin -inform DER -in "$k.der" -out "$k.pem"
    done
}
check "boto3 creates EC P-256/P-384, RSA sign, RSA decrypt, HMAC and symmetric keys" make_boto_keys

check_output "pkcs11-tool -L shows the aws-kms token" "token model +: aws-kms" p11 -L
list_objects() {
    p11 --token-label kms --login --pin "$USER_PIN" --list-objects >objects.txt
    cat objects.txt
    for l in boto-ec boto-ec384 boto-rsa boto-oaep boto-hmac boto-sym; do must_match objects.txt "label: +$l\$"; done
    must_match objects.txt '^Private Key Object; EC'
    must_match objects.txt '^Public Key Object; EC +EC_POINT 256 bits'
    must_match objects.txt '^Public Key Object; RSA 2048 bits'
    must_match objects.txt '^Secret Key Object'
}
check "boto3's keys are in pkcs11-tool --list-objects (private, public, secret)" list_objects
# pkcs11-tool picks the key of --sign/--decrypt by --id (it ignores --label there):
# object_id LABEL prints the CKA_ID of the objects labelled LABEL.
object_id() {
    p11 --token-label kms --login --pin "$USER_PIN" --list-objects |
        awk -v l="$1" '$1 == "label:" { cur = $2 } $1 == "ID:" && cur == l { print $2; exit }'
}
same_public_key() { # LABEL: the token's public-key object is boto3's GetPublicKey
    p11 --token-label kms --read-object --type pubkey --id "$(object_id "$1")" -o "$1.token.der"
    cmp "$1.token.der" "$1.der"
}
check "the EC public-key object is GetPublicKey's key" same_public_key boto-ec
check "the RSA public-key object is GetPublicKey's key" same_public_key boto-rsa
check_fails "a wrong PIN is refused (CKR_PIN_INCORRECT)" "CKR_PIN_INCORRECT" \
    p11 --token-label kms --login --pin 000000 --list-objects

# ---------------------------------------------------------------------------------------
# kms_requests OP: KMS requests of this operation LocalStack has logged so far.
kms_requests() { grep -c "AWS kms\.$1 " "$KMS_LOG" || true; }
# one_request NAME OP CMD...: CMD (a check body) sends exactly one OP request.
one_request() {
    local name=$1 op=$2 before after all_before all_after i
    shift 2
    before=$(kms_requests "$op")
    all_before=$(grep -c 'AWS kms\.' "$KMS_LOG" || true)
    "$@"
    # LocalStack logs a request just after answering it: give the line a moment.
    for i in $(seq 1 20); do
        after=$(kms_requests "$op")
        ((after > before)) && break
        sleep 0.1
    done
    sleep 0.2
    after=$(kms_requests "$op")
    all_after=$(grep -c 'AWS kms\.' "$KMS_LOG" || true)
    : "$i"
    echo "KMS $op requests: $((after - before)) (all requests of the process, listing included: $((all_after - all_before)))"
    echo "$name: $((after - before))" >>"$WORK/requests.txt"
    test $((after - before)) = 1
}

log "signatures through the OpenSSL engine, verified with boto3's public keys"
write_openssl_conf() {
    cat >"$1" <<EOF
openssl_conf = openssl_init

[openssl_init]
engines = engine_section

[engine_section]
pkcs11 = pkcs11_section

[pkcs11_section]
engine_id = pkcs11
dynamic_path = $ENGINE_SO
MODULE_PATH = $MODULE
PIN = $USER_PIN
init = 0
EOF
}
write_openssl_conf openssl.cnf
export OPENSSL_CONF=$WORK/openssl.cnf
plain_openssl() { t env -u OPENSSL_CONF openssl "$@"; }
eng_sign() { # eng_sign URI OUT DGST-ARGS...
    local uri=$1 out=$2
    shift 2
    t openssl dgst -engine pkcs11 -keyform engine -sign "$uri" -out "$out" "$@" data.bin
}
head -c 3000 /dev/urandom >data.bin
cp data.bin tampered.bin
printf 'X' >>tampered.bin

EC_URI="pkcs11:token=kms;object=boto-ec;type=private"
EC384_URI="pkcs11:token=kms;object=boto-ec384;type=private"
RSA_URI="pkcs11:token=kms;object=boto-rsa;type=private"

ecdsa_sign_verify() {
    one_request "ECDSA P-256 (OpenSSL engine)" Sign eng_sign "$EC_URI" ec.sig -sha256
    plain_openssl dgst -sha256 -verify boto-ec.pem -signature ec.sig data.bin
    not plain_openssl dgst -sha256 -verify boto-ec.pem -signature ec.sig tampered.bin
}
check_output "ECDSA P-256 SHA-256 by URI verifies with GetPublicKey's key (1 Sign request)" \
    "^Verified OK" ecdsa_sign_verify
ecdsa384_sign_verify() {
    one_request "ECDSA P-384 (OpenSSL engine)" Sign eng_sign "$EC384_URI" ec384.sig -sha384
    plain_openssl dgst -sha384 -verify boto-ec384.pem -signature ec384.sig data.bin
}
check_output "ECDSA P-384 SHA-384 by URI verifies (1 Sign request)" "^Verified OK" ecdsa384_sign_verify
pkcs1_sign_verify() {
    one_request "RSA PKCS#1 v1.5 (OpenSSL engine)" Sign eng_sign "$RSA_URI" rsa.sig -sha256
    plain_openssl dgst -sha256 -verify boto-rsa.pem -signature rsa.sig data.bin
    not plain_openssl dgst -sha256 -verify boto-rsa.pem -signature rsa.sig tampered.bin
}
check_output "RSA PKCS#1 v1.5 SHA-256 by URI verifies (1 Sign request)" "^Verified OK" pkcs1_sign_verify
pkcs1_512_sign_verify() {
    one_request "RSA PKCS#1 v1.5 SHA-512 (OpenSSL engine)" Sign eng_sign "$RSA_URI" rsa512.sig -sha512
    plain_openssl dgst -sha512 -verify boto-rsa.pem -signature rsa512.sig data.bin
}
check_output "RSA PKCS#1 v1.5 SHA-512 by URI verifies (1 Sign request)" "^Verified OK" pkcs1_512_sign_verify
pss_sign_verify() {
    one_request "RSA-PSS (OpenSSL engine)" Sign eng_sign "$RSA_URI" pss.sig -sha256 \
        -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-1
    plain_openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
        -verify boto-rsa.pem -signature pss.sig data.bin
    not plain_openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
        -verify boto-rsa.pem -signature pss.sig tampered.bin
}
check_output "RSA-PSS SHA-256 (salt 32) by URI verifies (1 Sign request)" "^Verified OK" pss_sign_verify
check_fails "PSS with a salt other than the hash length: CKR_MECHANISM_PARAM_INVALID" \
    "CKR_MECHANISM_PARAM_INVALID" \
    p11 --token-label kms --login --pin "$USER_PIN" --sign -m SHA256-RSA-PKCS-PSS \
    --salt-len 20 --id "$(object_id boto-rsa)" \
    -i data.bin -o bad.sig

# ---------------------------------------------------------------------------------------
log "TLS 1.3 server whose key is in KMS"
make_cert() { # make_cert URI OUT [req args]: self-signed, signed in KMS
    local uri=$1 out=$2
    shift 2
    t openssl req -engine pkcs11 -new -x509 -keyform engine -key "$uri" -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost -days 2 -sha256 "$@" -out "$out"
    plain_openssl verify -CAfile "$out" "$out"
}
check_output "self-signed EC certificate signed in KMS verifies" "ec-cert.pem: OK" \
    make_cert "$EC_URI" ec-cert.pem
check_output "self-signed RSA certificate signed in KMS verifies" "rsa-cert.pem: OK" \
    make_cert "$RSA_URI" rsa-cert.pem
tls_handshake() { # tls_handshake URI CERT PEER_SIG_TYPE
    local uri=$1 cert=$2 sigtype=$3 port pid srv_rc
    rm -f client.log
    serve server.log timeout 60 openssl s_server -engine pkcs11 -keyform engine -key "$uri" \
        -cert "$cert" -accept '127.0.0.1:{PORT}' -naccept 1 -www || :
    pid=${SERVE_PID:-} port=${SERVE_PORT:-}
    # shellcheck disable=SC2064 # expand the PID now: the trap runs after this function
    trap "kill $pid 2>/dev/null || :" EXIT
    must_match server.log '^ACCEPT'
    printf 'GET / HTTP/1.0\r\n\r\n' | env -u OPENSSL_CONF timeout 30 openssl s_client \
        -connect "127.0.0.1:$port" -tls1_3 -CAfile "$cert" -verify_return_error \
        -verify_hostname localhost -servername localhost -ign_eof >client.log 2>&1
    wait "$pid" && srv_rc=0 || srv_rc=$?
    echo "--- server"
    cat server.log
    echo "--- client"
    cat client.log
    test "$srv_rc" = 0
    must_match client.log '^New, TLSv1\.3, Cipher is [A-Z0-9_-]+$'
    must_match client.log '^Verification: OK'
    must_match client.log "^Peer signature type: $sigtype\$"
    must_match client.log '^HTTP/1.0 200 ok'
}
tls_ec() { one_request "TLS 1.3 handshake, ECDSA (s_server)" Sign tls_handshake "$EC_URI" ec-cert.pem ECDSA; }
tls_rsa() { one_request "TLS 1.3 handshake, RSA-PSS (s_server)" Sign tls_handshake "$RSA_URI" rsa-cert.pem RSA-PSS; }
check "TLS 1.3 handshake with the KMS EC key (ECDSA, 1 Sign request)" tls_ec
check "TLS 1.3 handshake with the KMS RSA key (RSA-PSS, 1 Sign request)" tls_rsa

# ---------------------------------------------------------------------------------------
log "decryption and MAC in KMS"
oaep_decrypt() {
    printf 'a session key for the service' >secret.txt
    # LocalStack 2026.3 decrypts OAEP with SHA-256 only (AWS also has SHA-1).
    plain_openssl pkeyutl -encrypt -pubin -inkey boto-oaep.pem -pkeyopt rsa_padding_mode:oaep \
        -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in secret.txt -out secret.oaep
    one_request "RSA-OAEP SHA-256 decrypt (pkcs11-tool)" Decrypt \
        p11 --token-label kms --login --pin "$USER_PIN" --decrypt -m RSA-PKCS-OAEP \
        --hash-algorithm SHA256 --mgf MGF1-SHA256 --id "$(object_id boto-oaep)" \
        -i secret.oaep -o secret.out
    cmp secret.txt secret.out
}
check "RSA-OAEP (SHA-256) decryption of an OpenSSL ciphertext (1 Decrypt request)" oaep_decrypt
hmac_round_trip() {
    local id
    id=$(object_id boto-hmac)
    one_request "HMAC-SHA256 (pkcs11-tool)" GenerateMac \
        p11 --token-label kms --login --pin "$USER_PIN" --sign -m SHA256-HMAC --id "$id" \
        -i data.bin -o mac.bin
    # The same MAC as boto3's GenerateMac, and accepted by its VerifyMac.
    kpy "
kid = [a['TargetKeyId'] for a in aliases() if a['AliasName'] == 'alias/boto-hmac'][0]
msg = open('data.bin', 'rb').read()
mac = open('mac.bin', 'rb').read()
assert kms.generate_mac(KeyId=kid, Message=msg, MacAlgorithm='HMAC_SHA_256')['Mac'] == mac
assert kms.verify_mac(KeyId=kid, Message=msg, Mac=mac, MacAlgorithm='HMAC_SHA_256')['MacValid']
print('boto3 agrees')"
    one_request "HMAC-SHA256 verify (pkcs11-tool)" VerifyMac \
        p11 --token-label kms --login --pin "$USER_PIN" --verify -m SHA256-HMAC --id "$id" \
        -i data.bin --signature-file mac.bin | tee verify.txt
    must_match verify.txt '^Signature is valid'
    # pkcs11-tool exits 0 on a bad signature: read what it says.
    p11 --token-label kms --login --pin "$USER_PIN" --verify -m SHA256-HMAC --id "$id" \
        -i tampered.bin --signature-file mac.bin >tampered.txt 2>&1 || true
    must_match tampered.txt '^Invalid signature'
    must_not_match tampered.txt 'is valid'

}
check_output "HMAC-SHA256 sign/verify round trip, equal to boto3's GenerateMac" "boto3 agrees" \
    hmac_round_trip

# ---------------------------------------------------------------------------------------
log "key life cycle: generate with pkcs11-tool, destroy with pkcs11-tool"
check_output "--keypairgen EC P-256 creates a KMS key" "Public Key Object; EC" \
    p11 --token-label kms --login --pin "$USER_PIN" --keypairgen --key-type EC:prime256v1 --label p11-gen-ec
check_output "--keypairgen RSA 2048 creates a KMS key" "Public Key Object; RSA 2048 bits" \
    p11 --token-label kms --login --pin "$USER_PIN" --keypairgen --key-type rsa:2048 --label p11-gen-rsa
alias_target() { # alias_target NAME: the key id behind alias/NAME (empty when none)
    kpy "print(''.join(a.get('TargetKeyId', '') for a in aliases() if a['AliasName'] == 'alias/$1'))"
}
generated_in_kms() {
    local kid
    kid=$(alias_target p11-gen-ec)
    echo "alias/p11-gen-ec -> $kid"
    [[ -n $kid ]]
    kpy "m = kms.describe_key(KeyId='$kid')['KeyMetadata']; print(m['KeySpec'], m['KeyUsage'], m['KeyState'])"
    echo "$kid" >gen-ec.kid
}
check_output "the generated key is in boto3's ListAliases (ECC_NIST_P256, SIGN_VERIFY)" \
    "^ECC_NIST_P256 SIGN_VERIFY Enabled$" generated_in_kms
gen_sign_verify() {
    p11 --token-label kms --read-object --type pubkey --id "$(object_id p11-gen-ec)" -o gen.der
    openssl pkey -pubin -inform DER -in gen.der -out gen.pem
    one_request "ECDSA with a generated key (pkcs11-tool)" Sign \
        p11 --token-label kms --login --pin "$USER_PIN" --sign -m ECDSA-SHA256 \
        --id "$(object_id p11-gen-ec)" -i data.bin -o gen.sig --signature-format openssl
    plain_openssl dgst -sha256 -verify gen.pem -signature gen.sig data.bin
}
check_output "the generated key signs (verified with its public key)" "^Verified OK" gen_sign_verify
destroy_key() {
    p11 --token-label kms --login --pin "$USER_PIN" --delete-object --type privkey \
        --id "$(object_id p11-gen-ec)"
    kpy "
m = kms.describe_key(KeyId='$(cat gen-ec.kid)')['KeyMetadata']
print(m['KeyState'], round((m['DeletionDate'] - m['CreationDate']).total_seconds() / 86400))"
    [[ -z $(alias_target p11-gen-ec) ]]
    p11 --token-label kms --login --pin "$USER_PIN" --list-objects >after.txt
    must_not_match after.txt 'label: +p11-gen-ec$'
    must_match after.txt 'label: +p11-gen-rsa$'
}
check_output "--delete-object schedules the deletion (7-day window), removes the alias and the objects" \
    "^PendingDeletion 7$" destroy_key

# ---------------------------------------------------------------------------------------
log "KMS requests per operation (LocalStack's request log)"
if [[ -f $WORK/requests.txt ]]; then sed 's/^/    /' "$WORK/requests.txt"; fi

finish
