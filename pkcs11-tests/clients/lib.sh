# shellcheck shell=bash
# Shared helpers for the real-client checks. Sourced by every other script here.
#
# Environment:
#   MODULE        PKCS#11 module under test (default: target/release/libhsmux.so).
#                 A path containing "softhsm" switches token setup to SoftHSMv2, which is
#                 only useful to debug these scripts themselves.
#   STEP_TIMEOUT  seconds allowed for one client command (default 120).
#   HSMUX_RESULTS file to which every check appends "PASS name" / "FAIL name"
#                 (scripts/test.sh sets it to add up all scripts).
#   KEEP_WORK=1   keep the scratch directory for inspection.
#   VERBOSE=1     print the full output of passing checks too.

set -euo pipefail

CLIENTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CLIENTS_DIR/../.." && pwd)
MODULE=${MODULE:-$REPO_ROOT/target/release/libhsmux.so}
STEP_TIMEOUT=${STEP_TIMEOUT:-120}
SCRIPT_NAME=$(basename "${0}")

# shellcheck disable=SC2034 # used by the scripts that source this file
SO_PIN=12345678
USER_PIN=123456

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hsmux-${SCRIPT_NAME%.sh}.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS"

PASSED=0
FAILED=0
FAILED_NAMES=()
SERVER_PIDS=()
CHECK_NO=0

is_softhsm() { [[ $MODULE == *softhsm* ]]; }

# track_pid PID: a background server for cleanup to stop (also from a check's subshell).
track_pid() { echo "$1" >>"$WORK/server.pids"; }

cleanup() {
    local pid i
    if [[ -f $WORK/server.pids ]]; then mapfile -t -O "${#SERVER_PIDS[@]}" SERVER_PIDS <"$WORK/server.pids"; fi
    for pid in "${SERVER_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || continue
        kill "$pid" 2>/dev/null || continue
        for i in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || echo "note: PID $pid survived" >&2; fi
        : "$i"
    done
    if [[ ${KEEP_WORK:-0} == 1 ]]; then
        echo "scratch directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
# Stopped by a signal (e.g. scripts/test.sh's timeout): still run cleanup.
trap 'exit 143' TERM
trap 'exit 130' INT

log() { printf '==> %s\n' "$*"; }

record() { # record PASS|FAIL name
    if [[ -n ${HSMUX_RESULTS:-} ]]; then
        printf '%s %s: %s\n' "$1" "$SCRIPT_NAME" "$2" >>"$HSMUX_RESULTS"
    fi
}

pass() {
    PASSED=$((PASSED + 1))
    record PASS "$1"
    printf 'PASS  %s\n' "$1"
}

fail() { # fail name [logfile]
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$1")
    record FAIL "$1"
    printf 'FAIL  %s\n' "$1"
    if [[ -n ${2:-} && -s $2 ]]; then
        echo '      --- output (last 40 lines) ---'
        tail -n 40 "$2" | sed 's/^/      | /'
        echo '      ---'
    fi
}

# Run "$@" (a command or a shell function) in a subshell with errexit on and its output
# in a log file. Sets CHECK_LOG and CHECK_RC. Never exits the caller.
run_logged() {
    CHECK_NO=$((CHECK_NO + 1))
    CHECK_LOG=$LOGS/$(printf '%03d' "$CHECK_NO").log
    set +e
    (
        set -e
        "$@"
    ) >"$CHECK_LOG" 2>&1 </dev/null
    CHECK_RC=$?
    set -e
    if [[ ${VERBOSE:-0} == 1 ]]; then sed 's/^/      | /' "$CHECK_LOG"; fi
}

# check NAME CMD...: passes when CMD exits 0.
check() {
    local name=$1
    shift
    run_logged "$@"
    if [[ $CHECK_RC == 0 ]]; then
        pass "$name"
    else
        echo "      (exit status $CHECK_RC)" >>"$CHECK_LOG"
        fail "$name" "$CHECK_LOG"
    fi
}

# check_output NAME REGEX CMD...: CMD exits 0 and its output matches the extended REGEX.
check_output() {
    local name=$1 regex=$2
    shift 2
    run_logged "$@"
    if [[ $CHECK_RC != 0 ]]; then
        echo "      (exit status $CHECK_RC)" >>"$CHECK_LOG"
        fail "$name" "$CHECK_LOG"
    elif ! grep -Eq -- "$regex" "$CHECK_LOG"; then
        echo "      (exit status 0 but output does not match /$regex/)" >>"$CHECK_LOG"
        fail "$name" "$CHECK_LOG"
    else
        pass "$name"
    fi
}

# check_fails NAME REGEX CMD...: CMD must fail (non-zero, not a timeout) and its output
# must match REGEX: a negative check that a wrong input is refused for the right reason.
check_fails() {
    local name=$1 regex=$2
    shift 2
    run_logged "$@"
    if [[ $CHECK_RC == 0 ]]; then
        echo "      (exit status 0: expected a failure)" >>"$CHECK_LOG"
        fail "$name" "$CHECK_LOG"
    elif [[ $CHECK_RC == 124 ]]; then
        echo "      (timed out after ${STEP_TIMEOUT}s)" >>"$CHECK_LOG"
        fail "$name" "$CHECK_LOG"
    elif ! grep -Eq -- "$regex" "$CHECK_LOG"; then
        echo "      (failed with status $CHECK_RC but output does not match /$regex/)" >>"$CHECK_LOG"
        fail "$name" "$CHECK_LOG"
    else
        pass "$name"
    fi
}

# finish: print this script's summary and exit non-zero when a check failed.
finish() {
    echo
    if ((FAILED > 0)); then
        echo "Failed checks in $SCRIPT_NAME:"
        printf '  - %s\n' "${FAILED_NAMES[@]}"
    fi
    echo "$SCRIPT_NAME: $PASSED passed, $FAILED failed"
    ((FAILED == 0))
}

# not CMD...: succeeds when CMD fails. Use it instead of "! CMD", which errexit ignores
# inside the functions that checks run.
not() {
    if "$@"; then return 1; fi
    return 0
}

# must_match FILE ERE / must_not_match FILE ERE: assertions that say what they missed.
must_match() {
    if grep -Eq -- "$2" "$1"; then return 0; fi
    echo "ASSERTION: no line of $(basename "$1") matches /$2/"
    return 1
}
must_not_match() {
    if ! grep -Eq -- "$2" "$1"; then return 0; fi
    echo "ASSERTION: $(basename "$1") must not match /$2/ but has:"
    grep -E -- "$2" "$1" | head -5
    return 1
}

# t CMD...: run CMD bounded by STEP_TIMEOUT.
t() { timeout --kill-after=5 "$STEP_TIMEOUT" "$@"; }

# p11 ARGS...: pkcs11-tool on the module under test, bounded in time.
p11() { t pkcs11-tool --module "$MODULE" "$@"; }

# ---------------------------------------------------------------------------------------
# Tokens. Each token gets its own configuration file (one token in it), so that
# pkcs11-tool's "first slot with a token" is always that token before initialisation.

# use_token LABEL: point the module (HSMUX_CONFIG or SOFTHSM2_CONF) at LABEL's store,
# writing its configuration the first time.
use_token() {
    local label=$1 dir=$WORK/tokens/$1
    if is_softhsm; then
        export SOFTHSM2_CONF=$dir/softhsm2.conf
        if [[ ! -f $SOFTHSM2_CONF ]]; then
            mkdir -p "$dir/store"
            printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
                "$dir/store" >"$SOFTHSM2_CONF"
        fi
    else
        export HSMUX_CONFIG=$dir/hsmux.toml
        if [[ ! -f $HSMUX_CONFIG ]]; then
            mkdir -p "$dir/store"
            cat >"$HSMUX_CONFIG" <<EOF
[[token]]
label = "$label"
backend = "local"
path = "$dir/store"
pin_kdf_iterations = 1000
EOF
        fi
    fi
    TOKEN=$label
}

# init_token LABEL: initialise LABEL's token with SO_PIN and set USER_PIN.
init_token() {
    use_token "$1"
    p11 --init-token --label "$1" --so-pin "$SO_PIN"
    p11 --token-label "$1" --init-pin --login --login-type so --so-pin "$SO_PIN" --new-pin "$USER_PIN"
}

# p11u ARGS...: pkcs11-tool logged in as user on the current token.
p11u() { p11 --token-label "$TOKEN" --login --pin "$USER_PIN" "$@"; }

# export_pubkey LABEL OUT.pem: the token's public key object LABEL as PEM.
export_pubkey() {
    p11 --token-label "$TOKEN" --read-object --type pubkey --label "$1" -o "$2.der"
    openssl pkey -pubin -inform DER -in "$2.der" -out "$2"
}

hex2bin() { printf '%b' "$(printf '%s' "$1" | sed 's/../\\x&/g')"; }
der_len() { # DER length octets of N, in hex
    if (($1 < 128)); then printf '%02x' "$1"
    elif (($1 < 256)); then printf '81%02x' "$1"
    else printf '82%04x' "$1"; fi
}

# ec_pubkey_from_attributes LABEL OUT.pem: SubjectPublicKeyInfo built from the
# CKA_EC_PARAMS and CKA_EC_POINT that pkcs11-tool lists for public key LABEL.
ec_pubkey_from_attributes() {
    local params point spki alg bits
    p11 --token-label "$TOKEN" --list-objects --type pubkey >"$2.listing"
    read -r params point < <(awk -v label="$1" '
        /^[^ \t]/ { inobj = /^Public Key Object; EC/; p = ""; q = "" }
        inobj && $1 == "EC_POINT:" { q = $2 }
        inobj && $1 == "EC_PARAMS:" { p = $2 }
        inobj && $1 == "label:" && $2 == label { print p, q; exit }' "$2.listing")
    [[ -n $params && -n $point ]]
    # CKA_EC_POINT is a DER OCTET STRING: drop its tag and length.
    if [[ ${point:2:2} == 81 ]]; then point=${point:6}; else point=${point:4}; fi
    alg="06072a8648ce3d0201$params" # id-ecPublicKey, then the curve
    alg="30$(der_len $((${#alg} / 2)))$alg"
    bits="00$point"
    bits="03$(der_len $((${#bits} / 2)))$bits"
    spki="$alg$bits"
    spki="30$(der_len $((${#spki} / 2)))$spki"
    hex2bin "$spki" >"$2.der"
    openssl pkey -pubin -inform DER -in "$2.der" -out "$2"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now, chosen below the
# kernel's ephemeral range, where outgoing connections (and their TIME_WAIT) never sit.
free_port() {
    local port i lo=32768 hi
    read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || :
    : "${hi:-}"
    ((lo > 11000)) || lo=32768
    for i in $(seq 1 50); do
        port=$((10000 + (RANDOM * 32768 + RANDOM) % (lo - 10000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
        : "$i"
    done
    echo "no free port found" >&2
    return 1
}

# serve LOG CMD...: runs the server CMD in the background, every "{PORT}" in its arguments
# replaced by a free port, and waits (at most 20 s) for "ACCEPT" in LOG. A port taken
# between the choice and the bind is tried again on another one. Sets SERVE_PORT and
# SERVE_PID (tracked, so it is stopped by PID at the end); fails when the server does not
# come up, LOG saying why.
serve() {
    local log=$1 try a args
    shift
    for try in 1 2 3 4 5; do
        SERVE_PORT=$(free_port) || return 1
        args=()
        for a in "$@"; do args+=("${a//\{PORT\}/$SERVE_PORT}"); done
        rm -f "$log"
        "${args[@]}" >"$log" 2>&1 </dev/null &
        SERVE_PID=$!
        track_pid "$SERVE_PID"
        for _ in $(seq 1 200); do
            grep -q '^ACCEPT' "$log" 2>/dev/null && return 0
            kill -0 "$SERVE_PID" 2>/dev/null || break
            sleep 0.1
        done
        grep -q 'Address already in use' "$log" 2>/dev/null || break
        echo "port $SERVE_PORT was taken (try $try); another one" >&2
    done
    cat "$log" >&2
    return 1
}

# require_module: the module file exists (a check of its own, so a missing build fails).
require_module() {
    if [[ -f $MODULE ]]; then
        pass "module $(basename "$MODULE") is built"
    else
        fail "module $MODULE exists (run cargo build --release)"
        finish
        exit 1
    fi
}

log "module under test: $MODULE"
log "scratch directory: $WORK"
