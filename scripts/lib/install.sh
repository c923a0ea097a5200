# Sourced by the scripts that install what they need on a fresh Debian machine (as root):
# scripts/test.sh and scripts/check-monitoring.sh. One way to install a tool:
#   apt_install PACKAGE…    (apt-get, once updated per run; root only)
#   pip_install SPEC…       (pip of this python3, also where the system python is "externally managed")
#   need_command COMMAND HOW…  (runs HOW… unless COMMAND is on PATH, then checks it is)
# Messages go to stderr, prefixed with the calling script's name.

APT_UPDATED=${APT_UPDATED:-0}
INSTALL_WHO=${INSTALL_WHO:-$(basename "$0")}

install_warn() { printf '%s: %s\n' "$INSTALL_WHO" "$*" >&2; }

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        install_warn "cannot install $* (not root): install it and run again"
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ "$APT_UPDATED" -eq 0 ]; then
        apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null || { install_warn "apt-get update failed"; return 1; }
        APT_UPDATED=1
    fi
    install_warn "installing $* (apt)"
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null ||
        { install_warn "apt-get install $* failed"; return 1; }
}

pip_install() {
    install_warn "installing $* (pip)"
    python3 -m pip install --quiet --disable-pip-version-check "$@" 2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@" ||
        { install_warn "pip install $* failed"; return 1; }
}

need_command() {
    local command=$1
    shift
    command -v "$command" >/dev/null 2>&1 && return 0
    "$@" || return 1
    command -v "$command" >/dev/null 2>&1 || { install_warn "$command is still missing after: $*"; return 1; }
}
