#!/usr/bin/env bash
# One-time set-up of a fresh Debian machine for kinema, safe to run again (it skips what is done).
#   1. Debian libraries the stack loads at run time: FFmpeg (video decoding for lerobot/torchcodec)
#      and Mesa EGL (headless MuJoCo rendering). Installed when run as root, otherwise named.
#   2. A Python 3.12 virtual environment in .venv with kinema and its dev extra, installed in
#      editable mode. Re-installed only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP=$VENV/.kinema-installed

find_python312() {
    local candidate
    for candidate in "${KINEMA_PYTHON:-}" python3.12 \
        "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12 \
        "$HOME"/.pyenv/versions/3.12*/bin/python3.12 \
        /usr/local/bin/python3.12 /usr/bin/python3.12; do
        [ -n "$candidate" ] || continue
        if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

install_debian_packages() {
    local wanted=(ffmpeg libegl1 libegl-mesa0 libgl1-mesa-dri)
    local missing=()
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "kinema setup: installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "kinema setup: missing Debian packages (install them as root): ${missing[*]}" >&2
    fi
}

install_debian_packages

wanted_stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted_stamp" ]; then
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    PYTHON=$(find_python312) || {
        echo "kinema setup: Python 3.12 not found (looked on PATH, in pyenv and /usr). Install it," \
             "or point KINEMA_PYTHON at a python3.12 binary." >&2
        exit 1
    }
    echo "kinema setup: creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
echo "kinema setup: installing kinema and its dependencies into $VENV (about two minutes)"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[dev]"
echo "$wanted_stamp" > "$STAMP"
