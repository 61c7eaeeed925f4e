#!/usr/bin/env bash
# How scripts/test.sh finds what it does not install itself, with a fresh HOME: the Python
# that LocalStack needs, found where pyenv or uv keep it; and when none is there, one line
# that says what to install.
# Usage: pkcs11-tests/clients/prerequisites.sh
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$WORK"
LOCALSTACK=$REPO_ROOT/scripts/localstack.sh
FRESH_HOME=$WORK/home
mkdir -p "$FRESH_HOME"

# A Python >= 3.13 this machine has (a pyenv version directory), if any.
PYENV_DIR=${PYENV_ROOT:-$HOME/.pyenv}
found_313=$(ls -d "$PYENV_DIR"/versions/3.1[3-9]* 2>/dev/null | head -n 1 || :)

pyenv_root() {
    env -i PATH=/usr/bin:/bin HOME="$FRESH_HOME" PYENV_ROOT="$PYENV_DIR" \
        bash "$LOCALSTACK" python >python.txt
    cat python.txt
    grep -q "^$PYENV_DIR/versions/3\.1[3-9]" python.txt
    "$(cat python.txt)" -c 'import sys; assert sys.version_info >= (3, 13)'
}
if [[ -n $found_313 ]]; then
    check "a fresh HOME: the Python 3.13 under \$PYENV_ROOT is found, not only under ~/.pyenv" pyenv_root
else
    log "no pyenv Python >= 3.13 on this machine: the \$PYENV_ROOT case is not checked here"
fi
on_path() {
    mkdir -p bin
    ln -sf "$(command -v python3)" bin/python3.13
    # A stand-in that is not 3.13: found on PATH but refused by its version.
    env -i PATH="$WORK/bin:/usr/bin:/bin" HOME="$FRESH_HOME" PYENV_ROOT="$WORK/none" \
        bash "$LOCALSTACK" python >python.txt 2>python.err && rc=0 || rc=$?
    cat python.txt python.err
    if python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)'; then
        test "$rc" = 0
    else
        test "$rc" != 0
    fi
}
check "python3.13 on PATH is taken only when it is 3.13 or newer" on_path
missing() {
    env -i PATH=/usr/bin:/bin HOME="$FRESH_HOME" PYENV_ROOT="$WORK/none" \
        bash "$LOCALSTACK" python >python.txt 2>python.err && rc=0 || rc=$?
    cat python.txt python.err
    test "$rc" = 1
    test "$(wc -l <python.err)" = 1
    must_match python.err 'no Python >= 3.13 found .*install one \(pyenv install 3\.13, uv python install 3\.13\) or set PYTHON'
    must_match python.err "$WORK/none/versions"
}
if ! env -i PATH=/usr/bin:/bin python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)' 2>/dev/null; then
    check "no Python 3.13 anywhere: one line saying what to install" missing
else
    log "the system Python is >= 3.13: the missing-Python case is not checked here"
fi
explicit() {
    env -i PATH=/usr/bin:/bin HOME="$FRESH_HOME" PYTHON=/nonexistent/python3 PYENV_ROOT="$PYENV_DIR" \
        bash "$LOCALSTACK" python >python.txt
    cat python.txt
    test -s python.txt
}
if [[ -n $found_313 ]]; then
    check "a PYTHON that does not exist is passed over for the next candidate" explicit
fi

finish
