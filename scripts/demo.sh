#!/usr/bin/env bash
# hsmux demo on a fresh machine: install what is missing, build libhsmux.so, then use the
# built-in local token with pkcs11-tool and OpenSSL: initialise it, generate an EC P-256
# key, sign and verify with pkcs11-tool, then sign with OpenSSL through the PKCS#11 engine
# and verify with plain OpenSSL.
#
# The token lives in a throwaway XDG_DATA_HOME under target/demo/, so a real hsmux token
# in ~/.local/share/hsmux is never touched. Exits non-zero on the first failure.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/common.sh
source scripts/common.sh

STEP_TIMEOUT=${STEP_TIMEOUT:-120}
if [[ -t 1 ]]; then BOLD=$'\e[1m' RESET=$'\e[0m'; else BOLD='' RESET=''; fi
say() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$RESET"; }
run() { # print the command, then run it bounded in time
    printf '+ %s\n' "$*"
    timeout --kill-after=5 "$STEP_TIMEOUT" "$@"
}
on_error() {
    local rc=$?
    echo
    echo "demo FAILED (exit status $rc) running: $BASH_COMMAND" >&2
}
trap on_error ERR

say "Checking build and client dependencies"
ensure_packages pkg-config libssl-dev opensc libengine-pkcs11-openssl openssl
ensure_cargo

say "Building libhsmux.so (cargo build --release)"
cargo build --release
# HSMUX_DEMO_MODULE only serves to debug this script against another module.
MODULE=${HSMUX_DEMO_MODULE:-$ROOT/target/release/libhsmux.so}
test -f "$MODULE"
echo "module: $MODULE"

ENGINE_SO=$(dpkg -L libengine-pkcs11-openssl 2>/dev/null | grep -m1 '/engines-3/pkcs11\.so$' || echo "")
if [[ -z $ENGINE_SO ]]; then
    ENGINE_SO=$(find /usr/lib /usr/local/lib -path '*engines-3/pkcs11.so' -print -quit 2>/dev/null || echo "")
fi
if [[ -z $ENGINE_SO ]]; then
    echo "error: the OpenSSL pkcs11 engine (libengine-pkcs11-openssl) was not found" >&2
    exit 1
fi

say "Using a throwaway default token under target/demo/"
DEMO=$ROOT/target/demo
rm -rf "$DEMO"
mkdir -p "$DEMO/data" "$DEMO/config"
# No HSMUX_CONFIG and an empty XDG_CONFIG_HOME: the module serves its one built-in local
# token, stored under XDG_DATA_HOME.
unset HSMUX_CONFIG
export XDG_DATA_HOME=$DEMO/data XDG_CONFIG_HOME=$DEMO/config
if [[ -e /etc/hsmux/hsmux.toml ]]; then
    echo "error: /etc/hsmux/hsmux.toml exists and would replace the demo's throwaway token;" >&2
    echo "       move it away to run the demo." >&2
    exit 1
fi
echo "XDG_DATA_HOME=$XDG_DATA_HOME"

SO_PIN=12345678
USER_PIN=123456
echo "demo PINs: SO PIN $SO_PIN, user PIN $USER_PIN"
p11() { run pkcs11-tool --module "$MODULE" "$@"; }

say "Listing slots"
p11 --list-slots

say "Initialising the token and its user PIN"
p11 --init-token --label demo --so-pin "$SO_PIN"
p11 --token-label demo --init-pin --login --login-type so --so-pin "$SO_PIN" --new-pin "$USER_PIN"

say "Generating an EC P-256 key pair in the token"
p11 --token-label demo --login --pin "$USER_PIN" \
    --keypairgen --key-type EC:prime256v1 --id 01 --label demo-key

say "Signing with pkcs11-tool (ECDSA-SHA256) and verifying with pkcs11-tool"
echo "hello from hsmux at $(date -u +%FT%TZ)" >"$DEMO/message.txt"
p11 --token-label demo --login --pin "$USER_PIN" --sign --mechanism ECDSA-SHA256 --id 01 \
    --input-file "$DEMO/message.txt" --output-file "$DEMO/message.p11.sig"
# pkcs11-tool exits 0 even for a bad signature: read its verdict.
verdict=$(p11 --token-label demo --login --pin "$USER_PIN" --verify --mechanism ECDSA-SHA256 --id 01 \
    --input-file "$DEMO/message.txt" --signature-file "$DEMO/message.p11.sig" 2>&1)
echo "$verdict"
grep -q "^Signature is valid" <<<"$verdict"

say "Exporting the public key (DER from the token, PEM for OpenSSL)"
p11 --token-label demo --read-object --type pubkey --id 01 --output-file "$DEMO/demo-key.pub.der"
run openssl pkey -pubin -inform DER -in "$DEMO/demo-key.pub.der" -out "$DEMO/demo-key.pub.pem"
cat "$DEMO/demo-key.pub.pem"

say "Signing with OpenSSL through the pkcs11 engine, key named by PKCS#11 URI"
cat >"$DEMO/openssl.cnf" <<EOF
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
echo "OPENSSL_CONF=$DEMO/openssl.cnf:"
sed 's/^/    /' "$DEMO/openssl.cnf"
OPENSSL_CONF=$DEMO/openssl.cnf run openssl dgst -sha256 -engine pkcs11 -keyform engine \
    -sign "pkcs11:token=demo;object=demo-key;type=private" \
    -out "$DEMO/message.openssl.sig" "$DEMO/message.txt"

say "Verifying the OpenSSL signature with plain OpenSSL and the exported public key"
run openssl dgst -sha256 -verify "$DEMO/demo-key.pub.pem" \
    -signature "$DEMO/message.openssl.sig" "$DEMO/message.txt"

say "Demo passed: the key was generated and used inside the hsmux token; files are in target/demo/"
