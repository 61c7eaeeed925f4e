#!/usr/bin/env bash
# LocalStack playing AWS KMS for the aws-kms tests: KMS only, no Docker, on 127.0.0.1.
#
#   scripts/localstack.sh install   create the venv (PyPI localstack-core + boto3) if missing
#   scripts/localstack.sh python    print the Python >= 3.13 it would build the venv with
#   scripts/localstack.sh start     install if needed, start, wait for KMS (bounded), write PID
#   scripts/localstack.sh env       print the variables the tests read, for `eval`
#   scripts/localstack.sh stop      stop the instance by its PID
#   scripts/localstack.sh status    exit 0 when the instance answers
#
# `start` when an instance of the same state directory already answers does nothing, so
# `eval "$(scripts/localstack.sh start >&2 && scripts/localstack.sh env)"` is idempotent.
#
# Environment:
#   HSMUX_LOCALSTACK_STATE  state directory (PID, port, log); default
#                           ~/.cache/hsmux/localstack-run. Give each concurrent user its own.
#   HSMUX_LOCALSTACK_VENV   the venv; default ~/.cache/hsmux/localstack-venv
#   LOCALSTACK_PORT         port to listen on (default: a free port, remembered in the state)
#   LOCALSTACK_START_TIMEOUT seconds to wait for KMS to answer (default 120)
#   PYTHON                  a Python >= 3.13 to build the venv with (default: searched)
set -euo pipefail

# localstack-core's release, and every dependency pinned to what PyPI had that day, so a
# later release of anything cannot change what the tests run against.
LOCALSTACK_VERSION=2026.3.0
EXCLUDE_NEWER=2026-03-24T00:00:00Z
UV_VERSION=0.10.12

VENV=${HSMUX_LOCALSTACK_VENV:-$HOME/.cache/hsmux/localstack-venv}
STATE=${HSMUX_LOCALSTACK_STATE:-$HOME/.cache/hsmux/localstack-run}
START_TIMEOUT=${LOCALSTACK_START_TIMEOUT:-120}

say() { printf 'localstack.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# find_python: a Python >= 3.13 (localstack-core 2026.3 imports warnings.deprecated,
# new in 3.13, although its metadata claims >= 3.10).
find_python() {
    local c found root=${PYENV_ROOT:-$HOME/.pyenv}
    local candidates=("${PYTHON:-}" python3.14 python3.13)
    # pyenv's interpreters where pyenv keeps them (its shims only run the selected one).
    candidates+=("$root"/versions/3.1[3-9]*/bin/python3)
    if command -v uv >/dev/null 2>&1 && found=$(uv python find '>=3.13' 2>/dev/null); then
        candidates+=("$found")
    fi
    candidates+=(python3)
    for c in "${candidates[@]}"; do
        [[ -n $c ]] || continue
        command -v "$c" >/dev/null 2>&1 || continue
        if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)' 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

NO_PYTHON="no Python >= 3.13 found (tried \$PYTHON, python3.14, python3.13, ${PYENV_ROOT:-~/.pyenv}/versions/3.1[3-9]*, uv python find, python3): install one (pyenv install 3.13, uv python install 3.13) or set PYTHON; without it the aws-kms tests cannot run"

installed() {
    [[ -x $VENV/bin/python ]] &&
        "$VENV/bin/python" -c "import importlib.metadata as m, boto3, localstack.aws.components; \
assert m.version('localstack-core') == '$LOCALSTACK_VERSION'" 2>/dev/null
}

install() {
    local py t0
    if installed; then return 0; fi
    t0=$(date +%s)
    py=$(find_python) || die "$NO_PYTHON"
    say "installing localstack-core $LOCALSTACK_VERSION into $VENV with $py"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$py" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
    # base-runtime is what the KMS provider needs; the full `runtime` extra adds moto and
    # a JVM bridge for other services.
    "$VENV/bin/python" -m uv pip install -q --python "$VENV/bin/python" \
        --exclude-newer "$EXCLUDE_NEWER" \
        "localstack-core[base-runtime]==$LOCALSTACK_VERSION" boto3
    installed || die "the venv at $VENV does not import localstack and boto3"
    say "installed in $(($(date +%s) - t0)) s"
}

free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port() { cat "$STATE/port" 2>/dev/null; }

endpoint() { echo "http://127.0.0.1:$(port)"; }

# answers: KMS answers a ListKeys call (health alone says "available" before it loads).
answers() {
    [[ -f $STATE/port ]] || return 1
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "$VENV/bin/python" - "$(endpoint)" <<'EOF' >/dev/null 2>&1
import sys, boto3, botocore.config
cfg = botocore.config.Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1})
boto3.client("kms", region_name="us-east-1", endpoint_url=sys.argv[1], config=cfg).list_keys(Limit=1)
EOF
}

running_pid() {
    local pid
    pid=$(cat "$STATE/pid" 2>/dev/null) || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
    local pid t0 p
    install
    if running_pid >/dev/null && answers; then
        say "already running (PID $(running_pid)) at $(endpoint)"
        return 0
    fi
    if pid=$(running_pid); then stop_pid "$pid"; fi
    mkdir -p "$STATE/fs"
    p=${LOCALSTACK_PORT:-$(free_port)}
    echo "$p" >"$STATE/port"
    t0=$(date +%s)
    # The runtime's own entry point, as the Docker image runs it; everything that would
    # reach the internet (analytics, TLS certificate download) is off.
    (
        cd "$STATE"
        exec env SERVICES=kms EAGER_SERVICE_LOADING=1 \
            GATEWAY_LISTEN="127.0.0.1:$p" LOCALSTACK_HOST="127.0.0.1:$p" \
            FILESYSTEM_ROOT="$STATE/fs" PERSISTENCE=0 \
            DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 SKIP_INFRA_DOWNLOADS=1 \
            LOCALSTACK_CLI=0 DEBUG=0 PYTHONUNBUFFERED=1 \
            setsid "$VENV/bin/python" -m localstack.runtime.main
    ) >"$STATE/localstack.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$STATE/pid"
    while ! answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$STATE/localstack.log" >&2
            die "LocalStack exited during start (log: $STATE/localstack.log)"
        fi
        if (($(date +%s) - t0 > START_TIMEOUT)); then
            tail -n 30 "$STATE/localstack.log" >&2
            stop_pid "$pid"
            die "KMS did not answer within ${START_TIMEOUT}s (log: $STATE/localstack.log)"
        fi
        sleep 0.5
    done
    say "KMS answers at $(endpoint) (PID $pid) after $(($(date +%s) - t0)) s"
}

stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    : "$i"
    kill -9 "$pid" 2>/dev/null || true
}

stop() {
    local pid
    if pid=$(running_pid); then
        stop_pid "$pid"
        say "stopped PID $pid"
    else
        say "not running"
    fi
    rm -f "$STATE/pid"
}

print_env() {
    [[ -f $STATE/port ]] || die "not started (run scripts/localstack.sh start)"
    cat <<EOF
export HSMUX_TEST_KMS_ENDPOINT=$(endpoint)
export HSMUX_TEST_KMS_PYTHON=$VENV/bin/python
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_DEFAULT_REGION=us-east-1
EOF
}

case ${1:-} in
install) install ;;
python) find_python || die "$NO_PYTHON" ;;
start) start ;;
stop) stop ;;
env) print_env ;;
status) running_pid >/dev/null && answers ;;
*)
    echo "usage: $0 install|python|start|stop|env|status" >&2
    exit 2
    ;;
esac
