#!/usr/bin/env bash
# Prints the path of a QEMU source tree, fetching Debian's QEMU source (7.2 on Debian 12) into a cache
# folder outside the repository the first time. The interop tests and the bench run that tree's
# scripts/analyze-migration.py as the reference vmstate's analyzer must match. QEMU's source is GPL and
# is never copied into this repository.
#
#   scripts/qemu-source.sh [DIR]
#
# With $QEMU_SRC set, prints it (it must hold scripts/analyze-migration.py) and fetches nothing.
# Otherwise the tree lives under DIR, which defaults to ${XDG_CACHE_HOME:-~/.cache}/vmstate/qemu-src;
# once unpacked it is reused. Fetching needs apt-get, tar with xz, and the network. It does not need
# root and leaves the system's apt configuration alone: the source index is kept in DIR/apt, from the
# deb-src twins of the system's Debian (or Ubuntu) sources. Callers that run at once wait for each other.
# Progress goes to stderr; stdout is the tree's path, alone.
set -euo pipefail

has_script() { [[ -f $1/scripts/analyze-migration.py ]]; }
die() { echo "qemu-source.sh: $*" >&2; exit 1; }

if [[ -n ${QEMU_SRC:-} ]]; then
  has_script "$QEMU_SRC" || die "QEMU_SRC=$QEMU_SRC has no scripts/analyze-migration.py"
  echo "${QEMU_SRC%/}"
  exit 0
fi

dest=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/vmstate/qemu-src}
cached_tree() {
  local tree
  for tree in "$dest"/qemu-*/; do
    if has_script "$tree"; then echo "${tree%/}"; return 0; fi
  done
  return 1
}
cached_tree && exit 0

command -v apt-get >/dev/null || die "apt-get not found: fetching needs Debian or Ubuntu; or set QEMU_SRC to a QEMU source tree"
command -v xz >/dev/null || die "xz not found (apt-get install xz-utils); or set QEMU_SRC to a QEMU source tree"
mkdir -p "$dest"
exec 9>"$dest/.lock"
flock 9
cached_tree && exit 0 # another caller fetched it while we waited

apt_dir=$dest/apt
rm -rf "$apt_dir"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache" "$apt_dir/sources.list.d"
system_sources=(/etc/apt/sources.list.d/{debian,ubuntu}.sources)
for f in "${system_sources[@]}"; do if [[ -f $f ]]; then sed 's/^Types:.*$/Types: deb-src/' "$f"; fi; done > "$apt_dir/sources.list.d/system.sources"
if [[ -s $apt_dir/sources.list.d/system.sources ]]; then
  : > "$apt_dir/sources.list"
elif [[ -f /etc/apt/sources.list ]]; then
  sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > "$apt_dir/sources.list"
else
  die "no /etc/apt/sources.list.d/debian.sources, ubuntu.sources or /etc/apt/sources.list to take the deb-src lines from"
fi
apt_opts=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o "APT::Sandbox::User=$(id -un)"
)
apt-get "${apt_opts[@]}" update -qq >&2

unpack=$dest/.unpack.$$
rm -rf "$unpack"
mkdir -p "$unpack"
trap 'rm -rf "$unpack"' EXIT
(cd "$unpack" && apt-get "${apt_opts[@]}" source --download-only -qq qemu >&2)
orig=$(ls "$unpack"/qemu_*.orig.tar.xz 2>/dev/null | head -n 1)
[[ -n $orig ]] || die "apt-get source qemu gave no qemu_*.orig.tar.xz in $unpack"
tar -xJf "$orig" -C "$unpack" --no-same-owner
tree=
for t in "$unpack"/qemu-*/; do has_script "$t" && tree=$t && break; done
[[ -n $tree ]] || die "$orig has no qemu-*/scripts/analyze-migration.py"
name=$(basename "$tree")
mv "$unpack/$name" "$dest/$name"
rm -rf "$apt_dir"
echo "$dest/$name"
