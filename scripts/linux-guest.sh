#!/usr/bin/env bash
# Builds a small Linux guest for the tests that boot a real kernel under QEMU (test/support/linux-guest.ts):
# Debian bookworm's amd64 kernel and an initramfs holding busybox, the virtio modules the kernel needs
# to see a virtio-blk disk behind a PCIe root port, and an /init that ends in a shell on ttyS0. Kernels
# and busybox are GPL and are never copied into this repository; they land in a cache folder.
#
#   scripts/linux-guest.sh [DIR]
#
# DIR defaults to ${XDG_CACHE_HOME:-~/.cache}/vmstate/linux-guest; once built it is reused (DIR/done,
# written last, holds a hash of this script and scripts/make-initramfs.mjs, so editing either rebuilds).
# Nothing is installed: apt-get download fetches the kernel package behind the linux-image-amd64
# metapackage and busybox-static, and dpkg -x unpacks them. It uses the system's apt index when that
# has them and can download them, else an index of its own in DIR/apt built from the system's Debian
# sources (scripts/qemu-apt.sh), so it needs no root and leaves the system's apt configuration alone.
# Callers that run at once wait for each other. Progress goes to stderr; stdout is KEY=VALUE lines:
#
#   kernel=DIR/vmlinux          the kernel, for QEMU's -kernel: the ELF image that the package's
#                               bzImage compresses, which QEMU boots through PVH (CONFIG_PVH) without
#                               the decompressor, ~3 s of a ~6 s boot under TCG; DIR/vmlinuz (the
#                               bzImage) for a kernel without PVH
#   initrd=DIR/initrd.gz        the initramfs, for QEMU's -initrd
#   version=6.1.0-57-amd64      the kernel's release (uname -r)
#
# The guest's /init mounts proc, sysfs and devtmpfs, loads the modules, prints "vmstate-guest ready"
# and runs a shell on the console (boot with console=ttyS0) whose prompt is "guest# ". The shell
# function hostbridge_identity puts the host bridge 00:00.0's IOMMU group into identity (pass-through)
# mode; /init runs it before the shell when the kernel command line has vmstate.hostbridge=identity.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
. "$here/qemu-apt.sh"

dest=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/vmstate/linux-guest}
# The modules /init loads, each after the ones it depends on (found from the .ko files themselves).
modules=(virtio_pci virtio_blk)

recipe=$(cat "${BASH_SOURCE[0]}" "$here/make-initramfs.mjs" | sha256sum | cut -d' ' -f1)

# Prints the KEY=VALUE lines for a complete build of this recipe, or fails.
report() {
  [[ -f $dest/done && $(cat "$dest/done") == "$recipe" ]] || return 1
  local kernel=$dest/vmlinux
  [[ -f $kernel ]] || kernel=$dest/vmlinuz
  echo "kernel=$kernel"
  echo "initrd=$dest/initrd.gz"
  echo "version=$(cat "$dest/version")"
}

# Downloads the kernel package behind linux-image-amd64 and busybox-static into the folder $1, with
# the index that apt_opts names; fails when that index lacks them or the mirror no longer has them.
download() {
  local kernel_package
  kernel_package=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-/ && !found { found = 1; print $2 }')
  [[ -n $kernel_package ]] || return 1
  echo "$(basename "$0"): downloading $kernel_package and busybox-static" >&2
  (cd "$1" && apt-get "${apt_opts[@]}" download -qq "$kernel_package" busybox-static >&2)
}

# Writes the ELF kernel inside the bzImage $1 to stdout, or fails. Boot protocol (the kernel's
# Documentation/x86/boot.rst): "HdrS" at 0x202, setup_sects at 0x1f1 (the protected-mode code starts
# after 1 + setup_sects 512-byte sectors), payload_offset and payload_length at 0x248 (protocol 2.08+);
# Debian's payload is XZ with the uncompressed size appended as 4 bytes.
vmlinux_of() {
  local image=$1 setup offset length
  [[ $(od -An -c -j $((0x202)) -N4 "$image" | tr -d ' ') == HdrS ]] || return 1
  setup=$(od -An -tu1 -j $((0x1f1)) -N1 "$image" | tr -d ' ')
  read -r offset length < <(od -An -tu4 -j $((0x248)) -N8 "$image")
  dd if="$image" iflag=skip_bytes,count_bytes skip=$(( (setup + 1) * 512 + offset )) count=$(( length - 4 )) bs=1M status=none |
    xz -dc --single-stream
}

# Prints the path of module $1 under the folder $2 (file names may use - where module names use _).
module_file() {
  local pattern=${1//_/[-_]}
  find "$2" \( -name "$pattern.ko" -o -name "$pattern.ko.xz" \) -print -quit
}

# Prints the modules $@ with everything they depend on, each after its dependencies, once each, from
# the depends= line of each .ko's .modinfo (the package has no modules.dep: depmod makes it when
# installing). Uses the associative array `seen` and the module tree $tree.
with_dependencies() {
  local name file deps
  for name in "$@"; do
    [[ -z ${seen[$name]:-} ]] || continue
    seen[$name]=1
    file=$(module_file "$name" "$tree")
    [[ -n $file ]] || die "module $name is not in the kernel package"
    # awk reads to the end so that, under pipefail, no writer dies of SIGPIPE.
    deps=$(if [[ $file == *.xz ]]; then xz -dc "$file"; else cat "$file"; fi | tr '\0' '\n' |
      awk 'sub(/^depends=/, "") && !found { found = 1; print }')
    if [[ -n $deps ]]; then with_dependencies ${deps//,/ }; fi
    echo "$name"
  done
}

# The guest's /etc/vmstate.sh: shell functions for /init and for the interactive shell (via ENV).
vmstate_sh() {
  cat <<'EOF'
# Puts the IOMMU group of the host bridge 00:00.0 into identity (pass-through) mode. The kernel takes
# it only while no driver is bound to the group's devices (none is bound to a host bridge) and, in
# Linux 6.1, only for a group of one device.
hostbridge_identity() {
  local group
  group=$(readlink /sys/bus/pci/devices/0000:00:00.0/iommu_group) || { echo "vmstate-guest: 00:00.0 has no IOMMU group"; return 1; }
  group=${group##*/}
  echo identity > "/sys/kernel/iommu_groups/$group/type" || { echo "vmstate-guest: IOMMU group $group refused identity"; return 1; }
  echo "vmstate-guest: IOMMU group $group (00:00.0) is $(cat "/sys/kernel/iommu_groups/$group/type")"
}
EOF
}

# The guest's /init.
init_sh() {
  cat <<'EOF'
#!/bin/busybox sh
# vmstate's test guest (built by scripts/linux-guest.sh in the vmstate repository).
/bin/busybox --install -s /bin
export PATH=/bin HOME=/ ENV=/etc/vmstate.sh PS1='guest# '
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /etc/vmstate.sh
# One module per line, dependencies first; probing is synchronous, so /dev/vda exists once this ends.
while read -r module; do
  insmod "/lib/modules/$module.ko" || echo "vmstate-guest: insmod $module failed"
done < /etc/modules
case " $(cat /proc/cmdline) " in
  *" vmstate.hostbridge=identity "*) hostbridge_identity ;;
esac
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
  mkdir -p "$work/debs" "$work/pkg" "$work/initramfs"/{bin,etc,lib/modules}
  # Running as root, apt would hand the download to the _apt user, who cannot write here.
  apt_opts=(-o "APT::Sandbox::User=$(id -un)")
  if ! download "$work/debs"; then
    echo "$(basename "$0"): the system's apt index cannot provide them; using an index of its own in $dest/apt" >&2
    rm -f "$work"/debs/*
    private_apt "$dest/apt" deb
    download "$work/debs" || die "cannot download linux-image-amd64's kernel and busybox-static: this needs Debian 12 (bookworm)'s sources"
  fi
  for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/pkg"; done

  kernels=("$work"/pkg/boot/vmlinuz-*)
  kernel=${kernels[0]}
  [[ -f $kernel ]] || die "the kernel package has no boot/vmlinuz-*"
  version=${kernel##*/vmlinuz-}
  tree=$work/pkg/lib/modules/$version
  config=$work/pkg/boot/config-$version
  [[ -d $tree && -f $config ]] || die "the kernel package has no lib/modules/$version or boot/config-$version"
  [[ -x $work/pkg/bin/busybox ]] || die "busybox-static has no bin/busybox"
  grep -q '^CONFIG_RD_GZIP=y' "$config" || die "kernel $version cannot unpack a gzip initramfs"
  boot=$work/vmlinux
  if ! grep -q '^CONFIG_PVH=y' "$config" || ! vmlinux_of "$kernel" > "$boot" ||
    [[ $(od -An -c -N4 "$boot" | tr -d ' ') != 177ELF ]]; then
    echo "$(basename "$0"): note: no PVH-bootable ELF kernel in $(basename "$kernel"); the guest boots the bzImage, ~3 s slower" >&2
    boot=$kernel
  fi

  # Modules only where the kernel has them as modules (=m); built-in ones (=y) need nothing.
  declare -A seen=()
  wanted=()
  for module in "${modules[@]}"; do
    if grep -q "^CONFIG_${module^^}=m" "$config"; then wanted+=("$module")
    elif ! grep -q "^CONFIG_${module^^}=y" "$config"; then die "kernel $version has no CONFIG_${module^^}"
    fi
  done
  : > "$work/initramfs/etc/modules"
  if (( ${#wanted[@]} > 0 )); then
    order=$(with_dependencies "${wanted[@]}") # not in the for line, where set -e would miss a failure
    for module in $order; do
      file=$(module_file "$module" "$tree")
      # Uncompressed, since busybox's insmod may not read .ko.xz.
      if [[ $file == *.xz ]]; then xz -dc "$file"; else cat "$file"; fi > "$work/initramfs/lib/modules/$module.ko"
      echo "$module" >> "$work/initramfs/etc/modules"
    done
  fi
  echo "$(basename "$0"): kernel $version, modules: $(tr '\n' ' ' < "$work/initramfs/etc/modules")" >&2

  cp "$work/pkg/bin/busybox" "$work/initramfs/bin/busybox"
  init_sh > "$work/initramfs/init"
  vmstate_sh > "$work/initramfs/etc/vmstate.sh"
  chmod 755 "$work/initramfs/init"
  node "$here/make-initramfs.mjs" "$work/initramfs" "$work/initrd.gz"

  rm -f "$dest/done" "$dest/vmlinux" "$dest/vmlinuz"
  mv -f "$work/initrd.gz" "$dest/initrd.gz"
  if [[ $boot == "$kernel" ]]; then mv -f "$kernel" "$dest/vmlinuz"; else mv -f "$boot" "$dest/vmlinux"; fi
  echo "$version" > "$dest/version"
  rm -rf "$dest/apt"
  echo "$recipe" > "$dest/done"
}

build_once "$dest" report build
echo "$out"
