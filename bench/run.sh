#!/usr/bin/env bash
# Every benchmark of bench/ on this machine, each against its reference tool in the same run; results in
# bench/results/ (results.json, results.md, scaling.png). `make bench` runs this after setting up the venv,
# the test environment and the provisioned fleet images.
#
#   bench/run.sh                      all of them
#   BENCH_ONLY="index release" bench/run.sh   some of them (release index cold_build downtime bytes scaling crossbuild
#                                             release_playbook)
#   BENCH_REPS=1 bench/run.sh         one timed run per side (a smoke test, not a measurement)
#
# Exit status: 0 when every benchmark ran and met its target, 1 otherwise (each one still runs).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
VENV=${VENV:-$ROOT/.venv}
RESULTS=${BENCH_RESULTS:-$BENCH/results}
export VENV BENCH_RESULTS=$RESULTS
log() { printf '[bench] %s\n' "$*" >&2; }

[ -x "$VENV/bin/python" ] || { log "no $VENV: run make venv (or make bench)"; exit 1; }

# matplotlib for the plot, pinned in bench/requirements.txt; installed once, then a stamp says it is current.
stamp=$VENV/.bench-requirements.sha256
want=$(sha256sum "$BENCH/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
  log "installing bench/requirements.txt into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$BENCH/requirements.txt" || exit 1
  echo "$want" >"$stamp"
fi

BENCH_RUN_ID=$(date +%s)-$$
export BENCH_RUN_ID
mkdir -p "$RESULTS/parts" "$RESULTS/logs"
touch "$RESULTS/parts/status.tsv"

declare -A COMMAND=(
  [release]="bench_release.py"
  [index]="bench_index.py"
  [cold_build]="bench_cold_build.py"
  [downtime]="bench_device.py downtime"
  [bytes]="bench_device.py bytes"
  [scaling]="bench_scaling.py"
  [crossbuild]="bench_crossbuild.py"
  [release_playbook]="bench_release_playbook.py"
)
ALL="release index cold_build downtime bytes scaling crossbuild release_playbook"
failed=0
summary=()
for name in ${BENCH_ONLY:-$ALL}; do
  [ -n "${COMMAND[$name]:-}" ] || { log "unknown benchmark $name (one of: $ALL)"; exit 2; }
  # This run replaces the benchmark's figures (those of the others stay, so BENCH_ONLY can redo one).
  rm -f "$RESULTS/parts/$name.json"
  grep -v "^$name	" "$RESULTS/parts/status.tsv" >"$RESULTS/parts/status.tsv.new"
  mv "$RESULTS/parts/status.tsv.new" "$RESULTS/parts/status.tsv"
  log "$name: ${COMMAND[$name]} (log: $RESULTS/logs/$name.log)"
  start=$SECONDS
  read -r -a argv <<<"${COMMAND[$name]}"
  (cd "$BENCH" && "$VENV/bin/python" "${argv[@]}") 2>&1 | tee "$RESULTS/logs/$name.log"
  code=${PIPESTATUS[0]}
  last=$(grep -v '^\[bench ' "$RESULTS/logs/$name.log" | tail -n 1)
  printf '%s\t%s\t%s\n' "$name" "$code" "$last" >>"$RESULTS/parts/status.tsv"
  summary+=("$name (exit $code, $((SECONDS - start)) s): $last")
  [ "$code" -eq 0 ] || failed=1
done

(cd "$BENCH" && "$VENV/bin/python" report.py) || failed=1
log "summary:"
printf '  %s\n' "${summary[@]}" >&2
exit "$failed"
