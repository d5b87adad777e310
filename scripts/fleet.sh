#!/usr/bin/env bash
# The emulated ARM fleet of fleet.multiarch: Raspberry-Pi-like Debian guests under qemu-system, reached
# over SSH on 127.0.0.1 exactly as real Pis are.
#
#   scripts/fleet.sh build [ARCH...]        build the base images that are missing or stale (cached)
#   scripts/fleet.sh up [--arm64 N] [--armhf N] [--image base|provisioned|NAME]
#                                           boot the guests, wait for SSH, write the inventory
#   scripts/fleet.sh down                   stop every guest and check that no QEMU of the fleet is left
#   scripts/fleet.sh status                 guests (name, arch, port, pid, ssh) and cached images
#   scripts/fleet.sh snapshot-provisioned [--name NAME] [--recipe ID] [GUEST...]
#                                           power guests off and keep their disks as the "provisioned"
#                                           image (or NAME) of their architecture (default: the first
#                                           guest of each architecture); `up --image NAME` boots from it
#   scripts/fleet.sh provisioned-recipe ARCH [NAME]  print the recipe ID given to that snapshot (exit 1: none)
#   scripts/fleet.sh drop-snapshot NAME     remove that snapshot of every architecture
#   scripts/fleet.sh ssh GUEST [COMMAND...] a shell or a command on a guest, as the user pi
#   scripts/fleet.sh power-cut GUEST        the guest loses power: its QEMU is killed (SIGKILL), nothing is flushed
#   scripts/fleet.sh power-on GUEST         boot a guest that lost power again, from its own disk as it was left
#   scripts/fleet.sh clean-cache            remove the cached images (the next build starts afresh)
#
# Guests: arm64 (qemu-system-aarch64 -M virt -cpu cortex-a72, the Raspberry Pi 4 CPU) and armhf
# (qemu-system-arm -M virt -cpu cortex-a15, a 32-bit OS as on a Pi 2/3). Debian bookworm made by
# mmdebstrap from Debian packages: systemd, OpenSSH, Python 3, sudo and the user pi, no Docker. The
# kernel is Debian's, unpacked on the host, with a small initramfs made on the host (scripts/fleet/init)
# instead of initramfs-tools under emulation. Each guest boots from a copy-on-write overlay of its
# architecture's base image, forwards 127.0.0.1:PORT to its SSH and sees the host as 10.0.2.2.
#
# Environment: FLEET_TESTENV_CACHE (default /var/cache/fleet-multiarch-testenv) and FLEET_TESTENV_STATE
# (default /var/lib/fleet-multiarch-testenv) are the parents of the fleet's cache and state; FLEET_ARM64,
# FLEET_ARMHF (guests of each kind, default 1), FLEET_IMAGE (base), FLEET_PORT_BASE (12200: arm64 guest
# N gets PORT_BASE+N, armhf guest N gets PORT_BASE+100+N), FLEET_MEMORY (MiB, 1024), FLEET_SMP (1),
# FLEET_BOOT_TIMEOUT (s, 900), FLEET_BUILD_PARALLEL (1: build both architectures at once), FLEET_DISK_SIZE,
# FLEET_DISK_CACHE (QEMU's cache mode of the guests' disks: unsafe, the default, ignores the guest's flushes,
# which is quick but a killed QEMU may leave its disk image inconsistent; writeback honours them, so that
# `power-cut` loses what a real board loses - the writes not yet flushed - and nothing more).
# shellcheck disable=SC2119 # debian_mirror takes an optional argument (main by default)
set -euo pipefail

CACHE=${FLEET_TESTENV_CACHE:-/var/cache/fleet-multiarch-testenv}/fleet
STATE=${FLEET_TESTENV_STATE:-/var/lib/fleet-multiarch-testenv}/fleet
SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUITE=bookworm
ARCHES=(arm64 armhf)
# What the guests have beyond minbase: no more than a fresh Raspberry Pi OS Lite has.
GUEST_PACKAGES=(systemd systemd-sysv udev dbus kmod openssh-server python3 sudo iproute2 iputils-ping
  procps ca-certificates)
# Kernel modules the initramfs loads to reach the root disk (their dependencies come along).
INITRD_MODULES=(virtio_mmio virtio_pci virtio_blk ext4 virtio_net virtio-rng)
# Module trees no guest needs (graphics, sound, cameras, radios): left out of the image.
DROP_MODULES=(drivers/gpu drivers/media sound drivers/net/wireless drivers/infiniband drivers/staging
  drivers/iio drivers/bluetooth net/bluetooth net/wireless net/mac80211)
HOST_PACKAGES=(qemu-system-arm qemu-utils mmdebstrap arch-test e2fsprogs kmod cpio openssh-client)
DISK_SIZE=${FLEET_DISK_SIZE:-8G}
MEMORY=${FLEET_MEMORY:-1024}
SMP=${FLEET_SMP:-1}
PORT_BASE=${FLEET_PORT_BASE:-12200}
BOOT_TIMEOUT=${FLEET_BOOT_TIMEOUT:-900}
POWEROFF_TIMEOUT=${FLEET_POWEROFF_TIMEOUT:-90}
DISK_CACHE=${FLEET_DISK_CACHE:-unsafe}
GUEST_USER=pi
KEY=$STATE/id_ed25519

LOG_TAG=fleet
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# Per architecture: the emulator, its CPU, Debian's kernel flavour, and what `uname -m` says.
qemu_of() { case $1 in arm64) echo qemu-system-aarch64 ;; armhf) echo qemu-system-arm ;; esac; }
cpu_of() { case $1 in arm64) echo cortex-a72 ;; armhf) echo cortex-a15 ;; esac; }
flavour_of() { case $1 in arm64) echo arm64 ;; armhf) echo armmp-lpae ;; esac; }
binfmt_of() { case $1 in arm64) echo qemu-aarch64 ;; armhf) echo qemu-arm ;; esac; }
valid_arch() { case $1 in arm64 | armhf) return 0 ;; *) return 1 ;; esac; }

# ---------------------------------------------------------------------------------------------------
# Host preconditions
# ---------------------------------------------------------------------------------------------------
# Foreign root filesystems run their maintainer scripts through the host's QEMU user emulation.
check_binfmt() {
  local arch entry
  for arch in "$@"; do
    entry=/proc/sys/fs/binfmt_misc/$(binfmt_of "$arch")
    if ! grep -qx enabled "$entry" 2>/dev/null; then
      apt_install_missing "$CACHE/apt-install.log" "${HOST_PACKAGES[@]}" qemu-user-static binfmt-support
      update-binfmts --enable "$(binfmt_of "$arch")" >/dev/null 2>&1 || true
      grep -qx enabled "$entry" 2>/dev/null ||
        die "$entry is not enabled: mount binfmt_misc and register QEMU (scripts/testenv.sh up does both)"
    fi
  done
}

# debian_mirror [main|security]: the Debian mirror this machine already uses (scripts/lib).
# shellcheck source=scripts/lib/debian-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/debian-mirror.sh"

# apt-get with a private configuration for the guests' architectures; the system's stays untouched.
private_apt() {
  local d=$CACHE/apt
  apt-get -q -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
    -o Dir::State::Lists="$d/lists" -o Dir::Cache::Archives="$d/archives" \
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o Acquire::Languages=none \
    -o APT::Sandbox::User=root -o APT::Architectures::=arm64 -o APT::Architectures::=armhf "$@"
}

# ---------------------------------------------------------------------------------------------------
# Images: one base per architecture, rebuilt only when its recipe changes
# ---------------------------------------------------------------------------------------------------
# The recipe is everything that shapes an image: this file's build functions, the package lists, the
# initramfs's init. Changing any of them changes the ID and rebuilds; the kernel and package versions
# are whatever the mirror had at build time.
recipe_id() {
  local arch=$1
  {
    echo "v1 $SUITE $arch $(qemu_of "$arch") $(flavour_of "$arch") $DISK_SIZE"
    printf '%s\n' "${GUEST_PACKAGES[@]}" "${INITRD_MODULES[@]}" "${DROP_MODULES[@]}"
    declare -f make_root customize_root install_kernel make_initramfs make_disk
    cat "$SCRIPTS/fleet/init"
  } | sha256sum | cut -c1-16
}

image_current() {
  local arch=$1 d=$CACHE/$1
  [ -s "$d/base.qcow2" ] && [ -s "$d/vmlinuz" ] && [ -s "$d/initrd.img" ] &&
    [ "$(cat "$d/recipe" 2>/dev/null)" = "$(recipe_id "$arch")" ]
}

images_current() {
  local arch
  for arch in "$@"; do image_current "$arch" || return 1; done
}

# Kernel and busybox packages of the guests' architectures, fetched once for all of them.
fetch_debs() {
  local mirror arch meta real want=()
  mirror=$(debian_mirror) || die "no Debian mirror in /etc/apt/sources*; cannot fetch the guests' kernels"
  mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/archives/partial" "$CACHE/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $SUITE main" > "$CACHE/apt/sources.list"
  if [ -z "$(find "$CACHE/apt/lists" -name '*_Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
    private_apt update >"$CACHE/apt/update.log" 2>&1 ||
      { tail -5 "$CACHE/apt/update.log" >&2; die "apt-get update of the guests' package lists failed"; }
  fi
  rm -rf "$CACHE/debs"; mkdir -p "$CACHE/debs"
  for arch in "$@"; do want+=("linux-image-$(flavour_of "$arch"):$arch" "busybox-static:$arch"); done
  (cd "$CACHE/debs" && private_apt download "${want[@]}" >/dev/null) || die "downloading ${want[*]} failed"
  # linux-image-FLAVOUR is a metapackage: its one dependency is the versioned kernel package.
  want=()
  for arch in "$@"; do
    meta=$(ls "$CACHE/debs/linux-image-$(flavour_of "$arch")_"*"_$arch.deb")
    real=$(dpkg-deb -f "$meta" Depends | sed 's/ .*//')
    want+=("$real:$arch")
  done
  (cd "$CACHE/debs" && private_apt download "${want[@]}" >/dev/null) || die "downloading ${want[*]} failed"
}

# A Debian root by mmdebstrap: minbase, the guest packages, no documentation, dpkg without fsync.
# Host keys are made on the host before openssh-server is configured, so that its postinst does not
# generate them under emulation.
make_root() {
  local arch=$1 root=$2 mirror
  mirror=$(debian_mirror) || die "no Debian mirror in /etc/apt/sources*"
  # The hooks' "$1" is mmdebstrap's, so it stays in single quotes.
  # shellcheck disable=SC2016
  mmdebstrap --mode=root --format=directory --arch="$arch" --variant=minbase \
    --include="$(IFS=,; echo "${GUEST_PACKAGES[*]}")" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt=force-unsafe-io \
    --essential-hook='mkdir -p "$1/etc/ssh" && ssh-keygen -A -f "$1"' \
    --customize-hook='rm -rf "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/*' \
    "$SUITE" "$root" "deb $mirror $SUITE main" "deb $mirror $SUITE-updates main"
}

# What makes the root a Raspberry-Pi-like device: the user pi with passwordless sudo, sshd by key,
# DHCP by systemd-networkd, no periodic apt jobs racing the tests.
customize_root() {
  local root=$1
  chroot "$root" useradd -m -u 1000 -U -s /bin/bash -G sudo,adm "$GUEST_USER"
  chroot "$root" usermod -p '*' "$GUEST_USER"
  echo "$GUEST_USER ALL=(ALL) NOPASSWD: ALL" > "$root/etc/sudoers.d/010_pi-nopasswd"
  chmod 440 "$root/etc/sudoers.d/010_pi-nopasswd"
  printf 'UseDNS no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n' > "$root/etc/ssh/sshd_config.d/fleet.conf"
  printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
    > "$root/etc/systemd/network/20-wired.network"
  echo 'nameserver 10.0.2.3' > "$root/etc/resolv.conf"
  echo raspberrypi > "$root/etc/hostname"
  echo '/dev/vda / ext4 defaults,noatime 0 1' > "$root/etc/fstab"
  : > "$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  chroot "$root" systemctl enable -q systemd-networkd.service
  chroot "$root" systemctl disable -q systemd-networkd-wait-online.service 2>/dev/null || true
  chroot "$root" systemctl mask -q apt-daily.timer apt-daily-upgrade.timer fstrim.timer
}

# Debian's kernel for the architecture, unpacked on the host: modules into the root (depmod on the
# host), vmlinuz beside the image.
install_kernel() {
  local arch=$1 root=$2 out=$3 x deb ver d
  x=$(mktemp -d "$CACHE/kernel-$arch.XXXXXX")
  deb=$(ls "$CACHE"/debs/linux-image-[0-9]*_"$arch".deb)
  dpkg-deb -x "$deb" "$x"
  ver=$(ls "$x/lib/modules")
  for d in "${DROP_MODULES[@]}"; do rm -rf "$x/lib/modules/$ver/kernel/$d"; done
  mkdir -p "$root/usr/lib/modules" "$root/boot"
  cp -a "$x/lib/modules/$ver" "$root/usr/lib/modules/"
  cp "$x/boot/config-$ver" "$x/boot/System.map-$ver" "$root/boot/"
  depmod -b "$root" "$ver"
  cp "$x/boot/vmlinuz-$ver" "$out/vmlinuz"
  echo "$ver" > "$out/kernel-version"
  rm -rf "$x"
}

# A small initramfs: busybox-static of the guest's architecture, scripts/fleet/init, and the modules
# that reach the root disk in the order modprobe would load them.
make_initramfs() {
  local arch=$1 root=$2 out=$3 ver i m
  ver=$(cat "$out/kernel-version")
  i=$(mktemp -d "$CACHE/initramfs-$arch.XXXXXX")
  mkdir -p "$i/bin" "$i/modules" "$i/proc" "$i/sys" "$i/dev" "$i/newroot" "$i/x"
  dpkg-deb -x "$(ls "$CACHE"/debs/busybox-static_*_"$arch".deb)" "$i/x"
  cp "$i/x/bin/busybox" "$i/bin/busybox"
  ln -s busybox "$i/bin/sh"
  rm -rf "$i/x"
  install -m 0755 "$SCRIPTS/fleet/init" "$i/init"
  for m in "${INITRD_MODULES[@]}"; do
    modprobe -d "$root" -S "$ver" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
  done | awk '!seen[$0]++' | while read -r m; do
    cp "$m" "$i/modules/"
    basename "$m" >> "$i/modules/order"
  done
  [ -s "$i/modules/order" ] || die "no modules found for the $arch initramfs"
  (cd "$i" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$out/initrd.img"
  rm -rf "$i"
}

# The root directory becomes an ext4 file system (mkfs.ext4 -d, no loop mount), then a qcow2 base.
make_disk() {
  local root=$1 out=$2
  rm -f "$out/base.raw"
  truncate -s "$DISK_SIZE" "$out/base.raw"
  mkfs.ext4 -q -F -L fleetroot -d "$root" "$out/base.raw"
  qemu-img convert -O qcow2 "$out/base.raw" "$out/base.qcow2"
  rm -f "$out/base.raw"
}

build_one() {
  local arch=$1 t0=$SECONDS work=$CACHE/build-$1 out=$CACHE/$1.new
  rm -rf "$work" "$out"; mkdir -p "$work" "$out"
  make_root "$arch" "$work/root"
  customize_root "$work/root"
  install_kernel "$arch" "$work/root" "$out"
  make_initramfs "$arch" "$work/root" "$out"
  make_disk "$work/root" "$out"
  recipe_id "$arch" > "$out/recipe"
  date -u +%FT%TZ > "$out/built"
  # A new base invalidates the provisioned image on top of the old one: it goes with the old base.
  rm -rf "${CACHE:?}/$arch" "$work"
  mv "$out" "$CACHE/$arch"
  echo "$((SECONDS - t0))" > "$CACHE/$arch/build-seconds"
}

# Wait for the background builds in $pids; report each one.
wait_builds() {
  local p arch rc=0
  for p in "${pids[@]}"; do
    arch=${p#*:}
    if wait "${p%%:*}"; then
      log "$arch built in $(cat "$CACHE/$arch/build-seconds") s"
    else
      tail -20 "$CACHE/build-$arch.log" >&2
      log "building the $arch image failed (log: $CACHE/build-$arch.log)"
      rc=1
    fi
  done
  pids=()
  return $rc
}

cmd_build() {
  local arches=("$@") todo=() arch pids=() failed=0 t0=$SECONDS
  [ ${#arches[@]} -gt 0 ] || arches=("${ARCHES[@]}")
  for arch in "${arches[@]}"; do valid_arch "$arch" || die "unknown architecture $arch (arm64 or armhf)"; done
  require_debian_x86_64_root "it installs packages and builds root filesystems"
  mkdir -p "$CACHE"
  exec 8>"$CACHE/.build.lock"
  flock -w 3600 8 || die "another build holds $CACHE/.build.lock"
  for arch in "${arches[@]}"; do image_current "$arch" || todo+=("$arch"); done
  if [ ${#todo[@]} -eq 0 ]; then
    log "images up to date: ${arches[*]} ($CACHE)"
    exec 8>&-
    return 0
  fi
  apt_install_missing "$CACHE/apt-install.log" "${HOST_PACKAGES[@]}"
  check_binfmt "${todo[@]}"
  log "building the base images of ${todo[*]} (logs: $CACHE/build-ARCH.log)"
  fetch_debs "${todo[@]}"
  # Each build runs in its own background shell (so that `set -e` holds inside it), both at once
  # unless FLEET_BUILD_PARALLEL=0.
  for arch in "${todo[@]}"; do
    build_one "$arch" >"$CACHE/build-$arch.log" 2>&1 &
    pids+=("$!:$arch")
    [ "${FLEET_BUILD_PARALLEL:-1}" = 1 ] || wait_builds || break
  done
  wait_builds || failed=1
  [ "$failed" -eq 0 ] || die "image build failed"
  exec 8>&-
  log "images of ${todo[*]} built in $((SECONDS - t0)) s"
}

cmd_clean_cache() {
  [ -z "$(running_guests)" ] || die "guests are running; run \`$0 down\` first"
  log "removing $CACHE"
  rm -rf "$CACHE"
}

# ---------------------------------------------------------------------------------------------------
# Guests
# ---------------------------------------------------------------------------------------------------
guest_dirs() { [ -d "$STATE/guests" ] && find "$STATE/guests" -mindepth 1 -maxdepth 1 -type d | sort; return 0; }

# The pid of a guest's QEMU, only if that process really is this guest's QEMU (pid files outlive them).
# An exited QEMU that nobody reaped yet (a zombie: where PID 1 does not reap, as in some containers)
# has an empty command line, so it counts as gone.
guest_pid() {
  local g=$1 pid
  pid=$(cat "$g/pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -qF "$g/overlay.qcow2" || return 1
  echo "$pid"
}

running_guests() {
  local g
  for g in $(guest_dirs); do guest_pid "$g" >/dev/null && basename "$g"; done
  return 0
}

# Every QEMU process whose command line names a disk in the fleet's state: what must be gone after down.
fleet_qemu_pids() {
  local p
  for p in /proc/[0-9]*; do
    { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null | grep -q "^qemu-system-[a-z0-9]* .*$STATE/guests/" && echo "${p#/proc/}"
  done
  return 0
}

ssh_opts() {
  echo -i "$KEY" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o IdentitiesOnly=yes -o ConnectTimeout=20 -o ServerAliveInterval=15
}

guest_ssh() {
  local port=$1; shift
  # shellcheck disable=SC2046
  ssh $(ssh_opts) -p "$port" "$GUEST_USER@127.0.0.1" "$@"
}

port_free() { ! ss -Htln "sport = :$1" | grep -q .; }

ensure_key() {
  mkdir -p "$STATE"
  [ -s "$KEY" ] && [ -s "$KEY.pub" ] && return 0
  rm -f "$KEY" "$KEY.pub"
  ssh-keygen -q -t ed25519 -N '' -C "fleet.multiarch testenv" -f "$KEY"
}

# start_guest NAME ARCH PORT IMAGE [keep-disk]: a new overlay on the image, or (keep-disk) the guest's own disk.
start_guest() {
  local name=$1 arch=$2 port=$3 image=$4 keep=${5:-} g=$STATE/guests/$1 backing key
  case $DISK_CACHE in
    unsafe | writeback | writethrough | none | directsync) ;;
    *) die "FLEET_DISK_CACHE is a QEMU cache mode (unsafe, writeback, writethrough, none, directsync), not $DISK_CACHE" ;;
  esac
  mkdir -p "$g" "$STATE/logs"
  port_free "$port" || die "port 127.0.0.1:$port is taken; set FLEET_PORT_BASE to another range"
  backing=$CACHE/$arch/$image.qcow2
  if [ "$keep" = keep-disk ]; then
    [ -s "$g/overlay.qcow2" ] || die "$name has no disk to boot from ($g/overlay.qcow2)"
    echo "--- powered on again $(date -u +%FT%TZ) ---" >> "$STATE/logs/$name.console.log"
  else
    qemu-img create -q -f qcow2 -F qcow2 -b "$backing" "$g/overlay.qcow2"
    : > "$STATE/logs/$name.console.log"
  fi
  echo "$arch" > "$g/arch"; echo "$port" > "$g/port"; echo "$image" > "$g/image"
  key=$(cut -d' ' -f1,2 "$KEY.pub" | tr ' ' ,)
  # The daemon must not inherit the fleet's lock files (fds 8 and 9), or it would hold the locks.
  "$(qemu_of "$arch")" -name "$name" -M virt -cpu "$(cpu_of "$arch")" -smp "$SMP" -m "$MEMORY" \
    -accel tcg,thread=multi -display none -monitor none -serial "file:$STATE/logs/$name.console.log" \
    -kernel "$CACHE/$arch/vmlinuz" -initrd "$CACHE/$arch/initrd.img" \
    -append "console=ttyAMA0 root=/dev/vda rw apparmor=0 loglevel=4 fleet.name=$name fleet.key=$key" \
    -drive "if=none,id=hd0,file=$g/overlay.qcow2,format=qcow2,cache=$DISK_CACHE,discard=unmap" \
    -device virtio-blk-device,drive=hd0 \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22" -device virtio-net-device,netdev=n0 \
    -object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-device,rng=rng0 \
    -daemonize -pidfile "$g/pid" </dev/null >"$STATE/logs/$name.qemu.log" 2>&1 8>&- 9>&- ||
    { cat "$STATE/logs/$name.qemu.log" >&2; die "QEMU for $name did not start"; }
  date +%s > "$g/started"
}

# Wait until every guest answers SSH; print each one's boot time.
wait_for_ssh() {
  local deadline=$((SECONDS + BOOT_TIMEOUT)) g name pending
  while :; do
    pending=0
    for g in $(guest_dirs); do
      [ -e "$g/ssh-ready" ] && continue
      name=$(basename "$g")
      guest_pid "$g" >/dev/null ||
        { tail -25 "$STATE/logs/$name.console.log" >&2; die "$name's QEMU exited while booting (console: $STATE/logs/$name.console.log)"; }
      if guest_ssh "$(cat "$g/port")" true </dev/null >/dev/null 2>&1; then
        echo $(($(date +%s) - $(cat "$g/started"))) > "$g/ssh-ready"
        log "$name answers SSH on 127.0.0.1:$(cat "$g/port") after $(cat "$g/ssh-ready") s"
      else
        pending=$((pending + 1))
      fi
    done
    [ "$pending" -eq 0 ] && return 0
    if [ $SECONDS -ge $deadline ]; then
      for g in $(guest_dirs); do [ -e "$g/ssh-ready" ] || tail -15 "$STATE/logs/$(basename "$g").console.log" >&2; done
      return 1
    fi
    sleep 3
  done
}

write_inventory() {
  local g name arch port group hosts
  {
    echo "# Written by scripts/fleet.sh up; the emulated Raspberry-Pi-like guests of this machine."
    echo "all:"
    echo "  children:"
    echo "    devices:"
    echo "      vars:"
    echo "        ansible_host: 127.0.0.1"
    echo "        ansible_user: $GUEST_USER"
    echo "        ansible_ssh_private_key_file: $KEY"
    echo "        ansible_python_interpreter: /usr/bin/python3"
    echo "        ansible_ssh_pipelining: true"
    echo "        ansible_timeout: 120"
    echo "        ansible_ssh_common_args: >-"
    echo "          -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes"
    echo "          -o ControlMaster=auto -o ControlPersist=600s -o ServerAliveInterval=15 -o ServerAliveCountMax=8"
    echo "      children:"
    for group in "${ARCHES[@]}"; do
      hosts=""
      for g in $(guest_dirs); do
        arch=$(cat "$g/arch"); [ "$arch" = "$group" ] || continue
        name=$(basename "$g"); port=$(cat "$g/port")
        hosts+="            $name:"$'\n'"              ansible_port: $port"$'\n'
        hosts+="              fleet_guest_arch: $arch"$'\n'"              fleet_guest_image: $(cat "$g/image")"$'\n'
      done
      echo "        $group:"
      if [ -n "$hosts" ]; then printf '          hosts:\n%s' "$hosts"; else echo "          hosts: {}"; fi
    done
  } > "$STATE/inventory.yml.new"
  mv "$STATE/inventory.yml.new" "$STATE/inventory.yml"
}

write_facts() {
  local g first=1
  {
    printf '{"inventory": "%s", "key": "%s", "user": "%s", "guests": [' "$STATE/inventory.yml" "$KEY" "$GUEST_USER"
    for g in $(guest_dirs); do
      [ $first -eq 1 ] || printf ', '
      first=0
      printf '{"name": "%s", "arch": "%s", "port": %s, "pid": %s, "image": "%s", "boot_seconds": %s, "console": "%s"}' \
        "$(basename "$g")" "$(cat "$g/arch")" "$(cat "$g/port")" "$(cat "$g/pid")" "$(cat "$g/image")" \
        "$(cat "$g/ssh-ready" 2>/dev/null || echo null)" "$STATE/logs/$(basename "$g").console.log"
    done
    printf ']}\n'
  } > "$STATE/fleet.json.new"
  mv "$STATE/fleet.json.new" "$STATE/fleet.json"
}

# A snapshot (the provisioned image, or another name) is usable only on top of the base it was made from.
snapshot_ok() {
  local arch=$1 name=$2 d=$CACHE/$1
  [ -s "$d/$name.qcow2" ] && [ -s "$d/$name.base-recipe" ] &&
    [ "$(cat "$d/$name.base-recipe")" = "$(cat "$d/recipe" 2>/dev/null)" ]
}

valid_image_name() { [[ $1 =~ ^[a-z0-9][a-z0-9-]*$ ]]; }

spec_of() {
  local arm64=$1 armhf=$2 image=$3 arch
  echo "arm64=$arm64 armhf=$armhf image=$image smp=$SMP memory=$MEMORY ports=$PORT_BASE cache=$DISK_CACHE"
  for arch in "${ARCHES[@]}"; do
    echo "$arch $(cat "$CACHE/$arch/recipe" 2>/dev/null) $(cat "$CACHE/$arch/$image.recipe" 2>/dev/null)"
  done
}

fleet_healthy() {
  local g n=0
  for g in $(guest_dirs); do
    n=$((n + 1))
    guest_pid "$g" >/dev/null || return 1
    guest_ssh "$(cat "$g/port")" true </dev/null >/dev/null 2>&1 || return 1
  done
  [ $n -gt 0 ]
}

cmd_up() {
  local arm64=${FLEET_ARM64:-1} armhf=${FLEET_ARMHF:-1} image=${FLEET_IMAGE:-base} t0=$SECONDS
  local arch i n base name port p want=() plan=()
  while [ $# -gt 0 ]; do
    case $1 in
      --arm64) arm64=$2; shift 2 ;;
      --armhf) armhf=$2; shift 2 ;;
      --image) image=$2; shift 2 ;;
      *) die "unknown option $1 (up [--arm64 N] [--armhf N] [--image base|provisioned])" ;;
    esac
  done
  [[ $arm64 =~ ^[0-9]+$ && $armhf =~ ^[0-9]+$ && $arm64 -le 99 && $armhf -le 99 ]] || die "guest counts must be 0-99"
  [ $((arm64 + armhf)) -gt 0 ] || die "no guests asked for"
  valid_image_name "$image" || die "--image is base, provisioned or another snapshot's name, not $image"
  [ "$arm64" -gt 0 ] && want+=(arm64)
  [ "$armhf" -gt 0 ] && want+=(armhf)
  require_debian_x86_64_root "it installs packages and builds root filesystems"
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -w 1800 9 || die "another fleet command holds $STATE/.lock"

  if [ "$(cat "$STATE/spec" 2>/dev/null)" = "$(spec_of "$arm64" "$armhf" "$image")" ] && fleet_healthy &&
    images_current "${want[@]}"; then
    write_inventory; write_facts
    log "the fleet is already up ($(running_guests | tr '\n' ' ')); inventory: $STATE/inventory.yml"
    return 0
  fi
  # A snapshot lives on top of its base: if the base is missing or stale, so is the snapshot. Checked
  # before anything is stopped.
  if [ "$image" != base ]; then
    for arch in "${want[@]}"; do
      { image_current "$arch" && snapshot_ok "$arch" "$image"; } ||
        die "no $image image of $arch on top of the current base: boot base guests (\`$0 up\`), provision them, then run \`$0 snapshot-provisioned --name $image\`"
    done
  fi
  if [ -n "$(guest_dirs)" ]; then stop_fleet; fi
  apt_install_missing "$CACHE/apt-install.log" "${HOST_PACKAGES[@]}"
  cmd_build "${want[@]}"
  ensure_key
  # From here on, a failure (a port taken, a QEMU that exits, a boot that times out) takes down the
  # guests this command started, so that none is left running unaccounted for.
  trap 'rc=$?; if [ $rc -ne 0 ]; then log "bring-up failed: stopping the guests it started"; stop_fleet; fi' EXIT
  log "booting $arm64 arm64 and $armhf armhf guest(s) from the $image images (consoles: $STATE/logs)"
  for arch in "${want[@]}"; do
    if [ "$arch" = arm64 ]; then n=$arm64 base=$PORT_BASE; else n=$armhf base=$((PORT_BASE + 100)); fi
    for i in $(seq 1 "$n"); do plan+=("pi-$arch-$i:$arch:$((base + i))"); done
  done
  for p in "${plan[@]}"; do
    port_free "${p##*:}" || die "port 127.0.0.1:${p##*:} is taken; set FLEET_PORT_BASE to another range"
  done
  for p in "${plan[@]}"; do
    IFS=: read -r name arch port <<<"$p"
    start_guest "$name" "$arch" "$port" "$image"
  done
  wait_for_ssh || die "the guests did not answer SSH within $BOOT_TIMEOUT s (consoles: $STATE/logs)"
  spec_of "$arm64" "$armhf" "$image" > "$STATE/spec"
  write_inventory
  write_facts
  trap - EXIT
  log "fleet up in $((SECONDS - t0)) s; inventory: $STATE/inventory.yml"
}

# Power the guests off (as a Pi is: poweroff over SSH), then SIGTERM and SIGKILL what is left. A guest
# that does not take the poweroff (still booting, hung) gets 10 s instead of the full timeout.
stop_guest() {
  local g=$1 pid grace=10
  pid=$(guest_pid "$g") || return 0
  # shellcheck disable=SC2046
  timeout 30 ssh $(ssh_opts) -p "$(cat "$g/port")" "$GUEST_USER@127.0.0.1" sudo systemctl poweroff \
    </dev/null >/dev/null 2>&1 && grace=$POWEROFF_TIMEOUT
  for _ in $(seq 1 "$grace"); do guest_pid "$g" >/dev/null || return 0; sleep 1; done
  log "$(basename "$g") did not power off in ${grace}s: stopping its QEMU (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 10); do guest_pid "$g" >/dev/null || return 0; sleep 1; done
  kill -KILL "$pid" 2>/dev/null || true
}

stop_fleet() {
  local g stray
  for g in $(guest_dirs); do stop_guest "$g" & done
  wait 2>/dev/null || true
  stray=$(fleet_qemu_pids | tr '\n' ' ')
  if [ -n "$stray" ]; then
    log "QEMU processes of the fleet still there: $stray; killing them"
    # shellcheck disable=SC2086
    kill -KILL $stray 2>/dev/null || true
    sleep 1
    stray=$(fleet_qemu_pids | tr '\n' ' ')
    [ -z "$stray" ] || die "QEMU processes of the fleet survived SIGKILL: $stray"
  fi
  rm -rf "$STATE/guests" "$STATE/inventory.yml" "$STATE/fleet.json" "$STATE/spec"
}

cmd_down() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -w 1800 9 || die "another fleet command holds $STATE/.lock"
  local names
  names=$(running_guests | tr '\n' ' ')
  stop_fleet
  log "fleet down${names:+ (stopped $names)}; no QEMU process of the fleet is left"
}

cmd_status() {
  local g name pid ssh_ok arch f n
  printf '%-12s %-6s %-6s %-8s %-12s %s\n' NAME ARCH PORT PID IMAGE SSH
  for g in $(guest_dirs); do
    name=$(basename "$g")
    pid=$(guest_pid "$g") || pid=-
    ssh_ok=no
    [ "$pid" != - ] && guest_ssh "$(cat "$g/port")" true </dev/null >/dev/null 2>&1 && ssh_ok=yes
    printf '%-12s %-6s %-6s %-8s %-12s %s\n' "$name" "$(cat "$g/arch")" "$(cat "$g/port")" "$pid" "$(cat "$g/image")" "$ssh_ok"
  done
  for arch in "${ARCHES[@]}"; do
    if image_current "$arch"; then
      printf 'image %s: base %s (built %s, kernel %s)' "$arch" "$(cat "$CACHE/$arch/recipe")" \
        "$(cat "$CACHE/$arch/built")" "$(cat "$CACHE/$arch/kernel-version")"
      for f in "$CACHE/$arch"/*.base-recipe; do
        [ -e "$f" ] || continue
        n=$(basename "$f" .base-recipe)
        snapshot_ok "$arch" "$n" && printf ', %s %s' "$n" "$(cat "$CACHE/$arch/$n.recipe")"
      done
      echo
    else
      echo "image $arch: not built (or stale)"
    fi
  done
  [ -f "$STATE/inventory.yml" ] && echo "inventory: $STATE/inventory.yml"
  return 0
}

# Keep a guest's disk (its overlay, folded onto the base alone) as an image of its architecture:
# "provisioned" by default, for guests whose Docker engine the device role has installed. The guest is
# powered off first so that its file system is clean; machine-id is emptied so that each guest booted
# from the snapshot makes its own. `up --image NAME` boots from it.
cmd_snapshot() {
  local recipe="" image=provisioned names=() name g arch pid port seen="" tmp d
  while [ $# -gt 0 ]; do
    case $1 in
      --recipe) recipe=$2; shift 2 ;;
      --name) image=$2; shift 2 ;;
      -*) die "unknown option $1 (snapshot-provisioned [--name NAME] [--recipe ID] [GUEST...])" ;;
      *) names+=("$1"); shift ;;
    esac
  done
  { valid_image_name "$image" && [ "$image" != base ]; } || die "a snapshot's name is lower-case letters, digits and '-', not base"
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -w 1800 9 || die "another fleet command holds $STATE/.lock"
  if [ ${#names[@]} -eq 0 ]; then
    for name in $(running_guests); do
      arch=$(cat "$STATE/guests/$name/arch")
      case " $seen " in *" $arch "*) continue ;; esac
      seen="$seen $arch"; names+=("$name")
    done
  fi
  [ ${#names[@]} -gt 0 ] || die "no running guest to snapshot: run \`$0 up\` first"
  for name in "${names[@]}"; do
    g=$STATE/guests/$name
    pid=$(guest_pid "$g") || die "guest $name is not running"
    arch=$(cat "$g/arch"); port=$(cat "$g/port"); d=$CACHE/$arch
    log "powering $name off to keep its disk as the $image image of $arch"
    guest_ssh "$port" 'sudo sh -c "truncate -s 0 /etc/machine-id; sync; fstrim -a >/dev/null 2>&1; systemctl poweroff"' \
      </dev/null >/dev/null 2>&1 || true
    for _ in $(seq 1 "$POWEROFF_TIMEOUT"); do guest_pid "$g" >/dev/null || break; sleep 1; done
    guest_pid "$g" >/dev/null && die "$name did not power off within $POWEROFF_TIMEOUT s; nothing was kept"
    tmp=$d/$image.qcow2.tmp
    cp --sparse=always "$g/overlay.qcow2" "$tmp"
    # A guest booted from a snapshot sits on it: a safe rebase folds that layer into the copy.
    qemu-img rebase -q -f qcow2 -F qcow2 -b "$d/base.qcow2" "$tmp"
    mv "$tmp" "$d/$image.qcow2"
    echo "${recipe:-$(date -u +%Y%m%dT%H%M%SZ)}" > "$d/$image.recipe"
    cp "$d/recipe" "$d/$image.base-recipe"
    rm -f "$STATE/spec"
    log "$image image of $arch: $d/$image.qcow2 ($(du -h "$d/$image.qcow2" | cut -f1)), recipe $(cat "$d/$image.recipe")"
  done
}

cmd_snapshot_recipe() {
  local arch=${1:-} image=${2:-provisioned}
  { valid_arch "$arch" && valid_image_name "$image"; } || die "usage: $0 provisioned-recipe arm64|armhf [NAME]"
  snapshot_ok "$arch" "$image" || return 1
  cat "$CACHE/$arch/$image.recipe"
}

cmd_drop_snapshot() {
  local image=${1:-} arch
  { valid_image_name "$image" && [ "$image" != base ]; } || die "usage: $0 drop-snapshot NAME"
  for arch in "${ARCHES[@]}"; do
    rm -f "$CACHE/$arch/$image.qcow2" "$CACHE/$arch/$image.recipe" "$CACHE/$arch/$image.base-recipe"
  done
  log "removed the $image images"
}

# A power cut: the guest's QEMU is killed at once. Its disk keeps what QEMU had written (with
# FLEET_DISK_CACHE=writeback: what the guest had flushed), as a board's SD card does.
cmd_power_cut() {
  local name=${1:-} g pid
  [ -n "$name" ] || die "usage: $0 power-cut GUEST"
  g=$STATE/guests/$name
  [ -f "$g/port" ] || die "no guest $name (see $0 status)"
  pid=$(guest_pid "$g") || die "guest $name is not running"
  kill -KILL "$pid"
  for _ in $(seq 1 30); do guest_pid "$g" >/dev/null || break; sleep 1; done
  guest_pid "$g" >/dev/null && die "the QEMU of $name (pid $pid) survived SIGKILL"
  rm -f "$g/ssh-ready"
  log "$name lost power (QEMU pid $pid killed)"
}

# Boot a guest that lost power (or was killed) again from its own disk, and wait for its SSH.
cmd_power_on() {
  local name=${1:-} g deadline
  [ -n "$name" ] || die "usage: $0 power-on GUEST"
  g=$STATE/guests/$name
  [ -f "$g/port" ] || die "no guest $name (see $0 status)"
  guest_pid "$g" >/dev/null && die "guest $name is running: power-cut it first"
  [ "$(cat "$g/arch")" = arm64 ] || [ "$(cat "$g/arch")" = armhf ] || die "guest $name has no architecture"
  exec 9>"$STATE/.lock"
  flock -w 1800 9 || die "another fleet command holds $STATE/.lock"
  ensure_key
  rm -f "$g/ssh-ready"
  start_guest "$name" "$(cat "$g/arch")" "$(cat "$g/port")" "$(cat "$g/image")" keep-disk
  deadline=$((SECONDS + BOOT_TIMEOUT))
  until guest_ssh "$(cat "$g/port")" true </dev/null >/dev/null 2>&1; do
    guest_pid "$g" >/dev/null ||
      { tail -25 "$STATE/logs/$name.console.log" >&2; die "$name's QEMU exited while booting (console: $STATE/logs/$name.console.log)"; }
    [ $SECONDS -lt $deadline ] || die "$name did not answer SSH within $BOOT_TIMEOUT s (console: $STATE/logs/$name.console.log)"
    sleep 3
  done
  echo $(($(date +%s) - $(cat "$g/started"))) > "$g/ssh-ready"
  write_facts
  log "$name powered on again: answers SSH after $(cat "$g/ssh-ready") s"
}

cmd_ssh() {
  local name=${1:-} g
  [ -n "$name" ] || die "usage: $0 ssh GUEST [COMMAND...]"
  shift
  g=$STATE/guests/$name
  [ -f "$g/port" ] || die "no guest $name (see $0 status)"
  # shellcheck disable=SC2046
  exec ssh $(ssh_opts) -p "$(cat "$g/port")" "$GUEST_USER@127.0.0.1" "$@"
}

case ${1:-} in
  build) shift; cmd_build "$@" ;;
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  snapshot-provisioned) shift; cmd_snapshot "$@" ;;
  provisioned-recipe) shift; cmd_snapshot_recipe "$@" ;;
  drop-snapshot) shift; cmd_drop_snapshot "$@" ;;
  ssh) shift; cmd_ssh "$@" ;;
  power-cut) shift; cmd_power_cut "$@" ;;
  power-on) shift; cmd_power_on "$@" ;;
  clean-cache) cmd_clean_cache ;;
  *) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
