#!/usr/bin/env bash
# The `hsmux` command: tokens, keys, config check and doctor, as text and as --json, with
# their exit codes, on a configuration of one working local token and one pkcs11 token
# whose vendor library is missing.
# Usage: pkcs11-tests/clients/hsmux-cli.sh   (HSMUX_BIN=/path/to/hsmux to override)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_module
cd "$WORK"
HSMUX_BIN=${HSMUX_BIN:-$REPO_ROOT/target/release/hsmux}
SO_PIN=so-pin-0000
USER_PIN=user-1234

if [[ -x $HSMUX_BIN ]]; then
    pass "the hsmux command is built"
else
    fail "the hsmux command exists at $HSMUX_BIN (run cargo build --release)"
    finish
    exit 1
fi

cat >hsmux.toml <<EOF
[[token]]
label = "broken"
backend = "pkcs11"
library = "$WORK/no-such-vendor.so"
token = "x"
pin = "1234"

[[token]]
label = "web"
backend = "local"
path = "$WORK/web-store"
pin_kdf_iterations = 1000
pin_retries = 3
EOF
export HSMUX_CONFIG=$WORK/hsmux.toml
p11() { t pkcs11-tool --module "$MODULE" "$@"; }
hsmux() { t "$HSMUX_BIN" "$@"; }
# json_check FILE PYTHON-EXPRESSION [ARG...]: FILE is JSON and the expression over `d`
# (and sys.argv[3:]) is true.
json_check() {
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$@"
}
# exit_is CODE CMD...: CMD exits with CODE; its output goes to out.txt.
exit_is() {
    local want=$1 rc
    shift
    t "$@" >out.txt 2>&1 && rc=0 || rc=$?
    cat out.txt
    echo "--- exit status $rc"
    test "$rc" = "$want"
}

log "set-up through pkcs11-tool"
check_output "--init-token on the local slot" "Token successfully initialized" \
    p11 --slot 1 --init-token --label web --so-pin "$SO_PIN"
check_output "--init-pin" "User PIN successfully initialized" \
    p11 --slot 1 --init-pin --login --login-type so --so-pin "$SO_PIN" --new-pin "$USER_PIN"
check_output "--keypairgen EC P-256 'tls'" "Public Key Object; EC" \
    p11 --slot 1 --login --pin "$USER_PIN" --keypairgen --key-type EC:prime256v1 --id 0a0b --label tls

relabel() {
    # Not a terminal: the log has no colours.
    HSMUX_LOG=info p11 --slot 1 --init-token --label renamed --so-pin "$SO_PIN" >relabel.out 2>relabel.log
    cat relabel.out relabel.log
    must_match relabel.log 'INFO.*C_InitToken labelled the token "renamed".*the config.s `label` "web" as the slot.s.*token=web'
    p11 -L >slots.txt
    must_match slots.txt 'hsmux local: web$'
    must_match slots.txt 'token label +: renamed'
    # Back to the name the rest of this script uses.
    p11 --slot 1 --init-token --label web --so-pin "$SO_PIN"
    p11 --slot 1 --init-pin --login --login-type so --so-pin "$SO_PIN" --new-pin "$USER_PIN"
    p11 --slot 1 --login --pin "$USER_PIN" --keypairgen --key-type EC:prime256v1 --id 0a0b --label tls
}
check "C_InitToken with another label: logged, the slot keeps the config's label, the token shows the new one" relabel

log "hsmux --help"
check_output "--help names every command and the exit codes" "doctor" hsmux --help
help_text() {
    hsmux --help >help.txt
    for w in tokens keys config doctor --json "Exit status" HSMUX_CONFIG NO_COLOR; do
        must_match help.txt "$w"
    done
    hsmux config check --help | grep -q "every problem"
}
check "--help and subcommand --help describe commands, options, exit codes and environment" help_text
check "an unknown command exits 2" exit_is 2 "$HSMUX_BIN" frobnicate

log "hsmux tokens"
tokens_text() {
    exit_is 1 "$HSMUX_BIN" tokens
    must_match out.txt '^slot 0  broken  \(pkcs11\)  down$'
    must_match out.txt 'error: .*key `library`.*no-such-vendor\.so'
    must_match out.txt '^slot 1  web  \(local\)  ok$'
    must_match out.txt 'keys: +1 key objects visible without login'
    must_match out.txt 'PIN: +user PIN set'
    must_match out.txt 'listing: [0-9.]+ ms'
    must_not_match out.txt $'\e\\['
}
check "tokens: one line per slot, the broken one down with its error, exit 1" tokens_text
tokens_json() {
    exit_is 1 "$HSMUX_BIN" --json tokens
    json_check out.txt 'd[0]["health"] == "down" and "library" in d[0]["error"] and d[1]["health"] == "ok" and d[1]["backend"] == "local" and d[1]["keys"] == 1 and d[1]["latency_ms"] >= 0 and d[1]["pin"] == "user PIN set" and d[1]["slot"] == 1'
}
check "tokens --json: the same facts as JSON" tokens_json

log "hsmux keys"
keys_text() {
    HSMUX_TEST_PIN=$USER_PIN exit_is 0 "$HSMUX_BIN" keys web --pin env:HSMUX_TEST_PIN
    must_match out.txt '^web  tls +id=0a0b +private EC 256 bits  \[sign.*\]  local store$'
    must_match out.txt '^web  tls +id=0a0b +public +EC 256 bits  \[verify.*\]  local store$'
}
check "keys TOKEN --pin env:NAME: both halves with label, CKA_ID, type, size, usage, location" keys_text
keys_public() {
    exit_is 0 "$HSMUX_BIN" keys web
    must_match out.txt 'public'
    must_not_match out.txt 'private'
}
check "keys without --pin: public objects only" keys_public
keys_json() {
    HSMUX_TEST_PIN=$USER_PIN exit_is 0 "$HSMUX_BIN" --json keys web --pin env:HSMUX_TEST_PIN
    json_check out.txt 'sorted(k["class"] for k in d) == ["private", "public"] and all(k["id"] == "0a0b" and k["key_type"] == "EC" and k["size"] == 256 for k in d)'
}
check "keys --json" keys_json
check "keys of every token: the broken one is a problem, exit 1" exit_is 1 "$HSMUX_BIN" keys
check "keys of a token that does not exist: exit 2, naming the tokens there are" \
    sh -c '"$0" keys nope >out.txt 2>&1; rc=$?; cat out.txt; [ $rc = 2 ] && grep -q "broken, web" out.txt' "$HSMUX_BIN"
check "keys --pin env:UNSET: exit 2 naming the variable" \
    sh -c '"$0" keys web --pin env:HSMUX_TEST_UNSET_PIN >out.txt 2>&1; rc=$?; cat out.txt; [ $rc = 2 ] && grep -q HSMUX_TEST_UNSET_PIN out.txt' "$HSMUX_BIN"

log "PIN retries (pin_retries = 3) as hsmux tokens shows them"
wrong_login() { ! p11 --slot 1 --login --pin wrong-pin -O; }
check "a wrong user PIN is refused" wrong_login
check "a second wrong user PIN is refused" wrong_login
retries_shown() {
    exit_is 1 "$HSMUX_BIN" tokens
    must_match out.txt 'PIN: +user PIN: one try left \(2 wrong in a row; 3 lock it\)'
    exit_is 1 "$HSMUX_BIN" --json tokens
    json_check out.txt 'd[1]["pin_failures"] == 2 and d[1]["pin_retries"] == 3'
}
check "tokens shows the wrong PINs so far and the configured limit" retries_shown
check "the third wrong PIN locks it" wrong_login
locked() {
    exit_is 1 "$HSMUX_BIN" tokens
    must_match out.txt 'PIN: +user PIN locked \(SO C_InitPIN sets a new one\)'
    ! p11 --slot 1 --login --pin "$USER_PIN" -O
}
check "a locked PIN is shown as locked, and the right PIN no longer logs in" locked
check_output "the SO unlocks it by setting a new user PIN (C_InitPIN)" "User PIN successfully initialized" \
    p11 --slot 1 --init-pin --login --login-type so --so-pin "$SO_PIN" --new-pin "$USER_PIN"
unlocked() {
    p11 --slot 1 --login --pin "$USER_PIN" -O >/dev/null
    exit_is 1 "$HSMUX_BIN" tokens
    must_match out.txt 'PIN: +user PIN set \(0 wrong in a row; 3 lock it\)'
}
check "after C_InitPIN the user logs in again and the count is 0" unlocked

log "hsmux config check"
check_output "config check of a good file: no problems, exit 0" "hsmux\.toml: 2 token\(s\), no problems" \
    hsmux config check
printf '[[token]]\nlabel = "a"\nbackend = "local"\npth = "x"\n\n[[token]]\nlabel = "b"\nbackend = "nope"\n\n[[token]]\nlabel = "c"\nbackend = "local"\n' >bad.toml
config_bad() {
    exit_is 1 "$HSMUX_BIN" config check bad.toml
    must_match out.txt 'problem: config .*bad\.toml: line 4: token "a": key `pth`'
    must_match out.txt 'problem: config .*bad\.toml: line 8: token "b": key `backend`: unknown backend "nope"'
    test "$(grep -c '^problem' out.txt)" = 2
}
check "config check: every problem with file and line, exit 1" config_bad
config_json() {
    exit_is 1 "$HSMUX_BIN" --json config check bad.toml
    json_check out.txt 'd["tokens"] == 3 and len(d["problems"]) == 2 and d["file"].endswith("bad.toml")'
}
check "config check --json" config_json
printf '[[token]\n' >not-toml.toml
check "config check of a file that is not TOML: exit 2 with line and column" \
    sh -c '"$0" config check not-toml.toml >out.txt 2>&1; rc=$?; cat out.txt; [ $rc = 2 ] && grep -q "line 1, column" out.txt' "$HSMUX_BIN"

log "hsmux doctor"
doctor_text() {
    exit_is 1 "$HSMUX_BIN" doctor --module "$MODULE"
    must_match out.txt "^ok    module $MODULE: an ELF shared object"
    must_match out.txt '^ok    configuration .*hsmux\.toml: 2 token\(s\), no problems'
    must_match out.txt '^FAIL  slot 0 broken \(pkcs11\): .*no-such-vendor\.so'
    must_match out.txt '^ok    slot 1 web \(local\): store opened'
    must_match out.txt '^pkcs11-tool \(OpenSC\) — found: '
    must_match out.txt "pkcs11-tool --module $MODULE --list-slots"
    must_match out.txt "MODULE_PATH = $MODULE"
    must_match out.txt "pkcs11-module-path = $MODULE"
    must_match out.txt "library = $MODULE"
    must_match out.txt "module: $MODULE"
    must_match out.txt "ssh-keygen -D $MODULE"
}
check "doctor: module, config, each backend, and a snippet for every client (exit 1: one slot is down)" doctor_text
doctor_json() {
    exit_is 1 "$HSMUX_BIN" --json doctor --module "$MODULE"
    json_check out.txt 'd["module"] == sys.argv[3] and [c["ok"] for c in d["checks"]] == [True, True, False, True] and any(c["name"].startswith("pkcs11-tool") and c["found"] for c in d["clients"])' "$MODULE"
}
check "doctor --json" doctor_json
check "doctor with a module file that does not exist: FAIL naming it" \
    sh -c '"$0" doctor --module /nonexistent/libhsmux.so >out.txt 2>&1; rc=$?; cat out.txt; [ $rc = 1 ] && grep -q "^FAIL  module /nonexistent/libhsmux.so: cannot read" out.txt' "$HSMUX_BIN"
cat >healthy.toml <<EOF
[[token]]
label = "web"
backend = "local"
path = "$WORK/web-store"
pin_kdf_iterations = 1000
EOF
healthy() {
    HSMUX_CONFIG=$WORK/healthy.toml exit_is 0 "$HSMUX_BIN" doctor --module "$MODULE"
    HSMUX_CONFIG=$WORK/healthy.toml exit_is 0 "$HSMUX_BIN" tokens
}
check "with only the healthy token, doctor and tokens exit 0" healthy

finish
