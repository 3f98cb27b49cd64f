#!/usr/bin/env bash
# Builds Go commands of maskwatch for a Linux target, in one of two flavours:
#
#   cross/build.sh full   GOARCH OUTDIR PACKAGE...   # cgo: GoCV, TFLite, OpenBLAS
#   cross/build.sh static GOARCH OUTDIR PACKAGE...   # CGO_ENABLED=0: one static file
#
# GOARCH is amd64 (this machine, native toolchain and libraries) or arm64
# (the full build cross-compiles with gcc-aarch64-linux-gnu against the
# sysroot that cross/sysroot.sh assembles, running it first if needed).
# The static build works for any GOARCH Go supports, but maskwatch's GoMLX
# engine compiles for 64-bit targets only (GoMLX v0.26.0's pure-Go backend
# overflows int on 32-bit ARM), so arm64 and amd64 are what is tested.
#
# VERSION (default: git describe) is stamped with -X main.version; LDFLAGS
# adds linker flags and TRIMPATH=1 drops local paths (make release sets
# both). Binaries are written as OUTDIR/NAME, NAME being the package's last
# path element.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: cross/build.sh full|static amd64|arm64 OUTDIR PACKAGE..."
[ $# -ge 4 ] || { echo "$usage" >&2; exit 2; }
flavour=$1 goarch=$2 out=$3
shift 3

export PATH=$PATH:/usr/local/go/bin
export GOOS=linux GOARCH=$goarch
export GOFLAGS="-tags=noxla ${GOFLAGS:-}"
version=${VERSION:-$(git -C "$here" describe --tags --always --dirty 2>/dev/null || echo dev)}
ldflags="-X main.version=$version ${LDFLAGS:-}"

case "$flavour/$goarch" in
static/*)
  export CGO_ENABLED=0
  ;;
full/amd64)
  # Native: the host's OpenCV and TFLite, as make build uses them.
  export CGO_ENABLED=1
  export CGO_LDFLAGS="-L$here/.deps/lib"
  ;;
full/arm64)
  # The sysroot's path is the last line sysroot.sh prints.
  sysroot=$(bash "$here/cross/sysroot.sh" | tail -n1)
  libdir=$(dirname "$sysroot")/lib-arm64
  multiarch=$sysroot/usr/lib/aarch64-linux-gnu
  command -v aarch64-linux-gnu-gcc >/dev/null ||
    { echo "cross: aarch64-linux-gnu-gcc not found: run 'make deps'" >&2; exit 1; }
  export CGO_ENABLED=1
  export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++
  export PKG_CONFIG_SYSROOT_DIR=$sysroot
  export PKG_CONFIG_LIBDIR=$multiarch/pkgconfig:$sysroot/usr/share/pkgconfig
  export CGO_CFLAGS="--sysroot=$sysroot"
  export CGO_CXXFLAGS="--sysroot=$sysroot"
  # -L to the sysroot's libraries before the cross compiler's own (glibc 2.36,
  # GCC 12): sid's TFLite needs the newer glibc and libstdc++ it was built
  # with. --as-needed keeps OpenCV modules gocv never calls out of the binary.
  export CGO_LDFLAGS="--sysroot=$sysroot -L$libdir -L$multiarch
    -Wl,-rpath-link=$multiarch -Wl,--as-needed"
  ;;
*)
  echo "cross: unsupported build $flavour for $goarch; $usage" >&2
  exit 2
  ;;
esac

flags=(-ldflags "$ldflags")
if [ "${TRIMPATH:-0}" = 1 ]; then flags+=(-trimpath); fi

mkdir -p "$out"
for pkg in "$@"; do
  name=$(basename "$pkg")
  echo "cross: building $name ($flavour, linux/$goarch, $version)" >&2
  (cd "$here" && go build "${flags[@]}" -o "$out/$name" "$pkg")
done
