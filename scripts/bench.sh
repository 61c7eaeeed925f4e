#!/usr/bin/env bash
# Benchmarks libhsmux.so against SoftHSMv2 in one interleaved run and prints the table:
# operation × threads × module → ops/s, p50 and p99 latency, the ratio hsmux / SoftHSM,
# and whether each target is met. Builds the module and the bench (release), prepares
# throwaway tokens for both modules in a temporary directory (removed afterwards), and
# writes target/bench/results.json (the previous run is kept as results.prev.json and
# the table shows the change against it).
#
# Usage: scripts/bench.sh [--quick] [hsmux-bench options; see
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
trap 'rm -rf "$WORK"' EXIT

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
    "$@"
