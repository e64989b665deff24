#!/bin/sh
# Install km (Kilometers) for the current user, in an environment of its own. Never needs root.
#
#   curl -fsSL <url of this file> | sh        or        sh install.sh
#
# How: `uv tool install` when uv is on PATH, else `pipx install`, else a virtualenv in
# ${XDG_DATA_HOME:-~/.local/share}/kilometers/venv with a link to km in ~/.local/bin.
# Running it again upgrades km the same way (`km self-update` does that too).
#
# Settings (environment variables):
#   KM_INSTALL_SOURCE  what to install: the PyPI package (default: kilometers), a requirement
#                      such as "kilometers==0.2.0", or the path of a checkout or wheel
#   KM_INSTALL_METHOD  uv, pipx or venv: use this method instead of the first one available
#   KM_BIN_DIR         where the venv method links km (default: ~/.local/bin)
#   NO_COLOR           set it to turn colours off (they are off anyway when not on a terminal)
set -eu

SOURCE="${KM_INSTALL_SOURCE:-kilometers}"
METHOD="${KM_INSTALL_METHOD:-}"
BIN_DIR="${KM_BIN_DIR:-$HOME/.local/bin}"
DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
VENV="$DATA_HOME/kilometers/venv"

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-}" != "dumb" ]; then
    BOLD="$(printf '\033[1m')" GREEN="$(printf '\033[32m')" YELLOW="$(printf '\033[33m')"
    RED="$(printf '\033[31m')" BLUE="$(printf '\033[34m')" RESET="$(printf '\033[0m')"
else
    BOLD="" GREEN="" YELLOW="" RED="" BLUE="" RESET=""
fi

step() { printf '%s==>%s %s%s%s\n' "$BLUE" "$RESET" "$BOLD" "$*" "$RESET"; }
ok() { printf '  %s✓%s %s\n' "$GREEN" "$RESET" "$*"; }
note() { printf '  %s!%s %s\n' "$YELLOW" "$RESET" "$*"; }
die() {
    printf '%s✗ error:%s %s\n' "$RED" "$RESET" "$*" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# -- where are we ---------------------------------------------------------------------------------

step "Checking this system"
[ -n "${HOME:-}" ] || die "HOME is not set"
KERNEL="$(uname -s 2>/dev/null || echo unknown)"
case "$KERNEL" in
    Linux) OS=linux ;;
    Darwin) OS=macos ;;
    MINGW* | MSYS* | CYGWIN*) OS=windows ;;
    *) OS="$KERNEL" ;;
esac
ARCH="$(uname -m 2>/dev/null || echo unknown)"
case "$ARCH" in
    x86_64 | amd64) ARCH=x86_64 ;;
    aarch64 | arm64) ARCH=arm64 ;;
esac
ok "$OS on $ARCH"
if [ "$(id -u 2>/dev/null || echo 1)" = 0 ]; then
    note "running as root is not needed: km is installed for this user ($HOME) only"
fi

# a local checkout or wheel is installed by its absolute path
case "$SOURCE" in
    /* | ./* | ../* | ~*) IS_PATH=1 ;;
    *) if [ -e "$SOURCE" ]; then IS_PATH=1; else IS_PATH=0; fi ;;
esac
if [ "$IS_PATH" = 1 ]; then
    [ -e "$SOURCE" ] || die "KM_INSTALL_SOURCE=$SOURCE does not exist"
    if [ -d "$SOURCE" ]; then
        SOURCE="$(cd "$SOURCE" && pwd)"
    else
        SOURCE="$(cd "$(dirname "$SOURCE")" && pwd)/$(basename "$SOURCE")"
    fi
fi
ok "installing from: $SOURCE"

PYTHON=""
for candidate in python3.13 python3.12 python3.11 python3 python; do
    if have "$candidate" && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        PYTHON="$(command -v "$candidate")"
        break
    fi
done
if [ -n "$PYTHON" ]; then
    ok "Python $("$PYTHON" -c 'import platform; print(platform.python_version())') at $PYTHON"
fi

if [ -z "$METHOD" ]; then
    if have uv; then
        METHOD=uv
    elif have pipx; then
        METHOD=pipx
    else
        METHOD=venv
    fi
fi

# -- install --------------------------------------------------------------------------------------

case "$METHOD" in
    uv)
        have uv || die "KM_INSTALL_METHOD=uv but uv is not on PATH"
        step "Installing km with uv tool install"
        if [ "$IS_PATH" = 1 ]; then
            uv tool install --force --reinstall "$SOURCE"
        else
            uv tool install --force --upgrade "$SOURCE"
        fi
        KM="$(uv tool dir --bin)/km"
        PREFIX="$(uv tool dir)/kilometers"
        ;;
    pipx)
        have pipx || die "KM_INSTALL_METHOD=pipx but pipx is not on PATH"
        step "Installing km with pipx"
        if [ -n "$PYTHON" ]; then
            pipx install --force --python "$PYTHON" "$SOURCE"
        else
            pipx install --force "$SOURCE"
        fi
        KM="$(pipx environment --value PIPX_BIN_DIR)/km"
        PREFIX="$(pipx environment --value PIPX_LOCAL_VENVS)/kilometers"
        ;;
    venv)
        [ -n "$PYTHON" ] || die "km needs Python 3.11 or newer, and none was found on PATH.
  Install Python 3.11+ (or uv: https://docs.astral.sh/uv/), then run this script again."
        step "Installing km in a virtualenv: $VENV"
        if [ "$OS" = windows ]; then VBIN="$VENV/Scripts" EXE=".exe"; else VBIN="$VENV/bin" EXE=""; fi
        if [ ! -x "$VBIN/python$EXE" ]; then
            mkdir -p "$(dirname "$VENV")"
            "$PYTHON" -m venv "$VENV" || die "could not create a virtualenv with $PYTHON.
  On Debian and Ubuntu, install the python3-venv package (or install uv or pipx) and run this again."
        fi
        ok "virtualenv ready"
        ok "installing km and its dependencies with pip (this can take a minute)"
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$VBIN/python$EXE" -m pip install --quiet --upgrade "$SOURCE" \
            || die "pip could not install $SOURCE (see its messages above)"
        mkdir -p "$BIN_DIR"
        KM="$BIN_DIR/km$EXE"
        if [ -e "$KM" ] && [ ! -L "$KM" ]; then
            note "replacing $KM (it was not a link to this virtualenv)"
        fi
        ln -sf "$VBIN/km$EXE" "$KM"
        PREFIX="$VENV"
        ;;
    *) die "unknown KM_INSTALL_METHOD=$METHOD (use uv, pipx or venv)" ;;
esac

# remember how km was installed, for `km self-update`
if [ -d "$PREFIX" ]; then
    escaped="$(printf '%s' "$SOURCE" | sed 's/\\/\\\\/g; s/"/\\"/g')"
    printf '{"method": "%s", "source": "%s"}\n' "$METHOD" "$escaped" >"$PREFIX/km-install.json" \
        || note "could not write $PREFIX/km-install.json (km self-update will guess the method)"
fi

# -- check ----------------------------------------------------------------------------------------

step "Checking the installation"
[ -x "$KM" ] || die "km was not installed at $KM"
VERSION="$("$KM" --version 2>&1)" || die "the installed km does not run: $VERSION"
ok "$VERSION ($KM, installed with $METHOD)"

KM_DIR="$(dirname "$KM")"
case ":${PATH:-}:" in
    *":$KM_DIR:"*) ok "$KM_DIR is on PATH" ;;
    *)
        note "$KM_DIR is not on your PATH; add it to your shell's startup file:"
        # shellcheck disable=SC2016 # $PATH is meant literally: it is for the user's startup file
        printf '      export PATH="%s:$PATH"\n' "$KM_DIR"
        ;;
esac

printf '\n%skm is installed.%s Next:\n' "$GREEN$BOLD" "$RESET"
printf '  km doctor            check the installation, the store and your MCP clients\n'
printf '  km wrap --dry-run    see how km would route your MCP servers through it; then km wrap\n'
printf '  km completion bash   shell completion (also zsh, fish); see docs/clients.md\n'
