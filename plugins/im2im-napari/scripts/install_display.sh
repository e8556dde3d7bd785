#!/usr/bin/env bash
# The Debian packages the napari plugin's tests need to draw without a screen: Xvfb (a virtual
# display, started by pytest-xvfb), Mesa's software OpenGL (napari's canvas) and the X libraries
# of Qt 6's xcb platform. Installs nothing when they are all there; needs root (or sudo) otherwise.
set -euo pipefail
packages=(xvfb libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
          libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-xfixes0 libdbus-1-3 libfontconfig1)
if [ "$(uname -s)" != "Linux" ]; then
    exit 0  # macOS and Windows: Qt draws on the desktop, nothing to install
fi
if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "install_display.sh: not a Debian system; install Xvfb, Mesa's OpenGL and Qt 6's xcb libraries yourself" >&2
    exit 0
fi
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get install -y -q "${missing[@]}" >/dev/null || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "${missing[@]}" >/dev/null; }
