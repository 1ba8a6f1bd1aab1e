# Shared by scripts/test and scripts/serve: Debian packages and the virtualenv.
# Source it from the repository root; it expects PYTHON and VENV to be set.

say() { printf '==> %s\n' "$*" >&2; }

# -- Debian packages ---------------------------------------------------------
install_debian_packages() {
    # Usage: install_debian_packages PACKAGE...
    if [[ "${SKIP_APT:-}" == 1 ]]; then
        say "SKIP_APT=1: not checking Debian packages"
        return
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "no apt-get: install these yourself: $*"
        return
    fi
    local missing=()
    local package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
            missing+=("$package")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "Debian packages present: $*"
        return
    fi
    local sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        sudo=(sudo)
    fi
    say "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# -- Python virtualenv -------------------------------------------------------
make_venv() {
    # Usage: make_venv PIP_REQUIREMENT (the virtualenv is $VENV, the interpreter $PYTHON)
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        say "$PYTHON is $("$PYTHON" --version 2>&1); FasterStore needs Python 3.11 or later (set PYTHON=...)"
        exit 1
    fi
    if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say "reusing virtualenv $VENV"
    else
        say "creating virtualenv $VENV"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    say "installing $*"
    "$VENV/bin/python" -m pip install --quiet "$@"
    # Rebuild twisted/plugins/dropin.cache so `twistd fasterstore` is found.
    "$VENV/bin/python" -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))'
}

