#!/usr/bin/env bash
# Assembles an arm64 sysroot for cross-compiling maskwatch's cgo build from
# Debian arm64 packages, without touching the host's own packages: apt runs
# with a private configuration and state under .deps/cross/apt, the .debs are
# only unpacked (no maintainer scripts, no chroot).
#
#   cross/sysroot.sh            # assemble or check; prints the sysroot path last
#   CROSS_REFRESH=1 cross/sysroot.sh   # also refresh the package indexes
#
# What goes in: OpenCV 4.6 development packages from Debian 12 (bookworm),
# TFLite 2.14.1 (libtensorflow-lite-dev) from Debian unstable (sid), OpenBLAS,
# glibc headers, and the dependency closure of their libraries (cross/debplan
# takes each package from bookworm unless only sid satisfies a dependency, as
# on the host). Programs, data and documentation are left out.
#
# Results, under .deps/cross (CROSS_DIR overrides):
#   sysroot-arm64/   the unpacked tree, usable as --sysroot and QEMU_LD_PREFIX
#   lib-arm64/       libtensorflowlite_c.so (the name go-tflite links against)
#                    and libstdc++.so, both pointing into the sysroot
#   debs/            the downloaded .debs (kept: a second run downloads nothing)
# A second run with nothing changed only checks and takes a few seconds. The
# sysroot is rebuilt whole, beside the old one, when the package list or this
# script changes; an interrupted run leaves the previous sysroot intact.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
base=${CROSS_DIR:-$here/.deps/cross}
arch=arm64
triplet=aarch64-linux-gnu
sysroot=$base/sysroot-$arch
libdir=$base/lib-$arch
debs=$base/debs
apt=$base/apt
max_age_min=${CROSS_INDEX_MAX_AGE_MIN:-1440}

# The packages the sysroot is for. Versions pin the families: OpenCV 4.6 of
# Debian 12 (what gocv v0.31 and the host use) and TFLite 2.14.1.
roots='libopencv-dev (>= 4.6), libopencv-dev (<< 4.7),
  libtensorflow-lite-dev (>= 2.14.1), libtensorflow-lite-dev (<< 2.14.2),
  libopenblas-dev, libc6-dev, linux-libc-dev'
# Development packages kept with their headers, .so links and .pc files;
# other -dev packages they depend on are not needed to link maskwatch.
dev_prefixes=libopencv-,libtensorflow-lite,libopenblas,libc6-dev

log() { echo "cross: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in apt-get dpkg-deb tar flock realpath go; do
  command -v "$tool" >/dev/null ||
    die "$tool not found: run 'make deps' (scripts/deps.sh installs the host tools)"
done

mkdir -p "$base" "$debs" "$apt"/{etc/preferences.d,etc/apt.conf.d,lists/partial,state,cache}
exec 9>"$base/lock"
flock 9 # one assembly at a time: tests and make targets may start together

# --- apt, private to this folder -------------------------------------------
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || die "$keyring missing: install debian-archive-keyring"
opts="arch=$arch signed-by=$keyring"
cat >"$apt/etc/sources.list" <<EOF
deb [$opts] http://deb.debian.org/debian bookworm main
deb [$opts] http://deb.debian.org/debian bookworm-updates main
deb [$opts] http://deb.debian.org/debian-security bookworm-security main
deb [$opts] http://deb.debian.org/debian sid main
EOF
cat >"$apt/etc/apt.conf" <<EOF
Dir::Etc::main "/dev/null";
Dir::Etc::parts "$apt/etc/apt.conf.d";
Dir::Etc::sourcelist "$apt/etc/sources.list";
Dir::Etc::sourceparts "/dev/null";
Dir::Etc::preferences "/dev/null";
Dir::Etc::preferencesparts "$apt/etc/preferences.d";
Dir::State "$apt/state";
Dir::State::lists "$apt/lists";
Dir::State::status "$apt/state/status";
Dir::Cache "$apt/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::Check-Valid-Until "false";
EOF
: >"$apt/state/status" # an empty system: apt's view of the host stays out
export APT_CONFIG=$apt/etc/apt.conf

indexes() {
  local l=$apt/lists/deb.debian.org_debian
  echo "bookworm=${l}_dists_bookworm_main_binary-${arch}_Packages"
  echo "bookworm=${l}_dists_bookworm-updates_main_binary-${arch}_Packages"
  echo "bookworm=${l}-security_dists_bookworm-security_main_binary-${arch}_Packages"
  echo "sid=${l}_dists_sid_main_binary-${arch}_Packages"
}

# update_indexes fetches the package indexes; it fails when apt-get update
# does, or leaves one of them missing.
update_indexes() {
  log "fetching the arm64 package indexes of bookworm and sid"
  apt-get update -q -o APT::Update::Error-Mode=any 2>&1 |
    sed -n -e 's/^Get:[0-9]* /  get /p' -e '/^E:/p' -e '/^Err/p' -e '/^W:/p' >&2 ||
    { log "apt-get update failed (see above)"; return 1; }
  local f
  for f in $(indexes); do
    [ -s "${f#*=}" ] || { log "apt-get update did not write ${f#*=}"; return 1; }
  done
  touch "$apt/lists/.updated"
}

if [ ! -f "$apt/lists/.updated" ]; then
  update_indexes || die "cannot fetch the package indexes: is deb.debian.org reachable?"
elif [ -n "$(find "$apt/lists/.updated" -mmin +"$max_age_min")" ] ||
  [ "${CROSS_REFRESH:-0}" = 1 ]; then
  # Offline with indexes already here: go on with them, they may still do.
  update_indexes || log "keeping the indexes of $(date -r "$apt/lists/.updated" +%F)"
fi

# --- which packages ----------------------------------------------------------
plan() {
  mkdir -p "$base/bin"
  # A host tool: whatever target the caller builds for is not this one's.
  (cd "$here" && env -u GOOS -u GOARCH -u CC -u CXX CGO_ENABLED=0 \
    go build -o "$base/bin/" ./cross/debplan ./cross/elfneeds) ||
    die "building cross/debplan and cross/elfneeds failed"
  # shellcheck disable=SC2046
  "$base/bin/debplan" --roots "$roots" --dev "$dev_prefixes" $(indexes) \
    >"$base/plan.tsv.new" || die "no consistent package set (see above)"
  mv "$base/plan.tsv.new" "$base/plan.tsv"
}

# download fetches every planned .deb that is not in debs/ yet. apt checks
# each file against the signed index; files land in debs/ only when complete.
download() {
  local name version _arch _suite file size missing=() bytes=0
  while IFS=$'\t' read -r name version _arch _suite file size; do
    if [ ! -f "$debs/$file" ]; then
      missing+=("$name=$version")
      bytes=$((bytes + size))
    fi
  done <"$base/plan.tsv"
  if [ "${#missing[@]}" = 0 ]; then return 0; fi
  log "downloading ${#missing[@]} packages ($((bytes / 1000000)) MB)"
  rm -rf "$debs/.partial" && mkdir -p "$debs/.partial"
  (cd "$debs/.partial" && apt-get download -q "${missing[@]}" 2>&1 |
    sed -n -e 's/^Get:[0-9]* [^ ]* /  get /p' -e '/^E:/p' -e '/^Err/p' >&2) || return 1
  mv "$debs/.partial/"*.deb "$debs/"
  rmdir "$debs/.partial"
}

plan
if ! download; then
  # sid moves every day: an old index names files the mirror has dropped.
  log "download failed; refreshing the indexes and trying once more"
  update_indexes || die "cannot fetch the package indexes: is deb.debian.org reachable?"
  plan
  download || die "cannot download the sysroot packages (network or mirror problem above)"
fi

# Keep the cache to what the plan names.
cut -f5 "$base/plan.tsv" | sort >"$base/plan.files"
find "$debs" -maxdepth 1 -name '*.deb' -printf '%f\n' | sort |
  comm -23 - "$base/plan.files" | while read -r old; do rm -f "$debs/$old"; done

# --- unpack -----------------------------------------------------------------
# unpack builds the whole sysroot beside the old one, then swaps it in.
unpack() {
  local new=$sysroot.new total n=0 name file _v _a _s _z
  rm -rf "$new"
  mkdir -p "$new/usr/bin" "$new/usr/lib" "$new/usr/sbin"
  # Merged /usr, as Debian has it: bookworm's packages still ship files in
  # /lib, and binaries name their loader as /lib/ld-linux-aarch64.so.1.
  ln -s usr/bin "$new/bin"
  ln -s usr/lib "$new/lib"
  ln -s usr/sbin "$new/sbin"

  total=$(wc -l <"$base/plan.tsv")
  log "unpacking $total packages into $sysroot"
  while IFS=$'\t' read -r name _v _a _s file _z; do
    n=$((n + 1))
    if [ $((n % 50)) = 0 ] || [ "$n" = "$total" ]; then log "  unpacked $n/$total"; fi
    dpkg-deb --fsys-tarfile "$debs/$file" |
      tar -x -C "$new" --keep-directory-symlink --no-same-owner --no-same-permissions \
        --exclude=./usr/share/doc --exclude=./usr/share/man --exclude=./usr/share/info \
        --exclude=./usr/share/locale --exclude=./usr/share/lintian ||
      die "unpacking $file failed"
    # The alternatives its postinst would register (libblas.so.3,
    # libopenblas.so.0, ...), linked once everything is unpacked.
    dpkg-deb -I "$debs/$file" postinst 2>/dev/null |
      sed -e ':a' -e '/\\$/N; s/\\\n//; ta' |
      grep -E '^[[:space:]]*update-alternatives[[:space:]]+--install' >>"$new/.alternatives" ||
      true
  done <"$base/plan.tsv"

  link_alternatives "$new"

  # Absolute symlinks point into the host; make them relative inside the sysroot.
  local link target
  find "$new" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
    target=$(readlink "$link")
    ln -sfn "$(realpath -m -s --relative-to="$(dirname "$link")" "$new$target")" "$link"
  done

  [ -e "$new/usr/lib/$triplet/libtensorflow-lite.so" ] ||
    die "libtensorflow-lite.so missing from the sysroot after unpacking"
  [ -e "$new/lib/ld-linux-aarch64.so.1" ] || die "the arm64 loader is missing from the sysroot"
  # Every library a maskwatch build links must find all it needs in here.
  "$base/bin/elfneeds" --root "$new" --triplet "$triplet" \
    "usr/lib/$triplet/libtensorflow-lite.so" "usr/lib/$triplet/libopencv_*.so.4*[0-9]" \
    "usr/lib/$triplet/libopenblas.so.0" "usr/lib/$triplet/libstdc++.so.6" >&2 ||
    die "the sysroot lacks libraries (above): cross/debplan's choice needs fixing"

  echo "$stamp" >"$new/.complete"
  rm -rf "$sysroot.old"
  if [ -d "$sysroot" ]; then mv "$sysroot" "$sysroot.old"; fi
  mv "$new" "$sysroot"
  rm -rf "$sysroot.old"
  log "sysroot ready: $total packages, $(du -sh "$sysroot" | cut -f1)"
}

# link_alternatives makes the links update-alternatives would: for each link
# group the highest priority wins, with its slave links.
link_alternatives() {
  local root=$1 group line i j link target
  local -A prio=() chosen=()
  local -a w links
  [ -f "$root/.alternatives" ] || return 0
  while read -r _cmd line; do
    # line: --install LINK NAME PATH PRIORITY [--slave LINK NAME PATH]...
    read -ra w <<<"$line"
    [ "${w[0]:-}" = --install ] && [ "${#w[@]}" -ge 5 ] || continue
    case "$line" in *'$'*)
      log "  skipped an alternative written with shell variables: $line"
      continue ;;
    esac
    group=${w[2]}
    if [ -z "${prio[$group]:-}" ] || [ "${w[4]}" -gt "${prio[$group]}" ]; then
      prio[$group]=${w[4]}
      chosen[$group]=$line
    fi
  done <"$root/.alternatives"
  for group in "${!chosen[@]}"; do
    read -ra w <<<"${chosen[$group]}"
    links=("${w[1]}" "${w[3]}")
    for ((i = 5; i + 3 < ${#w[@]}; i += 4)); do
      if [ "${w[$i]}" = --slave ]; then links+=("${w[$((i + 1))]}" "${w[$((i + 3))]}"); fi
    done
    for ((j = 0; j < ${#links[@]}; j += 2)); do
      link=${links[$j]} target=${links[$((j + 1))]}
      [ -e "$root$target" ] || continue
      mkdir -p "$(dirname "$root$link")"
      ln -sfn "$(realpath -m -s --relative-to="$(dirname "$root$link")" "$root$target")" \
        "$root$link"
    done
  done
}

stamp=$(cat "$base/plan.tsv" "$0" | sha256sum | cut -d' ' -f1)
if [ -f "$sysroot/.complete" ] && [ "$(cat "$sysroot/.complete")" = "$stamp" ]; then
  log "sysroot up to date: $(wc -l <"$base/plan.tsv") packages"
else
  unpack
fi

# go-tflite links -ltensorflowlite_c; Debian ships the C API inside
# libtensorflow-lite.so, so a link under that name is all it needs. The
# cross compiler's own libstdc++ (GCC 12) is older than the one sid's TFLite
# was built against: libstdc++.so here makes the linker take the sysroot's.
mkdir -p "$libdir"
ln -sfn "../sysroot-$arch/usr/lib/$triplet/libtensorflow-lite.so" "$libdir/libtensorflowlite_c.so"
ln -sfn "../sysroot-$arch/usr/lib/$triplet/libstdc++.so.6" "$libdir/libstdc++.so"

echo "$sysroot"
