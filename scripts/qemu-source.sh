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
# once unpacked it is reused; only the tarball's scripts/ folder is unpacked. Fetching needs apt-get, tar
# with xz, and the network. It does not need root and leaves the system's apt configuration alone: the
# source index is kept in DIR/apt, from the deb-src twins of the system's Debian (or Ubuntu) sources
# (scripts/qemu-apt.sh). Callers that run at once wait for each other. Progress goes to stderr; stdout
# is the tree's path, alone.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/qemu-apt.sh"

if [[ -n ${QEMU_SRC:-} ]]; then
  [[ -f $QEMU_SRC/scripts/analyze-migration.py ]] || die "QEMU_SRC=$QEMU_SRC has no scripts/analyze-migration.py"
  echo "${QEMU_SRC%/}"
  exit 0
fi

dest=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/vmstate/qemu-src}
report() { qemu_tree "$dest"; }

fetch() {
  command -v apt-get >/dev/null || die "apt-get not found: fetching needs Debian or Ubuntu; or set QEMU_SRC to a QEMU source tree"
  command -v xz >/dev/null || die "xz not found (apt-get install xz-utils); or set QEMU_SRC to a QEMU source tree"
  private_apt "$dest/apt" deb-src
  fetch_qemu_scripts "$dest"
  rm -rf "$dest/apt"
}

build_once "$dest" report fetch
echo "$out"
