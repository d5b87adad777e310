# shellcheck shell=bash
# Sourced by the project's scripts: their messages, the host they need and the Debian packages they install.
# Set LOG_TAG (the name the script's messages carry) before sourcing.
#   log MESSAGE...                       to stderr, as "[LOG_TAG] MESSAGE"
#   die MESSAGE...                       "[LOG_TAG] ERROR: MESSAGE" to stderr, exit 1
#   require_debian_x86_64_root WHY       root (WHY says what for), Linux on x86_64 with apt-get, or die
#   apt_install_missing LOG PACKAGE...   apt-get install those not installed (no daemon is started); LOG keeps apt's output

log() { printf '[%s] %s\n' "${LOG_TAG:-fleet.multiarch}" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "${LOG_TAG:-fleet.multiarch}" "$*" >&2; exit 1; }

require_debian_x86_64_root() {
  [ "$(id -u)" -eq 0 ] || die "run as root (${1:-it installs packages})"
  [ "$(uname -s)" = Linux ] || die "this needs Linux, this is $(uname -s)"
  [ "$(uname -m)" = x86_64 ] || die "this is made for an x86_64 build host, this is $(uname -m)"
  command -v apt-get >/dev/null || die "apt-get not found: Debian and Ubuntu hosts are supported"
}

# The package lists are refreshed only when the install fails on stale ones. policy-rc.d keeps the packages'
# init scripts from starting daemons: the scripts start their own.
apt_install_missing() {
  local logfile=$1 missing=() p prc=/usr/sbin/policy-rc.d made_prc='' rc=0
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  mkdir -p "$(dirname "$logfile")"
  export DEBIAN_FRONTEND=noninteractive
  if [ ! -e "$prc" ]; then printf '#!/bin/sh\nexit 101\n' > "$prc"; chmod 755 "$prc"; made_prc=1; fi
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$logfile" 2>&1; then
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >"$logfile" 2>&1; } || rc=$?
  fi
  [ -n "$made_prc" ] && rm -f "$prc"
  [ "$rc" -eq 0 ] || { tail -20 "$logfile" >&2; die "apt-get install ${missing[*]} failed (log: $logfile)"; }
}
