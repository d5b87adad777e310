#!/usr/bin/env bash
# The "provisioned" fleet images: base guests with the collection's device role applied (Docker engine,
# Python Docker SDK, daemon.json), kept as `scripts/fleet.sh up --image provisioned` boots them, so that
# rollout tests and benchmarks do not install Docker under emulation each time.
#
#   scripts/fleet-provision.sh          make them when their recipe changed (else return at once)
#   scripts/fleet-provision.sh --id     print the recipe ID and exit
#   scripts/fleet-provision.sh --force  make them even when they are current
#
# The recipe ID is a sha256 over everything that shapes the images: roles/device/** (not its README), the playbook
# playbooks/device.yml, the variables below, the collection's modules the role calls (device_facts, daemon_json)
# and the module_utils they import, and the base images' recipes. When `scripts/fleet.sh provisioned-recipe ARCH`
# prints that ID for arm64 and armhf, nothing is done. Otherwise one arm64 and one armhf guest boot from the base
# images in a private state dir (FLEET_PROVISION_STATE, ports from FLEET_PROVISION_PORT_BASE), the playbook runs
# on them, and `scripts/fleet.sh snapshot-provisioned --recipe ID` keeps their disks in the shared image cache.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FLEET=$ROOT/scripts/fleet.sh
PLAYBOOK=$ROOT/playbooks/device.yml
ARCHES=(arm64 armhf)
PROVISION_STATE=${FLEET_PROVISION_STATE:-/var/lib/fleet-multiarch-testenv/provision}
PROVISION_PORT_BASE=${FLEET_PROVISION_PORT_BASE:-12700}
# What the emulated fleet needs beyond the role's defaults: the host's plain-HTTP registry (10.0.2.2 from a
# guest) as an insecure registry and as the mirror of unqualified images, and pi in the docker group.
EXTRA_VARS='{"device_insecure_registries": ["10.0.2.2:5000"], "device_registry_mirrors": ["http://10.0.2.2:5000"], "device_docker_group_users": ["pi"]}'

LOG_TAG=fleet-provision
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# The module_utils a module or module_util imports, transitively (file names under plugins/module_utils).
module_utils_of() {
  local todo=("$@") seen=" " f m
  while [ ${#todo[@]} -gt 0 ]; do
    f=${todo[0]}; todo=("${todo[@]:1}")
    while read -r m; do
      case $seen in *" $m "*) continue ;; esac
      seen="$seen$m "
      echo "plugins/module_utils/$m.py"
      todo+=("$ROOT/plugins/module_utils/$m.py")
    done < <(grep -oE 'plugins\.module_utils\.[A-Za-z0-9_]+' "$f" | sed 's/.*\.//' | sort -u)
  done
}

# The collection's modules that the role's tasks and handlers call (a task key fleet.multiarch.NAME with a
# plugins/modules/NAME.py; mentions in comments and documentation do not count).
role_modules() {
  local m
  grep -rhoE '^[[:space:]]*(- )?fleet\.multiarch\.[a-z0-9_]+:' roles/device/tasks roles/device/handlers |
    sed -E 's/.*\.([a-z0-9_]+):$/\1/' | sort -u |
    while read -r m; do
      if [ -f "plugins/modules/$m.py" ]; then echo "plugins/modules/$m.py"; fi
    done
}

# The base image recipe of each architecture as `fleet.sh status` reports it ("none" when not built or stale).
base_recipes() {
  local status arch id
  status=$(FLEET_TESTENV_STATE=$PROVISION_STATE "$FLEET" status)
  for arch in "${ARCHES[@]}"; do
    id=$(awk -v a="image $arch:" 'index($0, a) == 1 && $3 == "base" { print $4 }' <<<"$status")
    echo "$arch ${id:-none}"
  done
}

recipe_id() {
  local f modules
  (
    cd "$ROOT"
    echo "fleet-provision v1"
    echo "$EXTRA_VARS"
    base_recipes
    modules=$(role_modules)
    # shellcheck disable=SC2086 # one file name per word
    { find roles/device -type f ! -name README.md; echo playbooks/device.yml; echo "$modules"
      module_utils_of $modules; } | LC_ALL=C sort -u | while read -r f; do
      echo "== $f"
      cat "$f"
    done
  ) | sha256sum | cut -c1-16
}

current() {
  local id=$1 arch
  for arch in "${ARCHES[@]}"; do
    [ "$("$FLEET" provisioned-recipe "$arch" 2>/dev/null)" = "$id" ] || return 1
  done
}

ansible_playbook() {
  if [ -x "$ROOT/.venv/bin/ansible-playbook" ]; then echo "$ROOT/.venv/bin/ansible-playbook"
  else command -v ansible-playbook || die "ansible-playbook not found: run \`make venv\` first"; fi
}

force=0
case ${1:-} in
  --id) recipe_id; exit 0 ;;
  --force) force=1 ;;
  "") ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

id=$(recipe_id)
if [ "$force" -eq 0 ] && current "$id"; then
  log "provisioned images up to date (recipe $id)"
  exit 0
fi

t0=$SECONDS
mkdir -p "$PROVISION_STATE"
# One provisioning at a time; whoever waited finds the images made by the other and stops there.
exec 7>"$PROVISION_STATE/.provision.lock"
flock -w 3600 7 || die "another provisioning holds $PROVISION_STATE/.provision.lock"
id=$(recipe_id)
if [ "$force" -eq 0 ] && current "$id"; then
  log "provisioned images up to date (recipe $id, made while this waited)"
  exit 0
fi

export FLEET_TESTENV_STATE=$PROVISION_STATE FLEET_PORT_BASE=$PROVISION_PORT_BASE
# The guests started here never outlive the script, whatever happens.
trap '"$FLEET" down >/dev/null 2>&1 || true' EXIT
log "making the provisioned images (recipe $id): booting one arm64 and one armhf guest from base"
"$FLEET" up --arm64 1 --armhf 1 --image base
t_up=$((SECONDS - t0))
# `up` may have (re)built a base image: the recipe names the base the guests booted from.
id=$(recipe_id)
log "applying the device role ($PLAYBOOK)"
t1=$SECONDS
ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 "$(ansible_playbook)" -i "$PROVISION_STATE/fleet/inventory.yml" \
  -e "$EXTRA_VARS" "$PLAYBOOK" >"$PROVISION_STATE/provision.log" 2>&1 ||
  { tail -40 "$PROVISION_STATE/provision.log" >&2; die "the device role failed (log: $PROVISION_STATE/provision.log)"; }
grep -A3 '^PLAY RECAP' "$PROVISION_STATE/provision.log" >&2 || true
t_role=$((SECONDS - t1))
t1=$SECONDS
"$FLEET" snapshot-provisioned --recipe "$id"
t_snap=$((SECONDS - t1))
"$FLEET" down
trap - EXIT
current "$id" || die "the snapshots do not carry recipe $id"
log "provisioned images made in $((SECONDS - t0)) s (boot ${t_up} s, device role ${t_role} s, snapshot ${t_snap} s); recipe $id"
