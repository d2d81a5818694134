# Sourced by scripts/qemu-source.sh, qemu-10.sh, linux-guest.sh and v86-guest.sh, not run on its own:
# fetching Debian packages and sources (QEMU's, the test guests' kernels and busybox) into a cache
# folder outside the repository, without root and without touching the system's apt configuration.
# Nothing fetched here is copied into the repository.
#
#   lock_cache DIR                creates DIR and holds DIR/.lock until the script exits (callers
#                                 that run at once wait for each other)
#   scratch_dir DIR               sets scratch to a fresh folder under DIR, removed when the script exits
#   build_once DIR REPORT BUILD   sets out to what REPORT prints (a function that prints what a complete
#                                 build in DIR holds, or fails); if it fails, takes DIR's lock and,
#                                 unless another caller built it meanwhile, runs BUILD and REPORT again
#   private_apt DIR TYPES [SUITE [ARCH]]
#                                 an apt configuration of its own in DIR (sources, index, cache) built
#                                 from the system's Debian or Ubuntu sources with their Types set to
#                                 TYPES ("deb-src", "deb deb-src"); with SUITE, only the entries of
#                                 the system's release, pointed at SUITE (e.g. bookworm-backports);
#                                 with ARCH (e.g. i386; SUITE "" for none), packages of that
#                                 architecture only, which dpkg need not know. Fetches the index and
#                                 sets apt_opts for apt-get
#   qemu_tree DIR                 prints DIR/qemu-*/ that holds scripts/analyze-migration.py, or fails
#   fetch_qemu_scripts DIR [ARG]  apt-get source --download-only [ARG...] qemu, then unpacks the
#                                 upstream tarball's scripts/ folder as DIR/qemu-VERSION/scripts
#
# Progress goes to stderr. Fetching needs apt-get, tar with xz and the network.

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

_scratch=()
trap 'rm -rf "${_scratch[@]}"' EXIT

lock_cache() {
  mkdir -p "$1"
  exec 9>"$1/.lock"
  flock 9
}

scratch_dir() {
  mkdir -p "$1"
  scratch=$(mktemp -d "$1/.fetch.XXXXXX")
  _scratch+=("$scratch")
}

build_once() {
  out=$("$2") && return
  lock_cache "$1"
  out=$("$2") && return # another caller built it while we waited
  "$3"
  out=$("$2") || die "$1 is incomplete after building"
}

# deb822 stanzas (/etc/apt/sources.list.d/*.sources): Types replaced; with suite, only the stanzas
# whose Suites name the release, with Suites replaced.
_deb822_filter='
BEGIN { RS = ""; ORS = "\n\n" }
{
  n = split($0, lines, "\n"); keep = (suite == ""); out = ""
  for (i = 1; i <= n; i++) {
    line = lines[i]
    if (line ~ /^Types:/) line = "Types: " types
    else if (suite != "" && line ~ /^Suites:/) {
      if ((" " substr(line, 8) " ") ~ (" " release " ")) keep = 1
      line = "Suites: " suite
    }
    out = out line "\n"
  }
  if (keep) print out
}'
# One-line entries (/etc/apt/sources.list): "deb [options] URI SUITE COMPONENTS", once per type.
_one_line_filter='
$1 == "deb" {
  i = 2
  if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
  if (suite != "") { if ($(i + 1) != release) next; $(i + 1) = suite }
  n = split(types, t, " ")
  for (k = 1; k <= n; k++) { $1 = t[k]; print }
}'

private_apt() {
  local dir=$1 types=$2 suite=${3:-} arch=${4:-} release= f
  if [[ -n $suite ]]; then
    release=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [[ -n $release ]] || die "/etc/os-release names no VERSION_CODENAME, so $suite cannot be added"
  fi
  rm -rf "$dir"
  mkdir -p "$dir/lists/partial" "$dir/cache" "$dir/sources.list.d"
  for f in /etc/apt/sources.list.d/{debian,ubuntu}.sources; do
    if [[ -f $f ]]; then awk -v types="$types" -v suite="$suite" -v release="$release" "$_deb822_filter" "$f"; fi
  done > "$dir/sources.list.d/system.sources"
  : > "$dir/sources.list"
  if [[ ! -s $dir/sources.list.d/system.sources && -f /etc/apt/sources.list ]]; then
    awk -v types="$types" -v suite="$suite" -v release="$release" "$_one_line_filter" /etc/apt/sources.list > "$dir/sources.list"
  fi
  if [[ ! -s $dir/sources.list.d/system.sources && ! -s $dir/sources.list ]]; then
    die "no ${release:+$release }entries in /etc/apt/sources.list.d/debian.sources, ubuntu.sources or /etc/apt/sources.list to build $types sources from"
  fi
  apt_opts=(
    -o "Dir::Etc::SourceList=$dir/sources.list"
    -o "Dir::Etc::SourceParts=$dir/sources.list.d"
    -o "Dir::State::Lists=$dir/lists"
    -o "Dir::Cache=$dir/cache"
    -o "APT::Sandbox::User=$(id -un)"
  )
  # Setting APT::Architectures keeps apt from asking dpkg which architectures it has; an empty status
  # file of its own keeps it from reading what the system has installed (of another architecture).
  if [[ -n $arch ]]; then
    : > "$dir/status"
    apt_opts+=(-o "APT::Architecture=$arch" -o "APT::Architectures::=$arch" -o "Dir::State::status=$dir/status")
  fi
  apt-get "${apt_opts[@]}" update -qq >&2
}

qemu_tree() {
  local tree
  for tree in "$1"/qemu-*/; do
    if [[ -f $tree/scripts/analyze-migration.py ]]; then echo "${tree%/}"; return 0; fi
  done
  return 1
}

fetch_qemu_scripts() {
  local dest=$1 work orig tree
  shift
  scratch_dir "$dest"
  work=$scratch
  # The upstream tarball is all that is needed. bookworm-backports' .dsc and .debian.tar.xz can be gone
  # from the mirror (404) while the tarball is there, so apt-get's failure only counts if it is missing.
  (cd "$work" && apt-get "${apt_opts[@]}" source --download-only -qq "$@" qemu >&2) ||
    echo "$(basename "$0"): apt-get source failed; going on if the upstream tarball arrived" >&2
  orig=$(ls "$work"/qemu_*.orig.tar.xz 2>/dev/null | head -n 1)
  [[ -n $orig ]] || die "apt-get source ${*:+$* }qemu gave no qemu_*.orig.tar.xz"
  tar -xJf "$orig" -C "$work" --no-same-owner --wildcards --no-wildcards-match-slash 'qemu-*/scripts'
  tree=$(qemu_tree "$work") || die "$(basename "$orig") has no qemu-*/scripts/analyze-migration.py"
  rm -rf "${dest:?}/$(basename "$tree")"
  mv "$tree" "$dest/"
  rm -rf "$work"
}
