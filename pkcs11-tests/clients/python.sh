#!/usr/bin/env bash
# Drives the python-pkcs11 binding against the module: token lookup by label, logged-in
# R/W session, EC P-256 and RSA-2048 key generation, ECDSA / RSA PKCS#1 / RSA-PSS
# signatures verified in software, RSA-OAEP, AES-256 GCM and CBC-PAD, object iteration and
# bulk attribute reads, four threads signing concurrently in their own sessions, and
# C_InitToken on a used token (pkcs11-tests/python/hsmux_python_client.py).
# python-pkcs11 and cryptography are installed on demand into a venv under
# ~/.cache/hsmux/py-venv (PY_VENV=... to use another), made with the machine's python3.
# Usage: pkcs11-tests/clients/python.sh   (MODULE=/path/to/module.so to override)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_module
cd "$WORK"
PY_VENV=${PY_VENV:-$HOME/.cache/hsmux/py-venv}
PY_CLIENT=$REPO_ROOT/pkcs11-tests/python/hsmux_python_client.py
PY=$PY_VENV/bin/python

# ---------------------------------------------------------------------------------------
log "python-pkcs11 in $PY_VENV"
python_venv() {
    if [[ -x $PY ]] && t "$PY" -c 'import pkcs11' 2>/dev/null; then
        echo "python-pkcs11 already installed"
    else
        command -v python3
        python3 --version
        # --clear: a venv left by another Python version is rebuilt, not patched.
        t python3 -m venv --clear "$PY_VENV"
        timeout --kill-after=10 600 "$PY" -m pip install --quiet python-pkcs11
    fi
    # cryptography is optional (the client verifies with openssl without it).
    if ! t "$PY" -c 'import cryptography' 2>/dev/null; then
        timeout --kill-after=10 600 "$PY" -m pip install --quiet cryptography ||
            echo "note: cryptography not installed; the client verifies with openssl"
    fi
    "$PY" -m pip list 2>/dev/null | grep -Ei '^(python-pkcs11|cryptography|asn1crypto) '
    t "$PY" -c 'import pkcs11'
}
check "venv with python-pkcs11 (pip, on demand)" python_venv
if [[ $CHECK_RC != 0 ]]; then
    finish
    exit 1
fi

log "token set-up (pkcs11-tool)"
use_token python
check "token 'python' initialised with SO and user PINs" init_token python

# ---------------------------------------------------------------------------------------
log "python-pkcs11 client (pkcs11-tests/python/hsmux_python_client.py)"
run_python_client() {
    t "$PY" "$PY_CLIENT" "$MODULE" python "$SO_PIN" "$USER_PIN"
}
# The client prints "PASS name" or "FAIL name" (then indented details) per check, "NOTE"
# lines, and ends with "END n checks, f failed"; each of its checks counts here as one.
run_logged run_python_client
PY_LOG=$CHECK_LOG
PY_RC=$CHECK_RC
sed -n '/^python-pkcs11 /p; /^NOTE /p; /^      library:/p' "$PY_LOG"
detail=$WORK/python-detail.txt
current=""
flush_py_fail() {
    if [[ -n $current ]]; then fail "python: $current" "$detail"; fi
    current=""
}
while IFS= read -r line; do
    case $line in
        "PASS "*)
            flush_py_fail
            pass "python: ${line#PASS }"
            ;;
        "FAIL "*)
            flush_py_fail
            current=${line#FAIL }
            : >"$detail"
            ;;
        "      "*)
            if [[ -n $current ]]; then printf '%s\n' "$line" >>"$detail"; fi
            ;;
        *)
            flush_py_fail
            ;;
    esac
done <"$PY_LOG"
flush_py_fail
python_ran_to_end() {
    # Ran to its END line (no crash, no timeout) and its exit status says whether a check
    # failed.
    cat "$PY_LOG"
    echo "(exit status $PY_RC)"
    must_match "$PY_LOG" "^END [0-9]+ checks, [0-9]+ failed$"
    if grep -q "^FAIL " "$PY_LOG"; then test "$PY_RC" = 1; else test "$PY_RC" = 0; fi
}
check "hsmux_python_client.py ran to the end (all its checks reported)" python_ran_to_end

finish
