#!/usr/bin/env bash
# Packs maskwatch's release: one tarball a target, each a folder a device
# needs nothing else from us to run (make release):
#
#   dist/maskwatch-VERSION-linux-arm64.tar.gz   Raspberry Pi OS 64-bit, Jetson
#   dist/maskwatch-VERSION-linux-amd64.tar.gz   PCs and servers
#   dist/maskwatch-VERSION.sha256               sums of the two tarballs
#
# Each holds maskwatch-VERSION-linux-ARCH/ with
#   maskwatch          the full build (cgo: GoCV cameras and windows, TFLite)
#   maskwatch-static   the static build (no shared library at all; GoMLX engine)
#   default.mwb        the default model (also embedded in both binaries)
#   maskwatch.service  the systemd unit
#   README.md          device set-up (cross/device/README.md)
#   SHA256SUMS         sums of the files beside it
#
# VERSION (default: git describe) is stamped into the binaries; DIST names
# the output folder; TRIMPATH=0 keeps local paths in the binaries (tests do,
# to reuse their build cache). The archives are reproducible: files sorted,
# owned by root, dated at the last commit.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
version=${VERSION:-$(git -C "$here" describe --tags --always --dirty 2>/dev/null || echo dev)}
dist=${DIST:-$here/dist}
pkg=./cmd/maskwatch
model=$here/models/defaultmodel/data/default.mwb
readme=$here/cross/device/README.md

log() { echo "release: $*" >&2; }
die() { log "$*"; exit 1; }

[ -d "$here/cmd/maskwatch" ] || die "cmd/maskwatch does not exist yet: nothing to release"
[ -f "$model" ] || die "no default model at ${model#"$here"/}: export one first (see" \
  "models/defaultmodel/data/README.md)"
# The unit lives with the live pipeline; whichever tracked file it is.
mapfile -t units < <(git -C "$here" ls-files '*maskwatch.service')
[ "${#units[@]}" = 1 ] ||
  die "want exactly one tracked maskwatch.service, found ${#units[@]}: ${units[*]:-none}"
unit=$here/${units[0]}

epoch=$(git -C "$here" log -1 --format=%ct 2>/dev/null || date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dist"

tarballs=()
for arch in arm64 amd64; do
  name=maskwatch-$version-linux-$arch
  stage=$work/$name
  mkdir -p "$stage"
  export VERSION=$version LDFLAGS="-s -w" TRIMPATH=${TRIMPATH:-1}
  bash "$here/cross/build.sh" full "$arch" "$work/full-$arch" "$pkg"
  bash "$here/cross/build.sh" static "$arch" "$work/static-$arch" "$pkg"
  install -m 0755 "$work/full-$arch/maskwatch" "$stage/maskwatch"
  install -m 0755 "$work/static-$arch/maskwatch" "$stage/maskwatch-static"
  install -m 0644 "$model" "$stage/default.mwb"
  install -m 0644 "$unit" "$stage/maskwatch.service"
  install -m 0644 "$readme" "$stage/README.md"
  (cd "$stage" && sha256sum -- * >SHA256SUMS)

  tarball=$name.tar.gz
  tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -cf - "$name" | gzip -9 -n >"$dist/$tarball.tmp"
  mv "$dist/$tarball.tmp" "$dist/$tarball"
  tarballs+=("$tarball")
  log "wrote dist/$tarball ($(du -h "$dist/$tarball" | cut -f1))"
done
(cd "$dist" && sha256sum -- "${tarballs[@]}" >"maskwatch-$version.sha256")
log "wrote dist/maskwatch-$version.sha256"
