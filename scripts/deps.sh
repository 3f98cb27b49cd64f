#!/usr/bin/env bash
# Installs every system dependency of maskwatch on Debian 12, idempotently.
# A second run with everything present only checks and returns in about a second.
#
# TFLite 2.14.1 comes from Debian unstable (sid), pinned at priority 100 so
# that nothing else on the machine is upgraded from there unless named with -t sid.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
libdir="$here/.deps/lib"

# Packages from Debian 12 itself.
stable_pkgs=(
  build-essential pkg-config git ca-certificates xz-utils
  libopencv-dev libopenblas-dev ffmpeg
  xvfb xauth x11-utils imagemagick
  chromium fonts-dejavu-core
  mosquitto mosquitto-clients gstreamer1.0-plugins-base
  # the kiosk window test: a window manager, as a kiosk's X session has one
  matchbox-window-manager
  # cross/: arm64 cross compilers, qemu-aarch64 to run what they build, file
  gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user file debian-archive-keyring
)
# Packages taken from sid (see the pin below): TFLite 2.14.1, and Arm NN's TFLite
# parser with its CpuRef backend, which tests use as an independent reader of the
# TFLite files maskwatch writes.
sid_pkgs=(libtensorflow-lite-dev libarmnntfliteparser-dev libarmnn-cpuref-backend33)

sudo_cmd=()
if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi

missing() {
  # One dpkg-query for all names; a package it does not know is missing too.
  local installed
  installed=$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null |
    awk '$NF == "installed" {print $1}')
  local p
  for p in "$@"; do
    grep -qx "$p" <<<"$installed" || echo "$p"
  done
}

apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    "${sudo_cmd[@]}" apt-get -o Acquire::Check-Valid-Until=false update -qq
    apt_updated=1
  fi
}

export DEBIAN_FRONTEND=noninteractive

need=$(missing "${stable_pkgs[@]}")
if [ -n "$need" ]; then
  echo "deps: installing from Debian 12: $(echo $need)"
  apt_update
  # shellcheck disable=SC2086
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends $need
fi

# The pinned sid source for TFLite. Priority 100 keeps sid from upgrading
# anything that is not asked for with -t sid.
sid_list=/etc/apt/sources.list.d/maskwatch-sid.list
sid_pref=/etc/apt/preferences.d/maskwatch-sid
sid_conf=/etc/apt/apt.conf.d/99maskwatch-sid
if [ ! -f "$sid_list" ] || [ ! -f "$sid_pref" ] || [ ! -f "$sid_conf" ]; then
  echo "deps: adding the pinned Debian sid source for TFLite"
  echo 'deb http://deb.debian.org/debian sid main' | "${sudo_cmd[@]}" tee "$sid_list" >/dev/null
  printf 'Package: *\nPin: release n=sid\nPin-Priority: 100\n' |
    "${sudo_cmd[@]}" tee "$sid_pref" >/dev/null
  echo 'Acquire::Check-Valid-Until "false";' | "${sudo_cmd[@]}" tee "$sid_conf" >/dev/null
  apt_updated=0
fi

need=$(missing "${sid_pkgs[@]}")
if [ -n "$need" ]; then
  echo "deps: installing from Debian sid: $(echo $need)"
  apt_update
  # shellcheck disable=SC2086
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends -t sid $need
fi

# go-tflite links -ltensorflowlite_c; Debian ships the C API inside
# libtensorflow-lite.so, so a symlink under that name is all it needs.
tfl=$(find /usr/lib -name 'libtensorflow-lite.so' 2>/dev/null | head -n1)
if [ -z "$tfl" ]; then
  echo "deps: libtensorflow-lite.so not found after installing libtensorflow-lite-dev" >&2
  exit 1
fi
mkdir -p "$libdir"
if [ "$(readlink "$libdir/libtensorflowlite_c.so" 2>/dev/null)" != "$tfl" ]; then
  ln -sf "$tfl" "$libdir/libtensorflowlite_c.so"
fi

echo "deps: all present (TFLite at $tfl)"
