#!/usr/bin/env bash
# Drives OpenSSL 3 through libengine-pkcs11-openssl (libp11) against the module: signatures
# by PKCS#11 URI verified by plain OpenSSL, RSA decryption, self-signed certificates, and
# TLS 1.3 / 1.2 servers (s_server) whose key stays in the token.
# Usage: pkcs11-tests/clients/openssl.sh   (MODULE=/path/to/module.so to override)
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

# write_openssl_conf FILE [PIN]: an OpenSSL configuration that loads the engine with the
# module under test (and the PIN, when given).
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
init = 0
EOF
    if [[ -n ${2:-} ]]; then echo "PIN = $2" >>"$1"; fi
}
write_openssl_conf openssl.cnf "$USER_PIN"
write_openssl_conf openssl-nopin.cnf
export OPENSSL_CONF=$WORK/openssl.cnf

# Everything that verifies runs OpenSSL without the engine, as a relying party would.
plain_openssl() { t env -u OPENSSL_CONF openssl "$@"; }
# eng_openssl CMD ARGS...: an openssl command using the pkcs11 engine.
eng_openssl() {
    local cmd=$1
    shift
    t openssl "$cmd" -engine pkcs11 "$@"
}

head -c 2000 /dev/urandom >data.bin
cp data.bin tampered.bin
printf 'X' >>tampered.bin

# ---------------------------------------------------------------------------------------
log "token with an EC P-256 and an RSA 2048 key pair"
use_token ossl
check "--init-token and --init-pin" init_token ossl
check_output "--keypairgen EC P-256 (id 01, label ec256)" "Public Key Object; EC" \
    p11u --keypairgen --key-type EC:prime256v1 --id 01 --label ec256
check_output "--keypairgen RSA 2048 (id 02, label rsa2048)" "Public Key Object; RSA 2048 bits" \
    p11u --keypairgen --key-type rsa:2048 --id 02 --label rsa2048
check "export the EC public key" export_pubkey ec256 ec256.pem
check "export the RSA public key" export_pubkey rsa2048 rsa2048.pem

EC_URI="pkcs11:token=ossl;object=ec256;type=private"
RSA_URI="pkcs11:token=ossl;object=rsa2048;type=private"

check_output "openssl engine pkcs11 is available" "\[ available \]" t openssl engine pkcs11 -t

# ---------------------------------------------------------------------------------------
log "signatures made through the engine, verified by plain OpenSSL"
check "ECDSA P-256 SHA-256 signature by URI" \
    eng_openssl dgst -sha256 -keyform engine -sign "$EC_URI" -out ec.sig data.bin
check_output "plain openssl verifies the ECDSA SHA-256 signature" "^Verified OK" \
    plain_openssl dgst -sha256 -verify ec256.pem -signature ec.sig data.bin
check_fails "plain openssl rejects the ECDSA signature over tampered data" "^Verification failure" \
    plain_openssl dgst -sha256 -verify ec256.pem -signature ec.sig tampered.bin
check "ECDSA P-256 SHA-384 signature by URI" \
    eng_openssl dgst -sha384 -keyform engine -sign "$EC_URI" -out ec384.sig data.bin
check_output "plain openssl verifies the ECDSA SHA-384 signature" "^Verified OK" \
    plain_openssl dgst -sha384 -verify ec256.pem -signature ec384.sig data.bin

check "RSA PKCS#1 v1.5 SHA-256 signature by URI" \
    eng_openssl dgst -sha256 -keyform engine -sign "$RSA_URI" -out rsa.sig data.bin
check_output "plain openssl verifies the RSA PKCS#1 v1.5 signature" "^Verified OK" \
    plain_openssl dgst -sha256 -verify rsa2048.pem -signature rsa.sig data.bin
check_fails "plain openssl rejects the RSA PKCS#1 signature over tampered data" "^Verification failure" \
    plain_openssl dgst -sha256 -verify rsa2048.pem -signature rsa.sig tampered.bin
check "RSA PKCS#1 v1.5 SHA-512 signature by URI" \
    eng_openssl dgst -sha512 -keyform engine -sign "$RSA_URI" -out rsa512.sig data.bin
check_output "plain openssl verifies the RSA PKCS#1 v1.5 SHA-512 signature" "^Verified OK" \
    plain_openssl dgst -sha512 -verify rsa2048.pem -signature rsa512.sig data.bin

check "RSA-PSS SHA-256 (salt = digest length) signature by URI" \
    eng_openssl dgst -sha256 -keyform engine -sign "$RSA_URI" \
    -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-1 -out pss.sig data.bin
check_output "plain openssl verifies the RSA-PSS signature with a 32-byte salt" "^Verified OK" \
    plain_openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
    -verify rsa2048.pem -signature pss.sig data.bin
check_fails "plain openssl rejects the RSA-PSS signature over tampered data" "^Verification failure" \
    plain_openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
    -verify rsa2048.pem -signature pss.sig tampered.bin
not_same_pss() {
    eng_openssl dgst -sha256 -keyform engine -sign "$RSA_URI" \
        -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-1 -out pss2.sig data.bin
    not cmp -s pss.sig pss2.sig
}
check "RSA-PSS signatures are randomised (two differ)" not_same_pss

pin_in_uri() {
    OPENSSL_CONF=$WORK/openssl-nopin.cnf eng_openssl dgst -sha256 -keyform engine \
        -sign "$EC_URI;pin-value=$USER_PIN" -out ec-uri.sig data.bin
    plain_openssl dgst -sha256 -verify ec256.pem -signature ec-uri.sig data.bin
}
check_output "PIN given in the URI (pin-value) instead of the config" "^Verified OK" pin_in_uri
check_fails "wrong PIN in the URI is refused (PIN incorrect)" "PIN incorrect|PIN_INCORRECT" \
    env OPENSSL_CONF="$WORK/openssl-nopin.cnf" timeout "$STEP_TIMEOUT" openssl dgst -sha256 \
    -engine pkcs11 -keyform engine -sign "$EC_URI;pin-value=000000" -out bad.sig data.bin

# ---------------------------------------------------------------------------------------
log "RSA decryption through the engine"
rsa_decrypt() { # rsa_decrypt PKEYOPTS...: encrypt with plain openssl, decrypt in the token
    printf 'the key never leaves the token' >plain.txt
    plain_openssl pkeyutl -encrypt -pubin -inkey rsa2048.pem "$@" -in plain.txt -out cipher.bin
    eng_openssl pkeyutl -keyform engine -inkey "$RSA_URI" -decrypt "$@" -in cipher.bin -out decrypted.txt
    cmp plain.txt decrypted.txt
}
check "decrypt PKCS#1 v1.5 through the engine" rsa_decrypt -pkeyopt rsa_padding_mode:pkcs1
check "decrypt OAEP (SHA-1) through the engine" rsa_decrypt -pkeyopt rsa_padding_mode:oaep

# ---------------------------------------------------------------------------------------
log "self-signed certificates made with openssl req -x509 -key pkcs11:..."
make_cert() { # make_cert URI OUT [extra req args]
    local uri=$1 out=$2
    shift 2
    eng_openssl req -new -x509 -keyform engine -key "$uri" -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost -days 2 -sha256 "$@" -out "$out"
}
same_pubkey() { # same_pubkey CERT PUBKEY.pem
    plain_openssl x509 -in "$1" -noout -pubkey >"$1.pub"
    cmp "$1.pub" <(plain_openssl pkey -pubin -in "$2")
}
check "req -x509 with the EC key" make_cert "$EC_URI" ec-cert.pem
check_output "EC certificate verifies with its own key" "ec-cert.pem: OK" \
    plain_openssl verify -CAfile ec-cert.pem ec-cert.pem
check "EC certificate carries the token's EC public key" same_pubkey ec-cert.pem ec256.pem
check "req -x509 with the RSA key" make_cert "$RSA_URI" rsa-cert.pem
check_output "RSA certificate verifies with its own key" "rsa-cert.pem: OK" \
    plain_openssl verify -CAfile rsa-cert.pem rsa-cert.pem
check "RSA certificate carries the token's RSA public key" same_pubkey rsa-cert.pem rsa2048.pem
check "req -x509 with the RSA key and RSA-PSS padding" make_cert "$RSA_URI" pss-cert.pem \
    -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-1
check_output "RSA-PSS certificate verifies with its own key" "pss-cert.pem: OK" \
    plain_openssl verify -CAfile pss-cert.pem pss-cert.pem
check_output "RSA-PSS certificate is signed with rsassaPss" "Signature Algorithm: rsassaPss" \
    plain_openssl x509 -in pss-cert.pem -noout -text

# ---------------------------------------------------------------------------------------
log "TLS servers whose private key is in the token"
# tls_handshake URI CERT VERSION PEER_SIG_TYPE [s_client args...]: one s_server -www
# (one connection, then it exits) on 127.0.0.1, one s_client that verifies the
# certificate and host name, sends a request and must get the page back.
tls_handshake() {
    local uri=$1 cert=$2 version=$3 sigtype=$4 port pid srv_rc
    shift 4
    rm -f client.log
    serve server.log timeout 60 openssl s_server -engine pkcs11 -keyform engine -key "$uri" \
        -cert "$cert" -accept '127.0.0.1:{PORT}' -naccept 1 -www || :
    pid=${SERVE_PID:-} port=${SERVE_PORT:-}
    # Kill the server if this check ends early; a normal run reaps it below.
    # shellcheck disable=SC2064 # expand the PID now: the trap runs after this function
    trap "kill $pid 2>/dev/null || :" EXIT
    echo "--- server start"
    cat server.log
    must_match server.log '^ACCEPT'
    printf 'GET / HTTP/1.0\r\n\r\n' | env -u OPENSSL_CONF timeout 30 openssl s_client \
        -connect "127.0.0.1:$port" "-$version" -CAfile "$cert" -verify_return_error \
        -verify_hostname localhost -servername localhost -ign_eof "$@" >client.log 2>&1
    wait "$pid" && srv_rc=0 || srv_rc=$?
    echo "--- server"
    cat server.log
    echo "--- client"
    cat client.log
    echo "--- server exit status $srv_rc"
    test "$srv_rc" = 0
    must_match server.log '1 server accepts that finished'
    must_match client.log "^New, TLSv1\.${version#tls1_}, Cipher is [A-Z0-9_-]+$"
    must_not_match client.log "Cipher is \(NONE\)"
    must_match client.log "^Verification: OK"
    must_match client.log "^Peer signature type: $sigtype$"
    must_match client.log "^HTTP/1.0 200 ok"
}
check "TLS 1.3 handshake with the EC key (ECDSA)" \
    tls_handshake "$EC_URI" ec-cert.pem tls1_3 ECDSA
check "TLS 1.2 handshake with the EC key (ECDHE-ECDSA)" \
    tls_handshake "$EC_URI" ec-cert.pem tls1_2 ECDSA
check "TLS 1.3 handshake with the RSA key (RSA-PSS)" \
    tls_handshake "$RSA_URI" rsa-cert.pem tls1_3 RSA-PSS
check "TLS 1.2 handshake with the RSA key (ECDHE-RSA, RSA-PSS)" \
    tls_handshake "$RSA_URI" rsa-cert.pem tls1_2 RSA-PSS
check "TLS 1.2 handshake with the RSA key (PKCS#1 v1.5 signature)" \
    tls_handshake "$RSA_URI" rsa-cert.pem tls1_2 RSA -sigalgs RSA+SHA256

finish
