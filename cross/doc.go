// Package cross tests maskwatch's builds for other machines: the linux/arm64
// builds that a Raspberry Pi or a Jetson runs, built on this machine and run
// under qemu-aarch64, give the same results as the amd64 build.
//
// The builds themselves are shell scripts beside this file, used by the
// Makefile's cross and release targets and by the tests:
//
//   - sysroot.sh assembles an arm64 sysroot from Debian packages (OpenCV 4.6
//     of Debian 12, TFLite 2.14.1 of Debian unstable, OpenBLAS, glibc) with a
//     private apt, under .deps/cross; the host's packages stay as they are.
//   - build.sh builds commands in two flavours: full (cgo: GoCV, TFLite,
//     OpenBLAS; cross-compiled against the sysroot for arm64) and static
//     (CGO_ENABLED=0: one file needing no shared library).
//   - release.sh packs the release tarballs.
//
// The static flavour needs a 64-bit target: GoMLX v0.26.0's pure-Go backend
// does not compile for 32-bit ARM (a constant overflows int), so there is no
// armv7 build.
package cross
