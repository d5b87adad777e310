#!/usr/bin/env bash
# The real test environment of fleet.multiarch, started and stopped by the project itself.
#
#   scripts/testenv.sh up       install what is missing and start everything (idempotent)
#   scripts/testenv.sh down     stop the engine and the registries (caches and images are kept)
#   scripts/testenv.sh purge    down, then remove the state (registry data, certificates)
#   scripts/testenv.sh status   say what runs
#
# What "up" brings, on a Debian/Ubuntu x86_64 machine, as root, with or without systemd:
#   - Debian's docker.io engine, started by this script with its own config and log file, and a second
#     engine (trixie's docker.io 26, containerd image store) on its own socket;
#   - binfmt_misc mounted and QEMU user emulation registered by the collection's own binfmt module
#     (arm64, arm/v7 and v6, riscv64, ppc64le, s390x), each proved by running a foreign binary;
#   - a plain registry on 127.0.0.1:5000 (deletes enabled), a TLS + htpasswd one on 127.0.0.1:5443, and
#     a TLS + Bearer-token one on 127.0.0.1:5444 whose token server (registry-token-server.py) is :5445;
#   - the buildx CLI plugin from Debian's docker-buildx package, cached with its sha256;
#   - local multi-arch base images (busybox shaped as Docker Hub's busybox:glibc, debian:bookworm) pushed
#     to the plain registry, which the engine uses as its registry mirror, so that "FROM busybox" builds
#     offline; and golang:1.19 (linux/amd64, Debian's golang-go) for cross-compiling build stages.
# Everything it learns is written to $FLEET_TESTENV_STATE/testenv.json for the tests.
set -euo pipefail

STATE=${FLEET_TESTENV_STATE:-/var/lib/fleet-multiarch-testenv}
CACHE=${FLEET_TESTENV_CACHE:-/var/cache/fleet-multiarch-testenv}
REGISTRY=127.0.0.1:5000
REGISTRY_TLS=127.0.0.1:5443
REGISTRY_TOKEN=127.0.0.1:5444
TOKEN_SERVER=127.0.0.1:5445
TOKEN_SERVICE=fleet-testenv-registry
TOKEN_ISSUER=fleet-testenv-token-issuer
REGISTRY_USER=fleet
DOCKER_SOCK=/var/run/docker.sock
# A second engine beside the first: Debian trixie's docker.io 26 with the containerd image store, which
# the docker driver needs for multi-platform builds and indexes. Its own socket, roots and bridge; it
# leaves iptables to the first engine.
ENGINE2_SOCK=/var/run/fleet-docker2.sock
ENGINE2_BRIDGE=fleet-dkr2
ENGINE2_BRIDGE_CIDR=172.30.0.1/24
BUILDX_PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=${VENV:-$(dirname "$SCRIPTS")/.venv}
# The recipes of the base images; a change here rebuilds them.
BUSYBOX_PLATFORMS=(linux/amd64:amd64 linux/arm64:arm64 linux/arm/v7:armhf linux/arm/v6:armel)
DEBIAN_PLATFORMS=(linux/amd64:amd64 linux/arm64:arm64 linux/arm/v7:armhf)
DEBIAN_SUITE=bookworm
# library/golang as users name it (golang:1.19, golang:bookworm, golang:latest): Debian's golang-go 1.19.
# linux/amd64 only: Go cross-compiles on the build platform (FROM --platform=$BUILDPLATFORM golang), so
# the ARM variants are not needed for the tests, and each one costs minutes of maintainer scripts under
# QEMU on a fresh machine. mmdebstrap of this root, measured 2026-12-04 on 2 cores (busy with the fleet's
# image builds at the time): amd64 116 s, arm64 575 s; arm/v7 would cost about as much as arm64.
GOLANG_PLATFORMS=(linux/amd64:amd64)
GOLANG_TAGS=(1.19-bookworm 1.19 bookworm latest)
GOLANG_PACKAGES=golang-go,ca-certificates,git,gcc,libc6-dev
# What the environment emulates (any spelling fleet.multiarch.binfmt accepts), as a JSON list body.
EMULATED_PLATFORMS='"linux/arm64", "linux/arm/v7", "linux/riscv64", "linux/ppc64le", "linux/s390x"'
PACKAGES=(docker.io containerd runc iptables qemu-user-static docker-registry skopeo
  mmdebstrap arch-test apache2-utils openssl ca-certificates curl jq git shellcheck gcc libc6-dev)

LOG_TAG=testenv
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# ---------------------------------------------------------------------------------------------------
# Preconditions and packages
# ---------------------------------------------------------------------------------------------------
# debian_mirror [main|security]: the Debian mirror this machine already uses (scripts/lib).
# shellcheck source=scripts/lib/debian-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/debian-mirror.sh"

# apt-get with a private configuration: other suites and architectures, without touching the system's.
private_apt() {
  local name=$1; shift
  local d="$CACHE/apt/$name"
  mkdir -p "$d/lists/partial" "$d/archives/partial"
  apt-get -q -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
    -o Dir::State::Lists="$d/lists" -o Dir::Cache::Archives="$d/archives" \
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o Acquire::Languages=none \
    -o APT::Sandbox::User=root "$@"
}

# Package lists of Debian trixie (13), kept apart from the system's, from the mirror the machine uses.
ensure_trixie_lists() {
  local d="$CACHE/apt/trixie" mirror
  [ -n "$(find "$d/lists" -name '*_Packages*' -mmin -1440 2>/dev/null | head -1)" ] && return 0
  mirror=$(debian_mirror main) || die "no Debian mirror in /etc/apt/sources*; cannot fetch packages from trixie"
  mkdir -p "$d"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$d/sources.list"
  private_apt trixie -o APT::Architectures::=amd64 update >/dev/null || die "apt-get update of the trixie lists failed"
}

# ---------------------------------------------------------------------------------------------------
# binfmt_misc and QEMU
# ---------------------------------------------------------------------------------------------------
# The collection's own fleet.multiarch.binfmt module: it mounts binfmt_misc, registers Debian's static
# QEMU emulators with its default flags PCF (F: emulation works inside containers; P: programs keep their
# argv[0], which busybox needs; C: setuid programs such as sudo work in emulated builds), replaces
# differing entries and proves each platform by running a tiny foreign ELF that checks its argv[0].
# Not persisted: this script runs every time.
setup_binfmt() {
  local out
  if ! out=$(ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ANSIBLE_NOCOLOR=1 \
    "$VENV/bin/ansible" localhost -c local -o -e "ansible_python_interpreter=$VENV/bin/python" \
    -m fleet.multiarch.binfmt -a "{\"platforms\": [$EMULATED_PLATFORMS], \"flags\": \"PCF\", \"persist\": false}" 2>&1); then
    printf '%s\n' "$out" >&2
    die "fleet.multiarch.binfmt could not register the QEMU emulators"
  fi
  case $out in *CHANGED*) log "QEMU emulators registered with fleet.multiarch.binfmt" ;; esac
}

# ---------------------------------------------------------------------------------------------------
# The Docker engine
# ---------------------------------------------------------------------------------------------------
engine_answers() { curl -fsS --max-time 3 --unix-socket "$DOCKER_SOCK" http://localhost/_ping >/dev/null 2>&1; }

write_daemon_json() {
  mkdir -p "$STATE/docker"
  cat > "$STATE/docker/daemon.json.new" <<EOF
{
  "registry-mirrors": ["http://$REGISTRY"],
  "insecure-registries": ["$REGISTRY"],
  "features": {"buildkit": true},
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"},
  "storage-driver": "overlay2"
}
EOF
  if cmp -s "$STATE/docker/daemon.json.new" "$STATE/docker/daemon.json"; then
    rm -f "$STATE/docker/daemon.json.new"; return 1
  fi
  mv "$STATE/docker/daemon.json.new" "$STATE/docker/daemon.json"
  return 0
}

start_engine() {
  local changed=0 pidfile="$STATE/docker/dockerd.pid"
  write_daemon_json && changed=1
  if engine_answers; then
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      if ! ip link show docker0 >/dev/null 2>&1; then
        # Another dockerd in this network namespace (docker-in-docker with host networking) can take
        # the bridge away; containers then fail with "could not find bridge docker0".
        log "the docker0 bridge is gone: restarting dockerd to recreate it"
      elif [ "$changed" -eq 0 ]; then
        return 0
      else
        log "engine configuration changed: restarting dockerd"
      fi
      stop_pid "$pidfile" dockerd 60
    else
      # An engine this script did not start: use it only if it is configured as the tests need.
      docker info --format '{{json .RegistryConfig.Mirrors}}' 2>/dev/null | grep -q "$REGISTRY" ||
        die "a Docker engine already answers on $DOCKER_SOCK without the registry mirror http://$REGISTRY; stop it (systemctl stop docker docker.socket) and run again"
      log "using the Docker engine that already runs"
      return 0
    fi
  fi
  log "starting dockerd (log: $STATE/docker/dockerd.log)"
  setsid /usr/sbin/dockerd --config-file "$STATE/docker/daemon.json" --pidfile "$pidfile" \
    -H "unix://$DOCKER_SOCK" >>"$STATE/docker/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    engine_answers && break
    if ! kill -0 $! 2>/dev/null; then
      tail -15 "$STATE/docker/dockerd.log" >&2
      die "dockerd exited while starting; its log is $STATE/docker/dockerd.log"
    fi
    sleep 1
  done
  engine_answers || { tail -15 "$STATE/docker/dockerd.log" >&2; die "dockerd did not answer on $DOCKER_SOCK within 60 s (log: $STATE/docker/dockerd.log)"; }
}

stop_pid() {
  local pidfile=$1 name=$2 timeout=${3:-30} pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 "$timeout"); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && { log "$name did not stop in ${timeout}s: killing it"; kill -9 "$pid"; }
  fi
  rm -f "$pidfile"
}

engine2_answers() { curl -fsS --max-time 3 --unix-socket "$ENGINE2_SOCK" http://localhost/_ping >/dev/null 2>&1; }

# Binaries of Debian trixie's docker.io 26 and containerd 1.7, fetched with the private apt
# configuration; the system runc stays (trixie's needs a newer libc than Debian 12 has).
fetch_engine2() {
  local d="$CACHE/engine2" x deb
  [ -x "$d/bin/dockerd" ] && [ -x "$d/bin/containerd" ] && return 0
  log "fetching docker.io and containerd from Debian trixie for the second engine"
  ensure_trixie_lists
  rm -rf "$d"; mkdir -p "$d/debs" "$d/bin"
  (cd "$d/debs" && private_apt trixie -o APT::Architectures::=amd64 download docker.io containerd tini >/dev/null)
  x="$d/x"
  for deb in "$d"/debs/*.deb; do dpkg-deb -x "$deb" "$x"; done
  install -m 0755 "$x/usr/sbin/dockerd" "$x/usr/sbin/docker-proxy" "$x/usr/bin/containerd" \
    "$x/usr/bin/containerd-shim-runc-v2" "$d/bin/"
  install -m 0755 "$x/usr/bin/tini-static" "$d/bin/docker-init"
  rm -rf "$x"
}

start_engine2() {
  local d="$STATE/docker2" pidfile="$STATE/docker2/dockerd.pid" changed=0
  fetch_engine2
  mkdir -p "$d"
  cat > "$d/daemon.json.new" <<EOF
{
  "registry-mirrors": ["http://$REGISTRY"],
  "insecure-registries": ["$REGISTRY"],
  "features": {"containerd-snapshotter": true},
  "storage-driver": "overlayfs",
  "bridge": "$ENGINE2_BRIDGE",
  "iptables": false,
  "ip6tables": false,
  "ip-masq": false,
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"}
}
EOF
  cmp -s "$d/daemon.json.new" "$d/daemon.json" || changed=1
  mv "$d/daemon.json.new" "$d/daemon.json"
  if engine2_answers; then
    [ "$changed" -eq 0 ] && return 0
    log "second engine configuration changed: restarting it"
    stop_pid "$pidfile" "dockerd (second engine)" 60
  fi
  if ! ip link show "$ENGINE2_BRIDGE" >/dev/null 2>&1; then
    ip link add "$ENGINE2_BRIDGE" type bridge
    ip addr add "$ENGINE2_BRIDGE_CIDR" dev "$ENGINE2_BRIDGE"
  fi
  ip link set "$ENGINE2_BRIDGE" up
  log "starting the second engine, docker 26 with the containerd image store (log: $d/dockerd.log)"
  PATH="$CACHE/engine2/bin:$PATH" setsid "$CACHE/engine2/bin/dockerd" --config-file "$d/daemon.json" \
    --data-root "$d/data" --exec-root /var/run/fleet-docker2 --pidfile "$pidfile" \
    -H "unix://$ENGINE2_SOCK" >>"$d/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    engine2_answers && return 0
    kill -0 $! 2>/dev/null || break
    sleep 1
  done
  tail -15 "$d/dockerd.log" >&2
  die "the second engine did not answer on $ENGINE2_SOCK (log: $d/dockerd.log)"
}

# ---------------------------------------------------------------------------------------------------
# Registries
# ---------------------------------------------------------------------------------------------------
make_tls() {
  local d="$STATE/registry/tls"
  [ -f "$d/server.crt" ] && [ -f "$d/ca.crt" ] && return 0
  log "making a CA and a server certificate for $REGISTRY_TLS"
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=fleet.multiarch test CA" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
    -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
  chmod 600 "$d"/*.key
}

make_htpasswd() {
  local d="$STATE/registry/auth"
  [ -f "$d/htpasswd" ] && [ -f "$d/password" ] && return 0
  mkdir -p "$d"; chmod 700 "$d"
  head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$d/password"
  chmod 600 "$d/password"
  htpasswd -Bbn "$REGISTRY_USER" "$(cat "$d/password")" > "$d/htpasswd"
}

write_registry_config() {
  local name=$1 addr=$2 extra=$3 f="$STATE/registry/$1.yml"
  mkdir -p "$STATE/registry/data-$name"
  cat > "$f" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $STATE/registry/data-$name
  delete:
    enabled: true
http:
  addr: $addr
$extra
EOF
}

registry_answers() {
  case $1 in
    plain) curl -fsS --max-time 3 "http://$REGISTRY/v2/" >/dev/null 2>&1 ;;
    # 401 is the right answer of a registry that wants credentials.
    tls) [ "$(curl -sS --max-time 3 -o /dev/null -w '%{http_code}' --cacert "$STATE/registry/tls/ca.crt" "https://$REGISTRY_TLS/v2/" 2>/dev/null)" = 401 ] ;;
    token) curl -sS --max-time 3 -o /dev/null -D - --cacert "$STATE/registry/tls/ca.crt" "https://$REGISTRY_TOKEN/v2/" 2>/dev/null |
      grep -qi '^www-authenticate: Bearer realm=' ;;
    token-server) curl -fsS --max-time 3 -o /dev/null --cacert "$STATE/registry/tls/ca.crt" "https://$TOKEN_SERVER/token?service=probe" 2>/dev/null ;;
  esac
}

# start_service NAME -- COMMAND...: start a daemon in its own session with a pid file and a log, and
# wait until `registry_answers NAME` says it serves.
start_service() {
  local name=$1 pidfile="$STATE/registry/$1.pid" log="$STATE/registry/$1.log"
  shift 2
  if registry_answers "$name"; then return 0; fi
  [ -f "$pidfile" ] && stop_pid "$pidfile" "$name"
  log "starting $name (log: $log)"
  setsid "$@" >>"$log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  for _ in $(seq 1 30); do
    registry_answers "$name" && return 0
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.5
  done
  tail -10 "$log" >&2
  die "$name did not start (log: $log)"
}

make_signing_key() {
  local d="$STATE/registry/token"
  [ -f "$d/signing.crt" ] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=fleet.multiarch test token issuer" \
    -keyout "$d/signing.key" -out "$d/signing.crt" 2>/dev/null
  chmod 600 "$d/signing.key"
}

setup_registries() {
  local tls="$STATE/registry/tls"
  make_tls
  make_htpasswd
  make_signing_key
  write_registry_config plain "$REGISTRY" ""
  write_registry_config tls "$REGISTRY_TLS" "  tls:
    certificate: $tls/server.crt
    key: $tls/server.key
auth:
  htpasswd:
    realm: fleet-multiarch-testenv
    path: $STATE/registry/auth/htpasswd"
  write_registry_config token "$REGISTRY_TOKEN" "  tls:
    certificate: $tls/server.crt
    key: $tls/server.key
auth:
  token:
    realm: https://$TOKEN_SERVER/token
    service: $TOKEN_SERVICE
    issuer: $TOKEN_ISSUER
    rootcertbundle: $STATE/registry/token/signing.crt"
  # The engine trusts the test CA for the TLS registries, as docs.docker.com/engine/security/certificates says.
  local r
  for r in "$REGISTRY_TLS" "$REGISTRY_TOKEN"; do
    mkdir -p "/etc/docker/certs.d/$r"
    cmp -s "$tls/ca.crt" "/etc/docker/certs.d/$r/ca.crt" || cp "$tls/ca.crt" "/etc/docker/certs.d/$r/ca.crt"
  done
  start_service plain -- /usr/bin/docker-registry serve "$STATE/registry/plain.yml"
  start_service tls -- /usr/bin/docker-registry serve "$STATE/registry/tls.yml"
  start_service token-server -- "$VENV/bin/python" "$SCRIPTS/registry-token-server.py" "${TOKEN_SERVER%:*}" "${TOKEN_SERVER##*:}" \
    "$tls/server.crt" "$tls/server.key" "$STATE/registry/token/signing.crt" "$STATE/registry/token/signing.key" \
    "$TOKEN_ISSUER" "$REGISTRY_USER" "$STATE/registry/auth/password"
  start_service token -- /usr/bin/docker-registry serve "$STATE/registry/token.yml"
}

# ---------------------------------------------------------------------------------------------------
# The buildx plugin, from Debian's docker-buildx package
# ---------------------------------------------------------------------------------------------------
setup_buildx() {
  local d="$CACHE/buildx" bin
  bin="$d/docker-buildx"
  if [ ! -x "$bin" ] || ! (cd "$d" && sha256sum --quiet -c docker-buildx.sha256 2>/dev/null); then
    log "fetching docker-buildx from Debian's archive"
    rm -rf "$d"; mkdir -p "$d"
    if apt-cache show docker-buildx >/dev/null 2>&1; then
      (cd "$d" && apt-get -q -o APT::Sandbox::User=root download docker-buildx >/dev/null)
    else
      # Not in this release (Debian 12 has none): take it from trixie, on the mirror the machine uses.
      ensure_trixie_lists
      (cd "$d" && private_apt trixie -o APT::Architectures::=amd64 download docker-buildx >/dev/null)
    fi
    local deb
    deb=$(ls "$d"/docker-buildx_*.deb)
    dpkg-deb -x "$deb" "$d/x"
    install -m 0755 "$d/x/usr/libexec/docker/cli-plugins/docker-buildx" "$bin"
    dpkg-deb -f "$deb" Version > "$d/deb-version"
    rm -rf "$d/x"
    (cd "$d" && sha256sum docker-buildx > docker-buildx.sha256)
  fi
  mkdir -p "$BUILDX_PLUGIN_DIR"
  cmp -s "$bin" "$BUILDX_PLUGIN_DIR/docker-buildx" || install -m 0755 "$bin" "$BUILDX_PLUGIN_DIR/docker-buildx"
  docker buildx version >/dev/null 2>&1 || die "docker buildx does not run after installing $BUILDX_PLUGIN_DIR/docker-buildx"
}

# ---------------------------------------------------------------------------------------------------
# Base images
# ---------------------------------------------------------------------------------------------------
# Does the registry hold NAME:TAG as an index whose entries are exactly these platforms?
index_has_platforms() {
  local ref=$1; shift
  local want have
  want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
  have=$(curl -fsS --max-time 10 -H 'Accept: application/vnd.oci.image.index.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    "http://$REGISTRY/v2/${ref%%:*}/manifests/${ref#*:}" 2>/dev/null |
    jq -r '.manifests[].platform | [.os, .architecture, .variant // empty] | join("/")' 2>/dev/null | sort | tr '\n' ' ') || return 1
  [ "$want" = "$have" ]
}

# Build one single-platform image FROM scratch with buildx so that its config carries the platform,
# push it by a per-platform tag, and print the pushed manifest digest.
push_scratch_image() {
  local platform=$1 dir=$2 ref=$3 meta
  meta=$(mktemp)
  docker buildx build --builder default --platform "$platform" --provenance=false --sbom=false \
    --metadata-file "$meta" --output "type=image,name=$ref,push=true" "$dir" >"$dir/build.log" 2>&1 ||
    { tail -20 "$dir/build.log" >&2; rm -f "$meta"; die "building $ref for $platform failed"; }
  rm -f "$meta"
}

publish_index() {
  local target=$1; shift
  docker buildx imagetools create --builder default -t "$target" "$@" >/dev/null 2>"$CACHE/imagetools.log" ||
    { cat "$CACHE/imagetools.log" >&2; die "publishing the index $target failed"; }
}

# Debian's dynamic busybox (not busybox-static) with the glibc it links against: the shape of Docker Hub's
# busybox:glibc. busybox-static is built as a standalone shell that runs applets by re-executing
# /proc/self/exe, which loses the applet's name under QEMU without binfmt's P flag; Hub's busybox runs
# applets through the links in /bin, as this one does (docs/binfmt.md has the measurements).
fetch_busybox_debs() {
  local d="$CACHE/busybox" mirror p arch absent=0
  local want=()
  for p in "${BUSYBOX_PLATFORMS[@]}"; do
    arch=${p##*:}
    want+=("busybox:$arch" "libc6:$arch")
    ls "$d"/busybox_*_"$arch".deb "$d"/libc6_*_"$arch".deb >/dev/null 2>&1 || absent=1
  done
  [ "$absent" -eq 0 ] && return 0
  mirror=$(debian_mirror main) || die "no Debian mirror in /etc/apt/sources*; cannot fetch busybox"
  mkdir -p "$d" "$CACHE/apt/bookworm-ports"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $DEBIAN_SUITE main" > "$CACHE/apt/bookworm-ports/sources.list"
  local archopts=()
  for p in "${BUSYBOX_PLATFORMS[@]}"; do archopts+=(-o "APT::Architectures::=${p##*:}"); done
  private_apt bookworm-ports "${archopts[@]}" update >/dev/null
  (cd "$d" && private_apt bookworm-ports "${archopts[@]}" download "${want[@]}" >/dev/null)
}

# busybox_rootfs DEBS ARCH ROOT APPLETS: the root of Docker Hub's busybox image: every applet of the
# APPLETS list hard-linked in /bin, the C library, its users and groups.
busybox_rootfs() {
  local deb_dir=$1 arch=$2 root=$3 applets=$4 applet
  mkdir -p "$root/bin" "$root/x"
  dpkg-deb -x "$(ls "$deb_dir"/busybox_*_"$arch".deb)" "$root/x"
  dpkg-deb -x "$(ls "$deb_dir"/libc6_*_"$arch".deb)" "$root/x"
  cp "$root/x/bin/busybox" "$root/bin/busybox"
  # the C library and the dynamic loader (lib/<triplet>, lib64 on amd64), without gconv and audit modules
  cp -a "$root/x/lib" "$root/lib"
  if [ -d "$root/x/lib64" ]; then cp -a "$root/x/lib64" "$root/lib64"; fi
  rm -rf "$root"/lib/*/gconv "$root"/lib/*/audit "$root/x"
  while read -r applet; do
    [ "$applet" = busybox ] || ln "$root/bin/busybox" "$root/bin/$applet"
  done <"$applets"
  mkdir -p "$root/etc" "$root/home" "$root/root" "$root/tmp" "$root/usr/sbin" "$root/var/spool/mail" "$root/var/www"
  chmod 1777 "$root/tmp"; chmod 700 "$root/root"
  cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
  cat > "$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
EOF
  printf 'root:*::0:::::\nnobody:*::0:::::\n' > "$root/etc/shadow"; chmod 640 "$root/etc/shadow"
  printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
}

build_busybox() {
  local recipe tag=1.35 marker="$STATE/images/busybox.recipe" p platform arch d refs=() applets
  recipe=$(printf '%s\n' "${BUSYBOX_PLATFORMS[@]}" "$DEBIAN_SUITE" v2-glibc | sha256sum | cut -c1-16)
  mkdir -p "$STATE/images"
  if [ "$(cat "$marker" 2>/dev/null)" = "$recipe" ] &&
    index_has_platforms "library/busybox:latest" "${BUSYBOX_PLATFORMS[@]%%:*}"; then
    return 0
  fi
  log "building busybox for ${BUSYBOX_PLATFORMS[*]%%:*}"
  fetch_busybox_debs
  # The applet list of this host's (amd64) build of the same package: every architecture has the same.
  applets="$CACHE/build/busybox-applets"
  rm -rf "$CACHE/build/busybox-list"; mkdir -p "$CACHE/build/busybox-list"
  busybox_rootfs "$CACHE/busybox" amd64 "$CACHE/build/busybox-list" /dev/null
  chroot "$CACHE/build/busybox-list" /bin/busybox --list > "$applets" ||
    die "cannot list the applets of Debian's busybox ($CACHE/build/busybox-list)"
  for p in "${BUSYBOX_PLATFORMS[@]}"; do
    platform=${p%%:*}; arch=${p##*:}
    d="$CACHE/build/busybox-$arch"
    rm -rf "$d"; mkdir -p "$d"
    busybox_rootfs "$CACHE/busybox" "$arch" "$d/rootfs" "$applets"
    printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCMD ["sh"]\n' > "$d/Dockerfile"
    push_scratch_image "$platform" "$d" "$REGISTRY/library/busybox:$tag-$arch"
    refs+=("$REGISTRY/library/busybox:$tag-$arch")
  done
  publish_index "$REGISTRY/library/busybox:latest" "${refs[@]}"
  publish_index "$REGISTRY/library/busybox:$tag" "${refs[@]}"
  index_has_platforms "library/busybox:latest" "${BUSYBOX_PLATFORMS[@]%%:*}" ||
    die "library/busybox:latest in $REGISTRY does not list ${BUSYBOX_PLATFORMS[*]%%:*}"
  echo "$recipe" > "$marker"
}

# debian_root ARCH TARBALL MIRROR WHAT [MMDEBSTRAP OPTION...]: a minbase Debian root of $DEBIAN_SUITE as a tar
# file, made with mmdebstrap unless TARBALL exists; documentation left out, maintainer scripts of foreign
# architectures run through QEMU.
debian_root() {
  local arch=$1 tarball=$2 mirror=$3 what=$4 logfile
  shift 4
  [ -s "$tarball" ] && return 0
  logfile="${tarball%.tar}.log"
  log "making $what for $arch with mmdebstrap"
  mkdir -p "$(dirname "$tarball")"
  # The hook's "$1" is mmdebstrap's, so it stays in single quotes.
  # shellcheck disable=SC2016
  mmdebstrap --quiet --format=tar --arch="$arch" --variant=minbase \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt=force-unsafe-io \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' "$@" \
    "$DEBIAN_SUITE" "$tarball.tmp" "$mirror" >"$logfile" 2>&1 ||
    { tail -20 "$logfile" >&2; rm -f "$tarball.tmp"; die "mmdebstrap for $arch failed (log: $logfile)"; }
  mv "$tarball.tmp" "$tarball"
}

build_debian() {
  local recipe marker="$STATE/images/debian.recipe" p platform arch d tarball refs=() mirror
  recipe=$(printf '%s\n' "${DEBIAN_PLATFORMS[@]}" "$DEBIAN_SUITE" minbase v1 | sha256sum | cut -c1-16)
  mkdir -p "$STATE/images"
  if [ "$(cat "$marker" 2>/dev/null)" = "$recipe" ] &&
    index_has_platforms "library/debian:$DEBIAN_SUITE" "${DEBIAN_PLATFORMS[@]%%:*}"; then
    return 0
  fi
  mirror=$(debian_mirror main) || die "no Debian mirror in /etc/apt/sources*; cannot build a Debian root"
  for p in "${DEBIAN_PLATFORMS[@]}"; do
    platform=${p%%:*}; arch=${p##*:}
    d="$CACHE/build/debian-$arch"
    tarball="$CACHE/rootfs/debian-$DEBIAN_SUITE-$arch-$recipe.tar"
    debian_root "$arch" "$tarball" "$mirror" "a minimal Debian $DEBIAN_SUITE root"
    rm -rf "$d"; mkdir -p "$d"
    ln "$tarball" "$d/rootfs.tar" 2>/dev/null || cp "$tarball" "$d/rootfs.tar"
    printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' > "$d/Dockerfile"
    push_scratch_image "$platform" "$d" "$REGISTRY/library/debian:$DEBIAN_SUITE-$arch"
    refs+=("$REGISTRY/library/debian:$DEBIAN_SUITE-$arch")
  done
  publish_index "$REGISTRY/library/debian:$DEBIAN_SUITE" "${refs[@]}"
  publish_index "$REGISTRY/library/debian:$DEBIAN_SUITE-slim" "${refs[@]}"
  publish_index "$REGISTRY/library/debian:12" "${refs[@]}"
  index_has_platforms "library/debian:$DEBIAN_SUITE" "${DEBIAN_PLATFORMS[@]%%:*}" ||
    die "library/debian:$DEBIAN_SUITE in $REGISTRY does not list ${DEBIAN_PLATFORMS[*]%%:*}"
  echo "$recipe" > "$marker"
}

# A local library/golang that behaves like Docker Hub's for builds: Debian bookworm with Debian's golang-go,
# ca-certificates, git, gcc and libc6-dev; GOPATH=/go, /go/bin on PATH, WORKDIR /go.
build_golang() {
  local recipe marker="$STATE/images/golang.recipe" p platform arch d tarball refs=() mirror tag
  recipe=$(printf '%s\n' "${GOLANG_PLATFORMS[@]}" "${GOLANG_TAGS[@]}" "$DEBIAN_SUITE" "$GOLANG_PACKAGES" v1 |
    sha256sum | cut -c1-16)
  mkdir -p "$STATE/images"
  if [ "$(cat "$marker" 2>/dev/null)" = "$recipe" ] &&
    index_has_platforms "library/golang:${GOLANG_TAGS[0]}" "${GOLANG_PLATFORMS[@]%%:*}"; then
    return 0
  fi
  mirror=$(debian_mirror main) || die "no Debian mirror in /etc/apt/sources*; cannot build the golang image"
  for p in "${GOLANG_PLATFORMS[@]}"; do
    platform=${p%%:*}; arch=${p##*:}
    d="$CACHE/build/golang-$arch"
    tarball="$CACHE/rootfs/golang-$DEBIAN_SUITE-$arch-$recipe.tar"
    # /go/src and /go/bin world-writable as in Docker Hub's image
    # shellcheck disable=SC2016 # the hook's "$1" is mmdebstrap's
    debian_root "$arch" "$tarball" "$mirror" "a Debian $DEBIAN_SUITE root with golang-go" \
      --include="$GOLANG_PACKAGES" --customize-hook='mkdir -p "$1"/go/src "$1"/go/bin && chmod -R 1777 "$1"/go'
    rm -rf "$d"; mkdir -p "$d"
    ln "$tarball" "$d/rootfs.tar" 2>/dev/null || cp "$tarball" "$d/rootfs.tar"
    printf '%s\n' 'FROM scratch' 'ADD rootfs.tar /' 'ENV GOPATH=/go' \
      'ENV PATH=/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      'WORKDIR /go' 'CMD ["bash"]' > "$d/Dockerfile"
    push_scratch_image "$platform" "$d" "$REGISTRY/library/golang:${GOLANG_TAGS[0]}-$arch"
    refs+=("$REGISTRY/library/golang:${GOLANG_TAGS[0]}-$arch")
  done
  for tag in "${GOLANG_TAGS[@]}"; do publish_index "$REGISTRY/library/golang:$tag" "${refs[@]}"; done
  index_has_platforms "library/golang:${GOLANG_TAGS[0]}" "${GOLANG_PLATFORMS[@]%%:*}" ||
    die "library/golang:${GOLANG_TAGS[0]} in $REGISTRY does not list ${GOLANG_PLATFORMS[*]%%:*}"
  echo "$recipe" > "$marker"
}

write_facts() {
  local platforms_busybox platforms_debian platforms_golang
  platforms_busybox=$(printf '%s\n' "${BUSYBOX_PLATFORMS[@]%%:*}" | jq -R . | jq -sc .)
  platforms_debian=$(printf '%s\n' "${DEBIAN_PLATFORMS[@]%%:*}" | jq -R . | jq -sc .)
  platforms_golang=$(printf '%s\n' "${GOLANG_PLATFORMS[@]%%:*}" | jq -R . | jq -sc .)
  jq -n --arg registry "$REGISTRY" --arg registry_tls "$REGISTRY_TLS" --arg user "$REGISTRY_USER" \
    --arg password_file "$STATE/registry/auth/password" --arg ca "$STATE/registry/tls/ca.crt" \
    --arg sock "$DOCKER_SOCK" --arg buildx "$CACHE/buildx/docker-buildx" \
    --arg buildx_sha256 "$(cut -d' ' -f1 "$CACHE/buildx/docker-buildx.sha256")" \
    --arg buildx_deb_version "$(cat "$CACHE/buildx/deb-version")" \
    --arg busybox "library/busybox:latest" --arg debian "library/debian:$DEBIAN_SUITE" \
    --argjson busybox_platforms "$platforms_busybox" --argjson debian_platforms "$platforms_debian" \
    --arg golang "library/golang:${GOLANG_TAGS[0]}" --argjson golang_platforms "$platforms_golang" \
    --arg dockerd_log "$STATE/docker/dockerd.log" --arg sock2 "$ENGINE2_SOCK" --arg dockerd2_log "$STATE/docker2/dockerd.log" \
    --arg registry_token "$REGISTRY_TOKEN" --arg registry_log "$STATE/registry/plain.log" \
    --arg realm "https://$TOKEN_SERVER/token" --arg service "$TOKEN_SERVICE" \
    '{registry: $registry, registry_log: $registry_log, registry_tls: {address: $registry_tls, username: $user, password_file: $password_file, ca_file: $ca},
      registry_token: {address: $registry_token, username: $user, password_file: $password_file, ca_file: $ca,
                       realm: $realm, service: $service},
      docker_host: ("unix://" + $sock), dockerd_log: $dockerd_log,
      engines: {classic: {docker_host: ("unix://" + $sock), image_store: "classic", log: $dockerd_log},
                containerd: {docker_host: ("unix://" + $sock2), image_store: "containerd", log: $dockerd2_log}},
      buildx: {path: $buildx, sha256: $buildx_sha256, debian_version: $buildx_deb_version},
      images: {busybox: {repository: $busybox, platforms: $busybox_platforms},
               debian: {repository: $debian, platforms: $debian_platforms},
               golang: {repository: $golang, platforms: $golang_platforms}}}' > "$STATE/testenv.json.new"
  mv "$STATE/testenv.json.new" "$STATE/testenv.json"
}

# The inventory that points the demo (playbooks/demo.yml, which names no path of the test environment) at it:
# `make demo` passes it with the fleet's inventory. Variables only; the hosts come from the other inventories.
write_inventory() {
  local buildx_sha256 port=${REGISTRY##*:}
  buildx_sha256=$(cut -d' ' -f1 "$CACHE/buildx/docker-buildx.sha256")
  cat > "$STATE/inventory.yml.new" <<EOF
# Written by scripts/testenv.sh: the test environment's settings for playbooks/demo.yml (docs/demo.md).
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
      # the engine is the test environment's (Debian's docker.io started without systemd with its own
      # --config-file, which scripts/testenv.sh owns): leave its packages alone and keep it as it runs
      build_host_docker_source: none
      build_host_registry_mirrors: ["http://$REGISTRY"]
      build_host_insecure_registries: ["$REGISTRY"]
      # no download from the internet: the buildx binary the test environment verified and cached
      build_host_buildx_source: release
      build_host_buildx_url: "file://$CACHE/buildx/docker-buildx"
      build_host_buildx_checksum: "sha256:$buildx_sha256"
      build_host_smoke_image: "$REGISTRY/library/busybox:latest"
      # the base images (busybox) come from the local registry, not Docker Hub
      release_base_image_registry: "$REGISTRY"
      demo_registry: "$REGISTRY"
      demo_release_record: "$STATE/releases/demo-app.json"
      demo_report_dir: "$STATE/releases/rollout-report"
  children:
    devices:
      vars:
        # a guest reaches the host's $REGISTRY as 10.0.2.2:$port (QEMU user networking), plain HTTP
        rollout_registry_alias: "10.0.2.2:$port"
        rollout_insecure_registries: ["10.0.2.2:$port"]
        # emulated boards are slow: a container start under QEMU system emulation takes tens of seconds
        rollout_health_timeout: 240
EOF
  mv "$STATE/inventory.yml.new" "$STATE/inventory.yml"
}

# ---------------------------------------------------------------------------------------------------
cmd_up() {
  require_debian_x86_64_root "it installs packages, starts dockerd and mounts binfmt_misc"
  mkdir -p "$STATE" "$CACHE"
  [ -x "$VENV/bin/python" ] || "$SCRIPTS/venv.sh"
  local t0=$SECONDS
  apt_install_missing "$CACHE/apt-install.log" "${PACKAGES[@]}"
  setup_binfmt
  start_engine
  setup_registries
  start_engine2
  setup_buildx
  build_busybox
  build_debian
  build_golang
  write_facts
  write_inventory
  log "up in $((SECONDS - t0)) s: engines $DOCKER_SOCK and $ENGINE2_SOCK, registries $REGISTRY, $REGISTRY_TLS (basic auth), $REGISTRY_TOKEN (token); facts in $STATE/testenv.json, the demo's inventory in $STATE/inventory.yml"
}

cmd_down() {
  local name
  for name in plain tls token token-server; do stop_pid "$STATE/registry/$name.pid" "$name"; done
  stop_pid "$STATE/docker/dockerd.pid" dockerd 60
  stop_pid "$STATE/docker2/dockerd.pid" "dockerd (second engine)" 60
  # dockerd leaves its containerd behind only when it was killed; stop that one too.
  pkill -f "containerd --config /var/run/docker/containerd/containerd.toml" 2>/dev/null || true
  pkill -f "containerd --config /var/run/fleet-docker2/containerd/containerd.toml" 2>/dev/null || true
}

cmd_purge() {
  cmd_down
  log "removing $STATE"
  ip link del "$ENGINE2_BRIDGE" 2>/dev/null || true
  rm -rf "$STATE" "/etc/docker/certs.d/$REGISTRY_TLS" "/etc/docker/certs.d/$REGISTRY_TOKEN"
}

cmd_status() {
  engine_answers && echo "engine: up ($DOCKER_SOCK)" || echo "engine: down"
  engine2_answers && echo "second engine: up ($ENGINE2_SOCK)" || echo "second engine: down"
  registry_answers plain && echo "registry $REGISTRY: up" || echo "registry $REGISTRY: down"
  registry_answers tls && echo "registry $REGISTRY_TLS: up" || echo "registry $REGISTRY_TLS: down"
  registry_answers token && echo "registry $REGISTRY_TOKEN: up" || echo "registry $REGISTRY_TOKEN: down"
  registry_answers token-server && echo "token server $TOKEN_SERVER: up" || echo "token server $TOKEN_SERVER: down"
  [ -f "$STATE/testenv.json" ] && echo "facts: $STATE/testenv.json"
  return 0
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  purge) cmd_purge ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|purge|status" >&2; exit 2 ;;
esac
