#!/usr/bin/env bash
# Everything the project checks, in one command: installs the test dependencies, then
# cargo fmt --check, clippy, release build, cargo test (the black-box tests load
# target/release/libhsmux.so), shellcheck of the scripts, and every real-client script
# in pkcs11-tests/clients/. Ends with one line "N passed, M failed" (cargo's tests, the
# steps above and each client check) and exits non-zero if anything failed.
#
# Environment: CLIENT_TIMEOUT (seconds per client script, default 600), TEST_BUDGET
# (seconds for the whole run, default 2400: no step may run past it), SKIP_CARGO=1 to
# run only the client scripts against an existing build.
set -euo pipefail
# Every step runs even when an earlier one failed: each command whose status is judged
# runs between "set +e" and "set -e" and its status is recorded, never ignored.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/common.sh
source scripts/common.sh

START=$(date +%s)
LOG_DIR=$ROOT/target/test-logs
mkdir -p "$LOG_DIR"
RESULTS=$LOG_DIR/results.txt
: >"$RESULTS"
export HSMUX_RESULTS=$RESULTS
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-600}
DEADLINE=$((START + ${TEST_BUDGET:-2400}))
CARGO_PASSED=0
CARGO_FAILED=0

banner() { printf '\n========== %s ==========\n' "$*"; }
record() { printf '%s %s\n' "$1" "$2" >>"$RESULTS"; }
count() { awk -v re="$1" '$0 ~ re { n++ } END { print n + 0 }' "$RESULTS"; }
# limit N: N seconds, or what is left of the whole run's budget if that is less.
limit() {
    local left=$((DEADLINE - $(date +%s)))
    if ((left < 1)); then left=1; fi
    if (($1 < left)); then echo "$1"; else echo "$left"; fi
}

# step NAME TIMEOUT CMD...: run a bounded step, its output to the console and a log;
# it counts as one check.
step() {
    local name=$1 limit rc
    limit=$(limit "$2")
    shift 2
    banner "$name"
    set +e
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$LOG_DIR/$(echo "$name" | tr -c 'A-Za-z0-9\n' '_').log"
    rc=${PIPESTATUS[0]}
    set -e
    if [[ $rc == 0 ]]; then
        record PASS "$name"
    elif [[ $rc == 124 ]]; then
        record FAIL "$name (timed out after ${limit}s)"
    else
        record FAIL "$name (exit status $rc)"
    fi
}

banner "dependencies"
if ensure_packages softhsm2 opensc libengine-pkcs11-openssl gnutls-bin openssl pkg-config \
    libssl-dev openjdk-17-jdk-headless shellcheck python3-venv; then
    record PASS "test dependencies installed"
else
    record FAIL "test dependencies installed"
fi
if ensure_cargo; then
    record PASS "cargo available"
else
    record FAIL "cargo available"
    SKIP_CARGO=1
fi

if [[ ${SKIP_CARGO:-0} != 1 ]]; then
    step "cargo fmt --all --check" 300 cargo fmt --all --check
    step "cargo clippy --all-targets -- -D warnings" 1200 cargo clippy --all-targets -- -D warnings
    step "cargo build --release" 1200 cargo build --release
    # Each backend behind its own cargo feature: the module builds with each one alone
    # (every feature of pkcs11-module/Cargo.toml but `default`, so a new backend is built
    # alone without a change here).
    mapfile -t FEATURES < <(awk '/^\[features\]/ { on = 1; next } /^\[/ { on = 0 }
        on && /^[a-z0-9-]+ *=/ && $1 != "default" { print $1 }' pkcs11-module/Cargo.toml)
    for feature in "${FEATURES[@]}"; do
        step "cargo build --release -p hsmux --no-default-features --features $feature" 900 \
            cargo build --release -p hsmux --no-default-features --features "$feature" \
            --target-dir target/features
    done

    # LocalStack plays AWS KMS for the aws-kms backend's tests (KMS only, no Docker,
    # 127.0.0.1, stopped by PID on exit).
    banner "LocalStack (AWS KMS) for the aws-kms tests"
    export HSMUX_LOCALSTACK_STATE=$ROOT/target/localstack
    trap 'scripts/localstack.sh stop >/dev/null 2>&1 || :' EXIT
    set +e
    timeout --kill-after=10 "$(limit 600)" scripts/localstack.sh start 2>&1 | tee "$LOG_DIR/localstack.log"
    rc=${PIPESTATUS[0]}
    set -e
    if [[ $rc == 0 ]]; then
        eval "$(scripts/localstack.sh env)"
        record PASS "LocalStack started for the aws-kms tests"
    elif [[ ${CI:-} == true ]]; then
        record FAIL "LocalStack started for the aws-kms tests (exit status $rc)"
    else
        # Outside CI a missing prerequisite skips what needs it, said once, not as one
        # failure per test.
        SKIP_KMS="LocalStack could not start (target/test-logs/localstack.log says why; it needs a Python >= 3.13): skipping the aws-kms tests (localstack:: in cargo test, clients/aws-kms.sh)"
        echo "test.sh: $SKIP_KMS"
        record SKIP "$SKIP_KMS"
    fi

    banner "cargo test --workspace --release --no-fail-fast"
    # --no-fail-fast: one failing test binary must not hide the results of the others.
    set +e
    skip=()
    if [[ -n ${SKIP_KMS:-} ]]; then skip=(-- --skip localstack::); fi
    timeout --kill-after=10 "$(limit 1200)" cargo test --workspace --release --no-fail-fast "${skip[@]}" 2>&1 |
        tee "$LOG_DIR/cargo-test.log"
    rc=${PIPESTATUS[0]}
    set -e
    # Add up every "test result: ok. N passed; M failed; ..." line (unit, integration, doc).
    read -r CARGO_PASSED CARGO_FAILED < <(awk '
        /^test result: / { for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed;?$/) p += $i
            if ($(i + 1) ~ /^failed;?$/) f += $i } }
        END { print p + 0, f + 0 }' "$LOG_DIR/cargo-test.log")
    if [[ $rc != 0 ]] && ((CARGO_FAILED == 0)); then
        # Did not compile, timed out or crashed: no test line says so, so count it here.
        record FAIL "cargo test --workspace --release (exit status $rc, no failing test reported)"
    fi
fi

banner "shellcheck"
mapfile -t SCRIPTS < <(ls scripts/*.sh pkcs11-tests/clients/*.sh .ci/run 2>/dev/null)
if command -v shellcheck >/dev/null 2>&1; then
    step "shellcheck -S warning (scripts)" 300 shellcheck -x -S warning "${SCRIPTS[@]}"
else
    record FAIL "shellcheck installed"
fi

for script in pkcs11-tests/clients/*.sh; do
    [[ $(basename "$script") == lib.sh ]] && continue
    if [[ -n ${SKIP_KMS:-} && $(basename "$script") == aws-kms.sh ]]; then
        echo "skipped: $script (no LocalStack)"
        continue
    fi
    banner "client: $script"
    before=$(count "^FAIL $(basename "$script"):")
    set +e
    script_limit=$(limit "$CLIENT_TIMEOUT")
    timeout --kill-after=10 "$script_limit" bash "$script" </dev/null 2>&1 |
        tee "$LOG_DIR/client-$(basename "$script" .sh).log"
    rc=${PIPESTATUS[0]}
    set -e
    after=$(count "^FAIL $(basename "$script"):")
    if [[ $rc == 124 ]]; then
        record FAIL "$(basename "$script"): timed out after ${script_limit}s"
    elif [[ $rc != 0 && $after == "$before" ]]; then
        record FAIL "$(basename "$script"): exited with status $rc without a failed check"
    fi
done

banner "summary"
PASSED=$(($(count '^PASS ') + CARGO_PASSED))
FAILED=$(($(count '^FAIL ') + CARGO_FAILED))
echo "cargo test: $CARGO_PASSED passed, $CARGO_FAILED failed"
echo "steps and client checks: $(count '^PASS ') passed, $(count '^FAIL ') failed"
if ((FAILED > 0)); then
    echo "failed:"
    sed -n 's/^FAIL /  - /p' "$RESULTS"
    if ((CARGO_FAILED > 0)); then
        echo "  - $CARGO_FAILED cargo test(s): see target/test-logs/cargo-test.log"
    fi
fi
if (($(count '^SKIP ') > 0)); then
    echo "skipped:"
    sed -n 's/^SKIP /  - /p' "$RESULTS"
fi
echo "logs: target/test-logs/   time: $(($(date +%s) - START))s"
if (($(count '^SKIP ') > 0)); then
    echo "$PASSED passed, $FAILED failed, $(count '^SKIP ') skipped"
else
    echo "$PASSED passed, $FAILED failed"
fi
((FAILED == 0))
