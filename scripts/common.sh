# shellcheck shell=bash
# Helpers shared by scripts/demo.sh and scripts/test.sh: installing Debian packages
# only when missing, and finding cargo.

APT_UPDATED=${APT_UPDATED:-0}

# as_root CMD...: run CMD as root (directly when root, else through sudo).
as_root() {
    if [[ $(id -u) == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: '$*' needs root and sudo is not installed; run it as root" >&2
        return 1
    fi
}

# ensure_packages PKG...: apt-get install -y the packages that are not installed yet,
# after one apt-get update. Does nothing when all are present.
ensure_packages() {
    local missing=() p
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        echo "note: not a Debian-like system; make sure these are installed: $*" >&2
        return 0
    fi
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} == 0)); then
        echo "packages present: $*"
        return 0
    fi
    echo "installing missing packages: ${missing[*]}"
    if [[ $APT_UPDATED != 1 ]]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ensure_cargo: cargo on PATH (rustup's default location is added when needed).
ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
        export PATH=$HOME/.cargo/bin:$PATH
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo not found. Install a Rust toolchain (1.80 or newer), e.g. with rustup." >&2
        return 1
    fi
    echo "using $(cargo --version)"
}
