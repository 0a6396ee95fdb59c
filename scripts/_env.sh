# Shared by scripts/serve.sh and scripts/test.sh: a virtualenv in .venv with hubbub in it.
# Needs Python 3.11+ (Debian 12, Ubuntu 24.04 or newer).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_install() {
    # Installs the Debian packages named, if any are missing.
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}"
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

pip_install_once() {
    # pip_install_once SPEC STAMP: `pip install -e SPEC` into .venv, unless .venv/STAMP says
    # that SPEC was installed from this very pyproject.toml. The stamp lives inside .venv, so
    # a new .venv (or a fresh clone) always installs, and it is never committed.
    local spec="$1" stamp=".venv/$2" want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1) $spec"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    echo "installing hubbub ($spec) into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -e "$spec"
    echo "$want" > "$stamp"
}

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    apt_install python3 python3-venv python3-pip
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
