"""Shared helpers for the benchmarks: run commands, alternate A/B runs, medians, results, verdicts.

Every benchmark script imports this module (it sits beside them, so ``python bench/<script>.py`` finds it).
A benchmark records its figures with :func:`save` in ``bench/results/parts/<name>.json``; ``report.py``
joins the parts into ``results.json`` and ``results.md``. The last line a benchmark prints is its ratio
line, and its exit status says whether the target was met (0) or missed (1).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = Path(os.environ.get("VENV", ROOT / ".venv")) / "bin"
RESULTS = Path(os.environ.get("BENCH_RESULTS", BENCH / "results"))
PARTS = RESULTS / "parts"
WORK = Path(os.environ.get("BENCH_WORK") or Path(tempfile.gettempdir(), "fleet-bench"))  # contexts, scratch
TESTENV_JSON = Path(os.environ.get("FLEET_TESTENV_STATE", "/var/lib/fleet-multiarch-testenv")) / "testenv.json"
# Repetitions: BENCH_REPS scales every benchmark's own default (for a quick smoke run: BENCH_REPS=1).
REPS_OVERRIDE = int(os.environ.get("BENCH_REPS", "0") or 0)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def reps(default: int) -> int:
    return REPS_OVERRIDE or default


def testenv() -> dict:
    try:
        return json.loads(TESTENV_JSON.read_text())
    except (OSError, ValueError) as exc:
        sys.exit(f"the test environment is not up ({TESTENV_JSON}: {exc}); run scripts/testenv.sh up")


def registry() -> str:
    return testenv()["registry"]


def registry_cpu_seconds() -> float | None:
    """CPU seconds (user + system) the plain registry's process has used so far; None when it cannot be read.

    The registry runs on the same cores as both sides of a benchmark: what it spends is part of each side's
    time, and bounds how fast any client can be on this machine.
    """
    try:
        pid = int((TESTENV_JSON.parent / "registry" / "plain.pid").read_text().split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nonce() -> str:
    return uuid.uuid4().hex[:12]


def run(argv: list, *, check: bool = True, env: dict | None = None, timeout: int = 1800, **kwargs):
    """Run an argv list; on failure stop with its output."""
    proc = subprocess.run(
        [str(a) for a in argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **kwargs,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{argv!r} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        )
    return proc


def timed(func, *args, **kwargs) -> tuple:
    """``(seconds, result)`` of one call, wall clock."""
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - start, result


def timed_seconds(func, *args, **kwargs) -> float:
    """Wall-clock seconds of one call (its result is not needed)."""
    return timed(func, *args, **kwargs)[0]


def alternate(sides: dict, repetitions: int, warmup: int = 1) -> dict:
    """Run each side's callable alternately (A B A B ...), ``warmup`` rounds first and discarded.

    ``sides`` maps a label to a callable ``f(i) -> seconds`` (``i`` is the round, negative in warm-up), so a
    callable can use a fresh tag or context per run and time only what it measures. Returns label -> list.
    """
    times = {label: [] for label in sides}
    for i in range(-warmup, repetitions):
        for label, func in sides.items():
            seconds = func(i)
            if i >= 0:
                times[label].append(seconds)
            log(f"{'warm-up' if i < 0 else f'run {i + 1}/{repetitions}'} {label}: {seconds:.3f} s")
    return times


def summary(samples: list) -> dict:
    return {
        "median": round(statistics.median(samples), 4),
        "min": round(min(samples), 4),
        "max": round(max(samples), 4),
        "runs": [round(s, 4) for s in samples],
    }


def ansible_env(timer_file: str = "") -> dict:
    env = {
        "ANSIBLE_PYTHON_INTERPRETER": str(VENV_BIN / "python"),
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_CALLBACK_PLUGINS": str(BENCH / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "bench_timer",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
    }
    if timer_file:
        env["BENCH_TIMER_FILE"] = timer_file
    return env


def read_timer(path: str) -> list:
    """The records ``callback_plugins/bench_timer.py`` wrote: one per host and task."""
    try:
        return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError:
        return []


def ansible_module(module: str, args: dict, *, check: bool = True) -> dict:
    """One module on localhost through ``ansible`` (the whole command as a user runs it).

    Returns the module's result with ``_task_seconds``: the task as Ansible timed it (module transfer,
    interpreter start, the module, the result back), without Ansible's own start-up.
    """
    with tempfile.TemporaryDirectory() as tmp:
        timer = str(Path(tmp, "timer.jsonl"))
        argv = [VENV_BIN / "ansible", "localhost", "-c", "local", "-m", module]
        proc = run(argv + (["-a", json.dumps(args)] if args else []), check=False, env=ansible_env(timer))
        records = read_timer(timer)
    if not records:
        raise RuntimeError(f"no result from ansible {module}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = dict(records[-1]["result"])
    result["_task_seconds"] = records[-1]["task_seconds"]
    if check and (records[-1]["outcome"] != "ok" or proc.returncode != 0):
        raise RuntimeError(f"ansible {module} failed: {result.get('msg')}")
    return result


def machine() -> dict:
    load = os.getloadavg()
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def save(name: str, data: dict) -> Path:
    """Write one benchmark's figures to ``results/parts/<name>.json`` (atomically)."""
    PARTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
    path = PARTS / f"{name}.json"
    with tempfile.NamedTemporaryFile("w", dir=PARTS, delete=False, suffix=".tmp") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(fh.name, path)
    return path


def verdict(name: str, line: str, met) -> None:
    """Print the ratio line last and leave with 0 when the target was met (or there is none: ``met`` None),
    1 when it was missed."""
    outcome = "no target" if met is None else f"target {'MET' if met else 'MISSED'}"
    print(f"{name}: {line} -> {outcome}", flush=True)
    sys.exit(1 if met is False else 0)


def row(case: str, collection: str, reference: str, ratio: str, met) -> dict:
    """One line of the Markdown table (``met`` True, False, or None for a figure without a target)."""
    return {"case": case, "collection": collection, "reference": reference, "ratio": ratio, "met": met}
