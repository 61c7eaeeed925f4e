#!/usr/bin/env bash
# Benchmarks libhsmux.so against SoftHSMv2 in one interleaved run and prints the table:
# operation × threads × module → ops/s, p50 and p99 latency, the ratio hsmux / SoftHSM,
# and whether each target is met. Builds the module and the bench (release), prepares
# throwaway tokens for both modules in a temporary directory (removed afterwards), and
# writes target/bench/results.json (the previous run is kept as results.prev.json and
# the table shows the change against it).
#
# The remote suite (--suite remote, or all, the default) also needs LocalStack playing
# AWS KMS: this script starts its own instance (scripts/localstack.sh, state in the
# temporary directory, installed into ~/.cache/hsmux on first use) and stops it by PID
# when it exits. If LocalStack cannot start, the aws-kms rows say so and the rest runs.
#
# Usage: scripts/bench.sh [--quick] [--suite local|remote|all] [hsmux-bench options; see
#        target/release/hsmux-bench --help]
# Environment: SOFTHSM_MODULE (default /usr/lib/softhsm/libsofthsm2.so),
#              CARGO_TARGET_DIR (default ./target).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/common.sh
source scripts/common.sh

ensure_packages softhsm2
ensure_cargo
SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

echo "building libhsmux.so and hsmux-bench (release)"
cargo build --release -p hsmux -p hsmux-bench

# Numbers from a machine that is busy compiling are noise; say so rather than refuse.
if pgrep -x cargo >/dev/null 2>&1 || pgrep -x rustc >/dev/null 2>&1; then
    echo "note: another cargo/rustc is running: expect noisy numbers" >&2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hsmux-bench.XXXXXX")
export HSMUX_LOCALSTACK_STATE=$WORK/localstack
cleanup() {
    # LocalStack is stopped by the PID its start wrote (never by name).
    if [[ -f $HSMUX_LOCALSTACK_STATE/pid ]]; then
        scripts/localstack.sh stop || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

SUITE=all
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
    --suite) SUITE=${args[i + 1]:-} ;;
    --suite=*) SUITE=${args[i]#--suite=} ;;
    esac
done

REMOTE_ARGS=()
if [[ $SUITE == remote || $SUITE == all ]]; then
    echo "starting LocalStack (KMS only) for the aws-kms rows"
    if timeout 600 scripts/localstack.sh start; then
        eval "$(scripts/localstack.sh env)"
        REMOTE_ARGS=(--kms-endpoint "$HSMUX_TEST_KMS_ENDPOINT" --kms-python "$HSMUX_TEST_KMS_PYTHON"
            --kms-service-pid "$(cat "$HSMUX_LOCALSTACK_STATE/pid")")
        # Let LocalStack's start-up settle so the load it leaves does not land on the
        # first measurements.
        sleep 3
    else
        echo "note: LocalStack did not start: the aws-kms rows will not be measured" >&2
    fi
fi

REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- 2>/dev/null; then
    REV="$REV+dirty"
fi

"$TARGET_DIR/release/hsmux-bench" \
    --hsmux "$TARGET_DIR/release/libhsmux.so" \
    --softhsm "$SOFTHSM_MODULE" \
    --work-dir "$WORK" \
    --out "$TARGET_DIR/bench" \
    --rev "$REV" \
    ${REMOTE_ARGS[@]+"${REMOTE_ARGS[@]}"} \
    "$@"
