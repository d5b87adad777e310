#!/usr/bin/env bash
# The system-container image of the molecule scenarios: Debian bookworm with systemd as PID 1 and sshd,
# made here from Debian packages (nothing is pulled from a container registry).
#
#   scripts/molecule-image.sh          build it when missing or when its recipe changed; print its name
#   scripts/molecule-image.sh --force  build it again
#
# The packages come from the Debian mirror this machine already uses (read from its apt sources, or
# $MOLECULE_DEBIAN_MIRROR / $MOLECULE_DEBIAN_SECURITY_MIRROR), and the image's own apt sources point at
# that same mirror, so the roles under test install packages from it.
#
# The image is tagged $MOLECULE_IMAGE (default fleet-molecule/debian-systemd:bookworm) in the engine of
# $DOCKER_HOST and carries the recipe's digest as the label fleet.molecule.recipe: the root filesystem is
# built again only when the recipe (this script's package list, units, mirror) changes.
#
# Made for these scenarios, where the container runs privileged on the host's network:
#   - systemd-binfmt.service and the binfmt_misc (auto)mount are masked: binfmt_misc belongs to the
#     kernel, not to the container, and systemd-binfmt's ExecStop (--unregister) would remove every
#     emulator of the host when the container stops;
#   - sshd listens on the address and port create.yml gives it (a file mounted into sshd_config.d),
#     root logs in with the key create.yml makes; no password is set anywhere.
set -euo pipefail

IMAGE=${MOLECULE_IMAGE:-fleet-molecule/debian-systemd:bookworm}
SUITE=bookworm
CACHE=${MOLECULE_IMAGE_CACHE:-/var/cache/fleet-multiarch-molecule}
PACKAGES=(systemd systemd-sysv dbus python3 python3-apt openssh-server sudo ca-certificates
  iproute2 procps less gnupg)
# Units a system container must not run: binfmt (see above), consoles, udev, time sync, networking
# (the host's network is shared).
MASKED_UNITS=(systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount
  getty@tty1.service console-getty.service serial-getty@.service systemd-udevd.service
  systemd-udevd-control.socket systemd-udevd-kernel.socket systemd-timesyncd.service
  systemd-networkd.service systemd-resolved.service systemd-logind.service
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount dev-hugepages.mount)
RECIPE_VERSION=1
TMP_DIR=

LOG_TAG=molecule-image
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# debian_mirror [main|security]: the Debian mirror this machine already uses (scripts/lib).
# shellcheck source=scripts/lib/debian-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/debian-mirror.sh"

main() {
  local force=0 mirror security recipe digest current
  [ "${1:-}" = --force ] && force=1
  [ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap builds the root filesystem as root)"
  command -v docker >/dev/null || die "docker CLI not found"
  docker version >/dev/null 2>&1 || die "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-default}); run 'make testenv-up'"

  mirror=${MOLECULE_DEBIAN_MIRROR:-$(debian_mirror main || true)}
  [ -n "$mirror" ] || die "no Debian mirror in this machine's apt sources; set MOLECULE_DEBIAN_MIRROR"
  security=${MOLECULE_DEBIAN_SECURITY_MIRROR:-$(debian_mirror security || true)}

  recipe=$(printf '%s\n' "version=$RECIPE_VERSION" "suite=$SUITE" "mirror=$mirror" "security=$security" \
    "packages=${PACKAGES[*]}" "masked=${MASKED_UNITS[*]}")
  digest=$(printf '%s' "$recipe" | sha256sum | cut -c1-16)
  current=$(docker image inspect --format '{{ index .Config.Labels "fleet.molecule.recipe" }}' "$IMAGE" 2>/dev/null || true)
  if [ "$force" -eq 0 ] && [ "$current" = "$digest" ]; then
    log "$IMAGE is up to date (recipe $digest)"
    echo "$IMAGE"
    return 0
  fi
  command -v mmdebstrap >/dev/null || { log "installing mmdebstrap"; apt-get install -y -q mmdebstrap >/dev/null; }

  mkdir -p "$CACHE"
  TMP_DIR=$(mktemp -d "$CACHE/build.XXXXXX")
  trap 'rm -rf "$TMP_DIR"' EXIT
  local tmp=$TMP_DIR
  local sources=("deb $mirror $SUITE main" "deb $mirror $SUITE-updates main")
  [ -n "$security" ] && sources+=("deb $security $SUITE-security main")
  local masks="" unit
  for unit in "${MASKED_UNITS[@]}"; do
    masks+="ln -sf /dev/null \"\$1/etc/systemd/system/$unit\"; "
  done

  log "building the root filesystem of $IMAGE from $mirror (recipe $digest; log: $CACHE/mmdebstrap.log)"
  # shellcheck disable=SC2016 # the hooks are run by mmdebstrap, which passes the root as $1
  mmdebstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    --customize-hook="$masks"'true' \
    --customize-hook='mkdir -p "$1/etc/systemd/system/multi-user.target.wants" "$1/root/.ssh" && chmod 700 "$1/root/.ssh"' \
    --customize-hook='ln -sf /lib/systemd/system/ssh.service "$1/etc/systemd/system/multi-user.target.wants/ssh.service"' \
    --customize-hook='rm -f "$1/etc/machine-id" && touch "$1/etc/machine-id"' \
    --customize-hook='mkdir -p "$1/etc/systemd/journald.conf.d" && printf "[Journal]\nStorage=volatile\n" > "$1/etc/systemd/journald.conf.d/fleet.conf"' \
    "$SUITE" "$tmp/rootfs.tar" "${sources[@]}" >"$CACHE/mmdebstrap.log" 2>&1 ||
    { tail -20 "$CACHE/mmdebstrap.log" >&2; die "mmdebstrap failed; its log is $CACHE/mmdebstrap.log"; }

  # Engine 20.10's `docker import` writes the host's architecture, which is what this amd64 image is.
  docker import \
    --change 'CMD ["/sbin/init"]' \
    --change 'ENV container=docker' \
    --change "LABEL fleet.molecule.recipe=$digest" \
    "$tmp/rootfs.tar" "$IMAGE" >/dev/null
  log "built $IMAGE (recipe $digest)"
  echo "$IMAGE"
}

main "$@"
