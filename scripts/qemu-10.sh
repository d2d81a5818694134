#!/usr/bin/env bash
# Fetches QEMU 10.0 from Debian's bookworm-backports into a cache folder outside the repository the
# first time, beside the distribution's QEMU 7.2 (which stays installed and on PATH), and prints where
# it is. The tests run its binaries and its scripts/analyze-migration.py. QEMU is GPL and is never
# copied into this repository.
#
#   scripts/qemu-10.sh [DIR]
#
# DIR defaults to ${XDG_CACHE_HOME:-~/.cache}/vmstate/qemu-10.0; once fetched it is reused. Nothing is
# installed: apt-get download fetches the packages and dpkg -x unpacks them into DIR/root, and the
# upstream source tarball (apt-get source) gives DIR/src/qemu-VERSION/scripts. It does not need root
# and leaves the system's apt configuration alone: the index lives in DIR/apt while fetching, from the
# system's Debian entries pointed at bookworm-backports (scripts/qemu-apt.sh). The binaries use the
# system's libraries, the ones Debian's QEMU 7.2 (qemu-system-x86, qemu-system-arm) brings; the script
# fails naming any that is missing. Callers that run at once wait for each other. Progress goes to
# stderr; stdout is KEY=VALUE lines:
#
#   version=10.0.2                                      upstream version
#   bin=DIR/root/usr/bin                                qemu-system-x86_64, qemu-system-aarch64
#   module_dir=DIR/root/usr/lib/x86_64-linux-gnu/qemu   run QEMU with QEMU_MODULE_DIR set to it
#   data_dir=DIR/root/usr/share/qemu                    pass as -L, then -L /usr/share/seabios -L /usr/lib/ipxe/qemu
#   source=DIR/src/qemu-10.0.2                          holds scripts/analyze-migration.py
#
# Run it with -audio none too: without it QEMU 10.0 probes audio drivers, and with the wrong
# QEMU_MODULE_DIR it would load 7.2's audio module and abort.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/qemu-apt.sh"

suite=bookworm-backports
packages=(
  qemu-system-x86 qemu-system-arm qemu-system-common qemu-system-data
  # Every module, so that -dump-vmstate can load them all.
  qemu-system-gui qemu-system-modules-opengl qemu-system-modules-spice qemu-block-extra
)
binaries=(qemu-system-x86_64 qemu-system-aarch64)

dest=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/vmstate/qemu-10.0}

# Prints the KEY=VALUE lines for a complete fetch (DIR/version is written last), or fails.
report() {
  [[ -f $dest/version ]] || return 1
  local module_dir source
  module_dir=$(ls -d "$dest"/root/usr/lib/*/qemu 2>/dev/null | head -n 1)
  source=$(qemu_tree "$dest/src") || return 1
  [[ -n $module_dir ]] || return 1
  echo "version=$(cat "$dest/version")"
  echo "bin=$dest/root/usr/bin"
  echo "module_dir=$module_dir"
  echo "data_dir=$dest/root/usr/share/qemu"
  echo "source=$source"
}

# Prints the shared libraries FILE needs that the system lacks, on one line (empty when none).
missing_libraries() { ldd "$1" | awk '/not found/ { printf "%s%s", sep, $1; sep = " " }'; }

# Fails naming the libraries a binary cannot find (checked on every run: the system may change).
check_libraries() {
  local binary missing
  for binary in "${binaries[@]}"; do
    missing=$(missing_libraries "$dest/root/usr/bin/$binary")
    [[ -z $missing ]] || die "$binary 10.0 needs $missing, which this system lacks; Debian's qemu-system-x86 and qemu-system-arm (7.2) bring its libraries"
  done
}

# Fetches QEMU 10.0 into $dest.
fetch() {
  command -v apt-get >/dev/null || die "apt-get not found: fetching QEMU 10.0 needs Debian 12 (bookworm)"
  command -v xz >/dev/null || die "xz not found (apt-get install xz-utils)"
  private_apt "$dest/apt" "deb deb-src" "$suite"
  scratch_dir "$dest"
  work=$scratch
  mkdir -p "$work/debs" "$work/root"
  (cd "$work/debs" && apt-get "${apt_opts[@]}" download -qq -t "$suite" "${packages[@]}" >&2)
  for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/root"; done
  debian_version=$(dpkg-deb -f "$(ls "$work"/debs/qemu-system-x86_*.deb)" Version) # e.g. 1:10.0.2+ds-2+deb13u1~bpo12+1
  version=${debian_version#*:}
  version=${version%%[+~-]*}
  [[ $version == 10.0.* ]] || die "$suite has QEMU $debian_version, not 10.0: this script and the tests that use it expect 10.0"
  fetch_qemu_scripts "$work/src" -t "$suite"
  [[ $(basename "$(qemu_tree "$work/src")") == "qemu-$version" ]] || die "the $suite source is not QEMU $version"
  for binary in "${binaries[@]}"; do
    [[ -x $work/root/usr/bin/$binary ]] || die "the $suite packages have no usr/bin/$binary"
  done
  # Modules that cannot load only matter when used (audio-pipewire needs libpipewire-0.3-0, which
  # 7.2 does not bring; -audio none never loads it).
  for module in "$work"/root/usr/lib/*/qemu/*.so; do
    missing=$(missing_libraries "$module")
    if [[ -n $missing ]]; then echo "$(basename "$0"): note: module $(basename "$module") cannot load here: $missing not found" >&2; fi
  done
  rm -rf "$dest/version" "$dest/root" "$dest/src"
  mv "$work/root" "$work/src" "$dest/"
  echo "$version" > "$dest/version"
  rm -rf "$dest/apt"
}

build_once "$dest" report fetch
check_libraries
echo "$out"
