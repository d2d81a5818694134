#!/usr/bin/env bash
# Builds a tiny 32-bit Linux guest for the v86 emulator (npm v86, which emulates a 32-bit x86 only):
# Debian bookworm's i386 kernel and an initramfs holding busybox and an /init that ends in a shell on
# ttyS0. Kernels and busybox are GPL and are never copied into this repository; they land in a cache
# folder.
#
#   scripts/v86-guest.sh [DIR]
#
# DIR defaults to ${XDG_CACHE_HOME:-~/.cache}/vmstate/v86-guest; once built it is reused (DIR/done,
# written last, holds a hash of this script and scripts/make-initramfs.mjs, so editing either rebuilds).
# Nothing is installed: apt-get download fetches the i386 kernel package behind the linux-image-686
# metapackage and busybox-static, and dpkg -x unpacks them. The system has no i386 index (nor need its
# dpkg know i386), so the index is always one of its own in DIR/apt, built from the system's Debian
# sources for i386 only (scripts/qemu-apt.sh): no root needed, the system's apt and dpkg left alone.
# Callers that run at once wait for each other. Progress goes to stderr; stdout is KEY=VALUE lines:
#
#   kernel=DIR/bzImage          the package's bzImage, which v86 boots directly (its bzimage option)
#   initrd=DIR/initrd.gz        the initramfs
#   version=6.1.0-57-686        the kernel's release (uname -r)
#
# The kernel has everything the guest needs built in (checked), so the initramfs has no modules. Its
# /init mounts proc, sysfs, devtmpfs and a tmpfs on /tmp, prints "vmstate-guest ready" and runs a
# shell on the console (boot with console=ttyS0,115200) whose prompt is "guest# ".
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
. "$here/qemu-apt.sh"

dest=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/vmstate/v86-guest}
# What the guest needs of the kernel, built in: the 8250 UART behind ttyS0, a gzip initramfs, devtmpfs
# for /dev (no mknod in /init) and tmpfs for /tmp.
options=(SERIAL_8250 BLK_DEV_INITRD RD_GZIP DEVTMPFS TMPFS)

recipe=$(cat "${BASH_SOURCE[0]}" "$here/make-initramfs.mjs" | sha256sum | cut -d' ' -f1)

# Prints the KEY=VALUE lines for a complete build of this recipe, or fails.
report() {
  [[ -f $dest/done && $(cat "$dest/done") == "$recipe" ]] || return 1
  echo "kernel=$dest/bzImage"
  echo "initrd=$dest/initrd.gz"
  echo "version=$(cat "$dest/version")"
}

# The guest's /init.
init_sh() {
  cat <<'EOF'
#!/bin/busybox sh
# vmstate's v86 test guest (built by scripts/v86-guest.sh in the vmstate repository).
/bin/busybox --install -s /bin
export PATH=/bin HOME=/ PS1='guest# '
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "vmstate-guest ready"
# cttyhack gives the shell the console as its controlling tty (job control, ^C); /init must never exit.
while :; do setsid cttyhack sh; done
EOF
}

# Builds the guest into $dest.
build() {
  command -v apt-get >/dev/null || die "apt-get not found: building the guest needs Debian 12 (bookworm)"
  command -v node >/dev/null || die "node not found: it writes the initramfs (scripts/make-initramfs.mjs)"
  scratch_dir "$dest"
  work=$scratch
  mkdir -p "$work/debs" "$work/pkg" "$work/initramfs/bin"
  private_apt "$dest/apt" deb "" i386
  kernel_package=$(apt-cache "${apt_opts[@]}" depends linux-image-686 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-/ && !found { found = 1; print $2 }')
  [[ -n $kernel_package ]] || die "no i386 linux-image-686 in the system's Debian sources: this needs Debian 12 (bookworm)'s"
  echo "$(basename "$0"): downloading $kernel_package and busybox-static (i386)" >&2
  (cd "$work/debs" && apt-get "${apt_opts[@]}" download -qq "$kernel_package" busybox-static >&2)
  for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/pkg"; done

  kernels=("$work"/pkg/boot/vmlinuz-*)
  kernel=${kernels[0]}
  [[ -f $kernel ]] || die "the kernel package has no boot/vmlinuz-*"
  version=${kernel##*/vmlinuz-}
  config=$work/pkg/boot/config-$version
  [[ -f $config ]] || die "the kernel package has no boot/config-$version"
  for option in "${options[@]}"; do
    grep -q "^CONFIG_$option=y" "$config" || die "kernel $version does not have CONFIG_$option=y (built in), which the guest needs"
  done
  [[ -x $work/pkg/bin/busybox ]] || die "busybox-static has no bin/busybox"
  echo "$(basename "$0"): kernel $version" >&2

  cp "$work/pkg/bin/busybox" "$work/initramfs/bin/busybox"
  init_sh > "$work/initramfs/init"
  chmod 755 "$work/initramfs/init"
  node "$here/make-initramfs.mjs" "$work/initramfs" "$work/initrd.gz"

  rm -f "$dest/done"
  mv -f "$work/initrd.gz" "$dest/initrd.gz"
  mv -f "$kernel" "$dest/bzImage"
  echo "$version" > "$dest/version"
  rm -rf "$dest/apt"
  echo "$recipe" > "$dest/done"
}

build_once "$dest" report build
echo "$out"
