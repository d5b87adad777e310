#!/usr/bin/env bash
# Make .venv (Python 3.12 or newer, pinned requirements) and install the collection into it so that
# .venv/bin/ansible-playbook and .venv/bin/ansible-doc find fleet.multiarch from any directory.
# A second run with the same requirements changes nothing and takes well under a second.
#
# The interpreter: $PYTHON if set, else the newest python3.1x (x >= 2) found on PATH or under pyenv.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
LOG_TAG=venv
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

good_python() {  # prints the path when $1 runs and is 3.12 or newer
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && "$1" -c 'import sys; print(sys.executable)'
}

find_python() {
  local c
  if [ -n "${PYTHON:-}" ]; then
    good_python "$PYTHON" || die "PYTHON=$PYTHON is not a Python 3.12 or newer that runs"
    return 0
  fi
  for c in python3.14 python3.13 python3.12 python3 \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 /usr/local/bin/python3.1[2-9] /opt/python*/bin/python3; do
    command -v "$c" >/dev/null 2>&1 || [ -x "$c" ] || continue
    good_python "$c" && return 0
  done
  die "no Python 3.12 or newer found (ansible-core needs it on the controller). Install one (Debian 13 and
Ubuntu 24.04 ship it as python3; pyenv works elsewhere) and run again with PYTHON=/path/to/python3.12"
}

ensure_venv_module() {  # Debian and Ubuntu ship venv's ensurepip in a separate package: install it when missing
  local py=$1 pkg
  "$py" -c 'import ensurepip, venv' 2>/dev/null && return 0
  command -v apt-get >/dev/null || return 0
  pkg=python$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv
  log "installing $pkg (the venv module needs ensurepip)"
  apt-get install -y -q "$pkg" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$pkg" >/dev/null; } ||
    die "$py has no ensurepip and apt-get install $pkg failed"
}

stamp="$VENV/.fleet-requirements.sha256"
want=$(cat "$ROOT"/requirements.txt "$ROOT"/requirements-test.txt "$ROOT"/constraints.txt | sha256sum | cut -d' ' -f1)

if [ -x "$VENV/bin/python" ] && good_python "$VENV/bin/python" >/dev/null && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  :  # up to date
else
  py=$(find_python)
  if [ ! -x "$VENV/bin/python" ] || ! good_python "$VENV/bin/python" >/dev/null; then
    log "creating $VENV with $py"
    rm -rf "$VENV"
    ensure_venv_module "$py"
    "$py" -m venv "$VENV" || die "$py -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
  fi
  log "installing pinned requirements"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements-test.txt" -c "$ROOT/constraints.txt" ||
    die "pip install failed"
  echo "$want" > "$stamp"
fi

# The collection: a link from the venv's ansible_collections to this checkout (edits take effect at once).
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
link="$site/ansible_collections/fleet/multiarch"
if [ "$(readlink "$link" 2>/dev/null)" != "$ROOT" ]; then
  mkdir -p "$(dirname "$link")"
  rm -rf "$link"
  ln -s "$ROOT" "$link"
  log "fleet.multiarch linked into $site/ansible_collections"
fi
