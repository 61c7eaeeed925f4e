#!/usr/bin/env bash
# The on-prem HSM backend (backend = "pkcs11") with SoftHSMv2 playing the vendor's HSM:
# one config with a pkcs11 token in front of SoftHSM and a local token, driven through
# libhsmux.so by pkcs11-tool and OpenSSL, cross-checked against SoftHSM directly (keys
# generated or destroyed through hsmux are seen by SoftHSM; mechanisms SoftHSM lacks, such
# as CKM_ECDSA_SHA256 and OAEP-SHA256, work through hsmux), a TLS 1.3 server whose key lives
# in SoftHSM, and bad configurations (missing library, wrong PIN, unknown key, token and
# slot both given, unknown vendor token) refused with the documented errors and log lines.
# Usage: pkcs11-tests/clients/pkcs11-backend.sh   (MODULE=/path/to/libhsmux.so to override)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SOFTHSM_LIB=${SOFTHSM_LIB:-/usr/lib/softhsm/libsofthsm2.so}
HSM_LABEL=hsm       # the slot label clients see (the pkcs11 token)
VENDOR_LABEL=vendor # the SoftHSM token behind it
LOCAL_LABEL=loc     # the local token next to it
WRONG_PIN=999999

if is_softhsm; then
    log "MODULE is SoftHSM itself: this script tests hsmux's pkcs11 backend; nothing to do"
    finish
    exit 0
fi
require_module
if [[ -f $SOFTHSM_LIB ]] && command -v softhsm2-util >/dev/null 2>&1; then
    pass "SoftHSMv2 is installed ($SOFTHSM_LIB, softhsm2-util)"
else
    fail "SoftHSMv2 is installed ($SOFTHSM_LIB and softhsm2-util: apt-get install softhsm2)"
    finish
    exit 1
fi
ENGINE_SO=$(dpkg -L libengine-pkcs11-openssl 2>/dev/null | grep -m1 '/engines-3/pkcs11\.so$' || echo "")
cd "$WORK"

# ---------------------------------------------------------------------------------------
# SoftHSM's own store and token, and the hsmux config in front of it.
mkdir -p softhsm/tokens local-store
export SOFTHSM2_CONF=$WORK/softhsm/softhsm2.conf
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$WORK/softhsm/tokens" >"$SOFTHSM2_CONF"
export HSM_PIN=$USER_PIN

# write_config FILE PKCS11_KEYS...: a config whose first token is the pkcs11 token with
# the given keys (one per argument, after label and backend) and whose second is the
# local token.
write_config() {
    local file=$1 line
    shift
    {
        echo '[[token]]'
        echo "label = \"$HSM_LABEL\""
        echo 'backend = "pkcs11"'
        for line in "$@"; do echo "$line"; done
        echo
        echo '[[token]]'
        echo "label = \"$LOCAL_LABEL\""
        echo 'backend = "local"'
        echo "path = \"$WORK/local-store\""
        echo 'pin_kdf_iterations = 1000'
    } >"$file"
}
write_config hsmux.toml "library = \"$SOFTHSM_LIB\"" "token = \"$VENDOR_LABEL\"" 'pin = "env:HSM_PIN"'
export HSMUX_CONFIG=$WORK/hsmux.toml

# sh11 ARGS...: pkcs11-tool on SoftHSM directly. hsm ARGS...: on the pkcs11 slot through
# hsmux, logged in. soft ARGS...: on the vendor token directly, logged in.
sh11() { t pkcs11-tool --module "$SOFTHSM_LIB" "$@"; }
hsm() { p11 --token-label "$HSM_LABEL" --login --pin "$USER_PIN" "$@"; }
soft() { sh11 --token-label "$VENDOR_LABEL" --login --pin "$USER_PIN" "$@"; }
# strip_ansi FILE: the log without terminal colours (tracing colours its fields).
strip_ansi() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }

log "the vendor token (softhsm2-util) and the local token (pkcs11-tool through hsmux)"
check_output "softhsm2-util --init-token --free --label $VENDOR_LABEL" "has been initialized" \
    t softhsm2-util --init-token --free --label "$VENDOR_LABEL" --so-pin "$SO_PIN" --pin "$USER_PIN"
init_local() {
    p11 --slot 1 --init-token --label "$LOCAL_LABEL" --so-pin "$SO_PIN"
    p11 --token-label "$LOCAL_LABEL" --init-pin --login --login-type so --so-pin "$SO_PIN" \
        --new-pin "$USER_PIN"
}
check "local token in slot 1: --init-token and --init-pin" init_local

# ---------------------------------------------------------------------------------------
log "slots"
# slot_model FILE LABEL MODEL: the -L listing has a token labelled LABEL whose model is MODEL.
slot_model() {
    awk -v label="$2" -v model="$3" '
        /^Slot / { l = ""; m = "" }
        $1 == "token" && $2 == "label" { l = $4 }
        $1 == "token" && $2 == "model" { m = $4; if (l == label && m == model) found = 1 }
        END { exit !found }' "$1"
}
list_slots() {
    p11 -L >slots.txt
    cat slots.txt
    test "$(grep -c '^Slot ' slots.txt)" = 2
    slot_model slots.txt "$HSM_LABEL" pkcs11
    slot_model slots.txt "$LOCAL_LABEL" local
    must_match slots.txt "^Slot 0 .*$HSM_LABEL"
    must_match slots.txt "^Slot 1 .*$LOCAL_LABEL"
}
check "-L lists two slots: 0 '$HSM_LABEL' (model pkcs11) and 1 '$LOCAL_LABEL' (model local)" list_slots
same_serial() {
    sh11 -L >vendor-slots.txt
    cat vendor-slots.txt
    local vendor_serial
    vendor_serial=$(awk '$1 == "token" && $2 == "label" { l = $4 }
        $1 == "serial" && l == "'"$VENDOR_LABEL"'" { print $4; exit }' vendor-slots.txt)
    [[ -n $vendor_serial ]]
    awk '$1 == "token" && $2 == "label" { l = $4 }
        $1 == "serial" && l == "'"$HSM_LABEL"'" { print $4; exit }' slots.txt | grep -qx "$vendor_serial"
}
check "the pkcs11 slot reports the vendor token's serial number" same_serial

# ---------------------------------------------------------------------------------------
log "keys generated through hsmux live in SoftHSM"
check_output "--keypairgen EC P-256 in the pkcs11 slot (id 01, ec256)" "Public Key Object; EC +EC_POINT 256 bits" \
    hsm --keypairgen --key-type EC:prime256v1 --id 01 --label ec256
check_output "--keypairgen RSA 2048 in the pkcs11 slot (id 02, rsa2048)" "Public Key Object; RSA 2048 bits" \
    hsm --keypairgen --key-type rsa:2048 --id 02 --label rsa2048

# object_listed FILE HEADER_REGEX LABEL: FILE (a --list-objects output) holds an object
# whose first line matches HEADER_REGEX and whose label is LABEL.
object_listed() {
    awk -v hdr="$2" -v label="$3" '
        /^[^ \t]/ { inobj = ($0 ~ hdr) }
        inobj && $1 == "label:" { $1 = ""; sub(/^ +/, ""); if ($0 == label) found = 1 }
        END { exit !found }' "$1"
}
# all_four FILE: both key pairs, private and public halves.
all_four() {
    cat "$1"
    object_listed "$1" "^Private Key Object; EC" ec256
    object_listed "$1" "^Public Key Object; EC +EC_POINT 256 bits" ec256
    object_listed "$1" "^Private Key Object; RSA" rsa2048
    object_listed "$1" "^Public Key Object; RSA 2048 bits" rsa2048
}
listed_through_hsmux() { hsm --list-objects >hsmux-objects.txt; all_four hsmux-objects.txt; }
check "hsmux --list-objects shows both key pairs" listed_through_hsmux
listed_in_softhsm() { soft --list-objects >softhsm-objects.txt; all_four softhsm-objects.txt; }
check "SoftHSM directly (pkcs11-tool --module libsofthsm2.so) lists both key pairs" listed_in_softhsm
same_point() { # the EC point SoftHSM holds is the one hsmux reports
    local a b
    a=$(awk '/^Public Key Object; EC/ { e = 1 } e && $1 == "EC_POINT:" { print $2; exit }' hsmux-objects.txt)
    b=$(awk '/^Public Key Object; EC/ { e = 1 } e && $1 == "EC_POINT:" { print $2; exit }' softhsm-objects.txt)
    echo "hsmux:   $a"
    echo "softhsm: $b"
    [[ -n $a && $a == "$b" ]]
}
check "the EC public point is the same through hsmux and in SoftHSM" same_point
local_is_separate() {
    p11 --token-label "$LOCAL_LABEL" --login --pin "$USER_PIN" --list-objects >local-objects.txt
    cat local-objects.txt
    not grep -Eq 'label: +(ec256|rsa2048)$' local-objects.txt
}
check "the local token does not show the pkcs11 token's keys" local_is_separate
made_in_softhsm() {
    soft --keypairgen --key-type EC:prime256v1 --id 03 --label vendor-made
    hsm --list-objects --type privkey >vendor-made.txt
    cat vendor-made.txt
    object_listed vendor-made.txt "^Private Key Object; EC" vendor-made
}
check "a key generated in SoftHSM directly is listed through hsmux" made_in_softhsm

# ---------------------------------------------------------------------------------------
log "signatures and decryption through hsmux, verified by OpenSSL"
head -c 1000 /dev/urandom >data.bin
cp data.bin tampered.bin
printf 'X' >>tampered.bin
export_pub() { # export_pub ID OUT.pem
    hsm --read-object --type pubkey --id "$1" -o "$2.der"
    t openssl pkey -pubin -inform DER -in "$2.der" -out "$2"
}
check "export the EC public key (--read-object)" export_pub 01 ec256.pem
check "export the RSA public key (--read-object)" export_pub 02 rsa2048.pem

check_fails "SoftHSM directly refuses CKM_ECDSA_SHA256 (CKR_MECHANISM_INVALID)" "CKR_MECHANISM_INVALID" \
    soft --sign --id 01 -m ECDSA-SHA256 -i data.bin -o softhsm-ecdsa.sig
check_output "hsmux advertises ECDSA-SHA256 in the pkcs11 slot" "^  ECDSA-SHA256, .*sign" \
    p11 --token-label "$HSM_LABEL" --list-mechanisms
check "sign ECDSA-SHA256 through hsmux (--signature-format openssl)" \
    hsm --sign --id 01 -m ECDSA-SHA256 --signature-format openssl -i data.bin -o ecdsa.sig
check_output "OpenSSL verifies the ECDSA-SHA256 signature" "^Verified OK" \
    t openssl dgst -sha256 -verify ec256.pem -signature ecdsa.sig data.bin
check_fails "OpenSSL rejects the ECDSA-SHA256 signature over tampered data" "^Verification failure" \
    t openssl dgst -sha256 -verify ec256.pem -signature ecdsa.sig tampered.bin
check_output "pkcs11-tool --verify ECDSA-SHA256 through hsmux" "Signature is valid" \
    hsm --verify --id 01 -m ECDSA-SHA256 --signature-format openssl -i data.bin --signature-file ecdsa.sig

check "sign SHA256-RSA-PKCS through hsmux" \
    hsm --sign --id 02 -m SHA256-RSA-PKCS -i data.bin -o rsa.sig
check_output "OpenSSL verifies the SHA256-RSA-PKCS signature" "^Verified OK" \
    t openssl dgst -sha256 -verify rsa2048.pem -signature rsa.sig data.bin
check "sign SHA256-RSA-PKCS-PSS (--salt-len -1) through hsmux" \
    hsm --sign --id 02 -m SHA256-RSA-PKCS-PSS --salt-len -1 -i data.bin -o pss.sig
check_output "OpenSSL verifies the SHA256-RSA-PKCS-PSS signature (salt 32)" "^Verified OK" \
    t openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
    -verify rsa2048.pem -signature pss.sig data.bin
check_fails "OpenSSL rejects the PSS signature over tampered data" "^Verification failure" \
    t openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
    -verify rsa2048.pem -signature pss.sig tampered.bin

printf 'attack at dawn' >plain.txt
oaep_cipher() {
    t openssl pkeyutl -encrypt -pubin -inkey rsa2048.pem -pkeyopt rsa_padding_mode:oaep \
        -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in plain.txt -out oaep.bin
}
check "OpenSSL encrypts with RSA-OAEP SHA-256 to the exported key" oaep_cipher
check_fails "SoftHSM directly refuses OAEP-SHA256 decryption" "C_DecryptInit failed: rv = CKR_" \
    soft --decrypt --id 02 -m RSA-PKCS-OAEP --hash-algorithm SHA256 --mgf MGF1-SHA256 \
    -i oaep.bin -o softhsm-oaep.txt
oaep_decrypt() {
    hsm --decrypt --id 02 -m RSA-PKCS-OAEP --hash-algorithm SHA256 --mgf MGF1-SHA256 \
        -i oaep.bin -o oaep.txt
    cmp plain.txt oaep.txt
}
check "decrypt the OAEP-SHA256 ciphertext through hsmux (software OAEP around raw RSA)" oaep_decrypt

# ---------------------------------------------------------------------------------------
log "pkcs11-tool --test on the pkcs11 slot"
run_test() {
    hsm --test --allow-sw >test.out 2>&1 && rc=0 || rc=$?
    cat test.out
    test "$rc" = 0
    must_match test.out "^No errors$"
    must_match test.out "^    SHA256-RSA-PKCS: OK$"
    must_not_match test.out "ERR|[Ee]rror:|[Ff]ailed|Aborting|doesn.t match"
}
check "pkcs11-tool --test --login --allow-sw on the pkcs11 slot: No errors" run_test

# ---------------------------------------------------------------------------------------
log "TLS 1.3 through the OpenSSL engine with keys that live in SoftHSM"
if [[ -n $ENGINE_SO && -f $ENGINE_SO ]]; then
    pass "libengine-pkcs11-openssl provides $ENGINE_SO"
    cat >openssl.cnf <<EOF
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
    EC_URI="pkcs11:token=$HSM_LABEL;object=ec256;type=private"
    RSA_URI="pkcs11:token=$HSM_LABEL;object=rsa2048;type=private"
    eng_openssl() {
        local cmd=$1
        shift
        t env OPENSSL_CONF="$WORK/openssl.cnf" openssl "$cmd" -engine pkcs11 "$@"
    }
    make_cert() { # make_cert URI OUT
        eng_openssl req -new -x509 -keyform engine -key "$1" -subj /CN=localhost \
            -addext subjectAltName=DNS:localhost -days 2 -sha256 -out "$2"
        t openssl verify -CAfile "$2" "$2"
    }
    check "openssl req -x509 with the EC key in SoftHSM" make_cert "$EC_URI" ec-cert.pem
    check "openssl req -x509 with the RSA key in SoftHSM" make_cert "$RSA_URI" rsa-cert.pem

    # tls13 URI CERT PEER_SIG_TYPE: one s_server (-naccept 1, bounded, stopped by PID) on
    # 127.0.0.1 and one s_client that verifies the certificate and gets the page.
    tls13() {
        local uri=$1 cert=$2 sigtype=$3 port pid srv_rc
        rm -f client.log
        serve server.log env OPENSSL_CONF="$WORK/openssl.cnf" timeout 60 openssl s_server \
            -engine pkcs11 -keyform engine -key "$uri" -cert "$cert" -accept '127.0.0.1:{PORT}' \
            -naccept 1 -www || :
        pid=${SERVE_PID:-} port=${SERVE_PORT:-}
        # shellcheck disable=SC2064 # expand the PID now: the trap runs after this function
        trap "kill $pid 2>/dev/null || :" EXIT
        must_match server.log '^ACCEPT'
        printf 'GET / HTTP/1.0\r\n\r\n' | timeout 30 openssl s_client -connect "127.0.0.1:$port" \
            -tls1_3 -CAfile "$cert" -verify_return_error -verify_hostname localhost \
            -servername localhost -ign_eof >client.log 2>&1
        wait "$pid" && srv_rc=0 || srv_rc=$?
        echo "--- server"
        cat server.log
        echo "--- client"
        cat client.log
        echo "--- server exit status $srv_rc"
        test "$srv_rc" = 0
        must_match server.log '1 server accepts that finished'
        must_match client.log "^New, TLSv1\.3, Cipher is [A-Z0-9_-]+$"
        must_match client.log "^Verification: OK"
        must_match client.log "^Peer signature type: $sigtype$"
        must_match client.log "^HTTP/1.0 200 ok"
    }
    check "TLS 1.3 handshake: s_server -key 'pkcs11:token=$HSM_LABEL;object=ec256;type=private' (ECDSA)" \
        tls13 "$EC_URI" ec-cert.pem ECDSA
    check "TLS 1.3 handshake: s_server -key 'pkcs11:token=$HSM_LABEL;object=rsa2048;type=private' (RSA-PSS)" \
        tls13 "$RSA_URI" rsa-cert.pem RSA-PSS
else
    fail "libengine-pkcs11-openssl is installed (dpkg -L libengine-pkcs11-openssl)"
fi

# ---------------------------------------------------------------------------------------
log "a key destroyed through hsmux is gone in SoftHSM"
make_doomed() {
    hsm --keypairgen --key-type EC:prime256v1 --id 0d --label doomed
    soft --list-objects >doomed-before.txt
    cat doomed-before.txt
    object_listed doomed-before.txt "^Private Key Object; EC" doomed
}
check "key pair 'doomed' generated through hsmux is in SoftHSM" make_doomed
delete_doomed() {
    hsm --delete-object --type privkey --label doomed
    hsm --delete-object --type pubkey --label doomed
    hsm --list-objects >doomed-hsmux.txt
    not grep -q "label: *doomed$" doomed-hsmux.txt
    soft --list-objects >doomed-after.txt
    cat doomed-after.txt
    not grep -q "label: *doomed$" doomed-after.txt
    object_listed doomed-after.txt "^Private Key Object; EC" ec256
}
check "--delete-object through hsmux: gone through hsmux and in SoftHSM, other keys kept" delete_doomed

# ---------------------------------------------------------------------------------------
log "PIN handling"
check_fails "an application PIN other than the configured pin: C_Login CKR_PIN_INCORRECT" \
    "C_Login failed: rv = CKR_PIN_INCORRECT" \
    p11 --token-label "$HSM_LABEL" --login --pin "$WRONG_PIN" --list-objects
check_output "the configured pin still logs in" "^Private Key Object; EC" hsm --list-objects --type privkey

printf '%s' "$USER_PIN" >pin.txt
write_config file-pin.toml "library = \"$SOFTHSM_LIB\"" "token = \"$VENDOR_LABEL\"" "pin = \"file:$WORK/pin.txt\""
check_output "pin = \"file:PATH\" logs in" "^Private Key Object; EC" \
    t env HSMUX_CONFIG="$WORK/file-pin.toml" pkcs11-tool --module "$MODULE" \
    --token-label "$HSM_LABEL" --login --pin "$USER_PIN" --list-objects --type privkey

VENDOR_SLOT=$(t softhsm2-util --show-slots | awk '/^Slot [0-9]+$/ { s = $2 }
    $1 == "Label:" && $2 == "'"$VENDOR_LABEL"'" { print s; exit }' || :)
log "vendor slot of '$VENDOR_LABEL': ${VENDOR_SLOT:-not found}"
write_config app-pin.toml "library = \"$SOFTHSM_LIB\"" "slot = ${VENDOR_SLOT:-0}" 'pin_source = "application"'
app_pin() {
    t env HSMUX_CONFIG="$WORK/app-pin.toml" pkcs11-tool --module "$MODULE" --token-label "$HSM_LABEL" "$@"
}
check_output "slot = <vendor slot> with pin_source = \"application\": the application's PIN logs in" \
    "^Private Key Object; RSA" app_pin --login --pin "$USER_PIN" --list-objects --type privkey
check_fails "pin_source = \"application\": a wrong application PIN is the vendor's CKR_PIN_INCORRECT" \
    "C_Login failed: rv = CKR_PIN_INCORRECT" app_pin --login --pin "$WRONG_PIN" --list-objects

# ---------------------------------------------------------------------------------------
log "bad configurations (HSMUX_LOG=info, log on stderr)"
# bad_slot CONFIG: with CONFIG (a broken pkcs11 token and a healthy local one),
# pkcs11-tool -L succeeds, shows the pkcs11 slot without a token and the local slot with
# its token; the module's log (stderr, colours stripped) goes to CONFIG.log.
bad_slot() {
    local rc
    env HSMUX_LOG=info HSMUX_CONFIG="$1" timeout --kill-after=5 "$STEP_TIMEOUT" \
        pkcs11-tool --module "$MODULE" -L >"$1.out" 2>"$1.err" && rc=0 || rc=$?
    strip_ansi "$1.err" >"$1.log"
    echo "--- stdout"
    cat "$1.out"
    echo "--- stderr"
    cat "$1.log"
    echo "--- exit status $rc"
    test "$rc" = 0
    grep -A1 "hsmux pkcs11: $HSM_LABEL\$" "$1.out" | tail -n 1 | grep -q '(empty)'
    grep -A1 "hsmux local: $LOCAL_LABEL\$" "$1.out" | tail -n 1 | grep -vq '(empty)'
}
# log_record FILE PATTERN...: the log has one WARN record saying which slot has no token
# and why, with the token's label as its field, and matches every PATTERN.
log_record() {
    local file=$1 p
    shift
    must_match "$file" "WARN.*slot 0 has no token: .*token \"$HSM_LABEL\".*the other slots work.*token=$HSM_LABEL"
    must_not_match "$file" 'C_Initialize'
    for p in "$@"; do must_match "$file" "$p"; done
}

write_config missing-lib.toml 'library = "/nonexistent/libvendor.so"' "token = \"$VENDOR_LABEL\"" 'pin = "env:HSM_PIN"'
missing_lib() {
    bad_slot missing-lib.toml
    # shellcheck disable=SC2016 # backquotes are literal: the log quotes keys so
    log_record missing-lib.toml.log '/nonexistent/libvendor\.so' 'key `library`'
}
check "missing library: only its slot has no token, the local token works; log names the path and key \`library\`" missing_lib
check_output "the healthy token next to the broken one serves pkcs11-tool (its mechanism list)" \
    "^  ECDSA-SHA256" t env HSMUX_CONFIG="$WORK/missing-lib.toml" pkcs11-tool --module "$MODULE" \
    --token-label "$LOCAL_LABEL" --list-mechanisms

write_config wrong-pin.toml "library = \"$SOFTHSM_LIB\"" "token = \"$VENDOR_LABEL\"" "pin = \"$WRONG_PIN\""
wrong_pin() {
    local rc
    env HSMUX_LOG=info HSMUX_CONFIG="$WORK/wrong-pin.toml" timeout --kill-after=5 "$STEP_TIMEOUT" \
        pkcs11-tool --module "$MODULE" --token-label "$HSM_LABEL" --login --pin "$WRONG_PIN" \
        --list-objects >wrong-pin.out 2>wrong-pin.err && rc=0 || rc=$?
    strip_ansi wrong-pin.err >wrong-pin.log
    echo "--- stdout"
    cat wrong-pin.out
    echo "--- stderr"
    cat wrong-pin.log
    echo "--- exit status $rc"
    test "$rc" != 0
    must_match wrong-pin.log "C_Login failed: rv = CKR_PIN_INCORRECT"
    must_match wrong-pin.log 'function="C_Login".*rv="CKR_PIN_INCORRECT"'
    must_match wrong-pin.log "\"$VENDOR_LABEL\""
    must_match wrong-pin.log "WARN.*refused the configured pin"
    must_match wrong-pin.log "token=\"?$HSM_LABEL\"? function=\"C_Login\""
}
check "wrong \`pin\` in the config (vendor refuses it): C_Login CKR_PIN_INCORRECT, log names the vendor token" wrong_pin
# The vendor's failed-login count is reset by a good login.
check_output "the right pin logs in after the refused one" "^Private Key Object; EC" \
    hsm --list-objects --type privkey

write_config typo.toml "libary = \"$SOFTHSM_LIB\"" "token = \"$VENDOR_LABEL\"" 'pin = "env:HSM_PIN"'
unknown_key() {
    bad_slot typo.toml
    log_record typo.toml.log 'libary' 'line 4' "$WORK/typo\.toml"
}
check "unknown key \`libary\`: only its slot has no token; log names the file, key and line 4" unknown_key

write_config both.toml "library = \"$SOFTHSM_LIB\"" "token = \"$VENDOR_LABEL\"" "slot = ${VENDOR_SLOT:-0}" 'pin = "env:HSM_PIN"'
both_keys() {
    bad_slot both.toml
    # shellcheck disable=SC2016 # backquotes are literal: the log quotes keys so
    log_record both.toml.log '`token`' '`slot`' "$WORK/both\.toml"
}
check "both \`token\` and \`slot\`: only its slot has no token; log names both keys and the file" both_keys

write_config no-token.toml "library = \"$SOFTHSM_LIB\"" 'token = "no-such-token"' 'pin = "env:HSM_PIN"'
no_token() {
    bad_slot no-token.toml
    # shellcheck disable=SC2016 # backquotes are literal: the log quotes keys so
    log_record no-token.toml.log 'key `token`' '"no-such-token"' "$SOFTHSM_LIB"
}
check "vendor token label that does not exist: only its slot has no token; log blames \`token\` and names it" no_token

write_config unset-pin.toml "library = \"$SOFTHSM_LIB\"" "token = \"$VENDOR_LABEL\"" 'pin = "env:HSMUX_TEST_UNSET_PIN"'
unset_pin() {
    unset HSMUX_TEST_UNSET_PIN
    bad_slot unset-pin.toml
    # shellcheck disable=SC2016 # backquotes are literal: the log quotes keys so
    log_record unset-pin.toml.log 'key `pin`' 'HSMUX_TEST_UNSET_PIN'
}
check "pin = \"env:NAME\" with NAME unset: only its slot has no token; log names \`pin\` and NAME" unset_pin

printf 'log_level = "info"\n[[token]\nlabel = "x"\n' >not-toml.toml
not_toml() {
    local rc
    env HSMUX_CONFIG="$WORK/not-toml.toml" timeout --kill-after=5 "$STEP_TIMEOUT" \
        pkcs11-tool --module "$MODULE" -L >not-toml.out 2>not-toml.err && rc=0 || rc=$?
    strip_ansi not-toml.err >not-toml.log
    cat not-toml.out not-toml.log
    test "$rc" != 0
    must_match not-toml.log "C_Initialize failed: rv = CKR_GENERAL_ERROR"
    must_match not-toml.log 'WARN config .*not-toml\.toml: line 2, column 8: .*\(in `\[\[token\]`\) function="C_Initialize"'
    # One line, no parser excerpt, no empty token field.
    test "$(grep -c WARN not-toml.log)" = 1
    must_not_match not-toml.log ' \| |token=""'
}
check "a file that is not TOML: C_Initialize CKR_GENERAL_ERROR, one log line with the file, line, column and text" not_toml

: >empty.toml
empty_config() {
    env HSMUX_LOG=info HSMUX_CONFIG="$WORK/empty.toml" timeout --kill-after=5 "$STEP_TIMEOUT" \
        pkcs11-tool --module "$MODULE" -L >empty.out 2>empty.err || : # no slot: it exits 1
    strip_ansi empty.err >empty.log
    cat empty.out empty.log
    must_match empty.log 'WARN.*the configuration has no \[\[token\]\]'
    must_match empty.log 'empty\.toml'
}
check "an empty config file: C_Initialize works, the log warns that it has no [[token]]" empty_config

good_after_bad() { p11 -L >slots-again.txt; cat slots-again.txt; slot_model slots-again.txt "$HSM_LABEL" pkcs11; }
check "the good configuration still works afterwards" good_after_bad

finish
