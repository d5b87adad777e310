#!/usr/bin/env bash
# Prepare ansible-test on a machine that cannot reach ansible-test's own download host:
#  1. put get-pip-offline.py where ansible-test looks for its cached pip bootstrap script;
#  2. make DIR/python3.X links to every Python 3 interpreter that really runs here (PATH, pyenv),
#     so that `ansible-test sanity` compiles for each of them and skips, with a warning, the ones
#     this machine lacks. pyenv's shims answer for versions that are not active and then fail, so
#     the caller puts DIR first on a PATH without the shims.
# usage: ansible-test-bootstrap.sh VENV_PYTHON DIR
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=${1:?usage: $0 VENV_PYTHON DIR}
dir=${2:?usage: $0 VENV_PYTHON DIR}
version=$("$py" - <<'PY'
import re, ansible_test, pathlib
src = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)
cache=${HOME}/.ansible/test/cache
mkdir -p "$cache"
cmp -s "$here/get-pip-offline.py" "$cache/get_pip_${version//./_}.py" || cp "$here/get-pip-offline.py" "$cache/get_pip_${version//./_}.py"

rm -rf "$dir"; mkdir -p "$dir"
for minor in 9 10 11 12 13 14; do
  for c in "python3.$minor" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3."$minor".*/bin/python3."$minor"; do
    [ -x "$c" ] || command -v "$c" >/dev/null 2>&1 || continue
    real=$("$c" -c 'import sys; print(sys.executable)' 2>/dev/null) || continue
    # ansible-test needs venv and a working interpreter; skip broken or partial builds.
    "$real" -c 'import venv, ensurepip' 2>/dev/null || continue
    ln -sf "$real" "$dir/python3.$minor"
    break
  done
done
ls "$dir"
