"""Benchmark 8, the release playbook on unchanged inputs, as a whole process: ``ansible-playbook
fleet.multiarch.release -i INVENTORY`` (the collection's playbook as a user runs it: the role, its one
``fleet.multiarch.release`` task, the record on the controller, the summary) against the reference a user
would otherwise run, ``docker buildx build --platform P --pull --push`` per platform (linux/amd64, linux/arm64,
linux/arm/v7) and ``docker buildx imagetools create`` (benchmark 1's reference, the same context).

The build host is the controller (``ansible_connection: local``; the play becomes ``root``, the user the
benchmark runs as, with ``su``), so the release's action plugin answers the unchanged release in the
controller's process: asserted in every timed run, with ``changed=0`` and the record file untouched. Reported
beside it, in the same alternation:

- ``release task as a module``: a playbook with the same ``fleet.multiarch.release`` task and a task
  ``environment`` (so the action plugin hands it to the module): what the release costs where the build host is
  another machine, and what the in-process answer saves;
- ``floor``: ``ansible-playbook`` of an empty play with the same inventory (Python, Ansible's imports, the
  inventory, a play with no task): the least any playbook costs here, so ``buildx / floor`` is the best ratio a
  playbook can reach on this machine.

The context is benchmark 1's small one (a Dockerfile and three files) in a git repository with one commit, so
the immutable tag is the commit. ``release_base_image_registry`` names the registry that holds ``busybox`` (the
engine's mirror), as ``docs/release.md`` advises: no ``docker info`` to find it.

Target: the release playbook at least 3x faster than the reference, as whole commands.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import benchlib as b
from bench_release import PLATFORMS, buildx_side, small_context

TARGET = 3.0
EMPTY_PLAY = "- name: Nothing\n  hosts: build_hosts\n  gather_facts: false\n  tasks: []\n"
MODULE_PLAY = """\
- name: The release task as a module
  hosts: build_hosts
  gather_facts: false
  tasks:
    - name: Release
      fleet.multiarch.release:
        context: "{{ release_context }}"
        repository: "{{ release_repository }}"
        platforms: "{{ release_platforms }}"
        moving_tags: "{{ release_moving_tags }}"
        base_image_registry: "{{ release_base_image_registry }}"
        record_path: "{{ release_record_path }}"
      environment:
        FLEET_BENCH_SIDE: module
"""


def git_context() -> Path:
    """Benchmark 1's small context in a git checkout, committed (clean). ``.git`` is in its ``.dockerignore``, as
    in any project that builds from its checkout: otherwise the build context (and so the fingerprint, and the
    image) holds git's own files, which git rewrites on its own (the index, on a ``git status``)."""
    ctx = small_context(b.WORK / "release-playbook")
    (ctx / ".dockerignore").write_text(".git\n")
    git = ["git", "-C", ctx, "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    if not (ctx / ".git").exists():
        b.run([*git, "init", "-q"])
    if b.run([*git, "status", "--porcelain"]).stdout.strip():
        b.run([*git, "add", "-A"])
        b.run([*git, "commit", "-q", "-m", "bench"])
    return ctx


def inventory(ctx: Path, repository: str, record: Path) -> Path:
    path = b.WORK / "release-playbook-inventory.yml"
    data = {
        "all": {
            "children": {
                "build_hosts": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": str(b.VENV_BIN / "python"),
                            "ansible_become_method": "su",
                        }
                    },
                    "vars": {
                        "build_host_user": "root",
                        "release_context": str(ctx),
                        "release_repository": repository,
                        "release_platforms": PLATFORMS,
                        "release_moving_tags": ["latest"],
                        "release_base_image_registry": b.registry(),
                        "release_record_path": str(record),
                    },
                }
            }
        }
    }
    path.write_text(json.dumps(data, indent=2))
    return path


def playbook(argv: list) -> tuple:
    """``(seconds, task records)`` of one ansible-playbook run, the whole process timed."""
    with tempfile.TemporaryDirectory() as tmp:
        timer = str(Path(tmp, "timer.jsonl"))
        seconds, proc = b.timed(b.run, argv, check=False, env=b.ansible_env(timer))
        records = b.read_timer(timer)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv!r} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return seconds, records


def release_result(records: list) -> dict:
    found = [r for r in records if "record_path" in r["result"]]
    assert found, f"no release task in {[r['task'] for r in records]}"
    return {**found[-1]["result"], "_task_seconds": found[-1]["task_seconds"]}


def main() -> None:
    reg = b.registry()
    repetitions = b.reps(7)
    ctx = git_context()
    repository = f"{reg}/bench/release-playbook"
    record = b.WORK / "releases" / "release-playbook.json"
    inv = inventory(ctx, repository, record)
    plays = {name: b.WORK / f"release-playbook-{name}.yml" for name in ("empty", "module")}
    plays["empty"].write_text(EMPTY_PLAY)
    plays["module"].write_text(MODULE_PLAY)
    release_argv = [b.VENV_BIN / "ansible-playbook", "fleet.multiarch.release", "-i", inv]
    ref_tag = f"{reg}/bench/release-playbook-buildx:1"

    b.log("first release and first buildx build (not timed)")
    _seconds, records = playbook(release_argv)
    first = release_result(records)
    b.log(f"released {repository}:{first['tag']} ({first['digest']}), built: {first['built']}")
    buildx_side(ctx, ref_tag)(-1)
    stamp = record.stat().st_mtime_ns
    tasks = {"release task": [], "release task as a module": []}

    def release_side(i: int) -> float:
        seconds, records = playbook(release_argv)
        result = release_result(records)
        assert not result["changed"] and not result["record_changed"], f"the release changed something: {result}"
        assert result["answered_by"] == "controller", f"the module answered: {result.get('answered_by')}"
        assert record.stat().st_mtime_ns == stamp, "the record file was written"
        if i >= 0:
            tasks["release task"].append(result["_task_seconds"])
        return seconds

    def module_side(i: int) -> float:
        seconds, records = playbook([b.VENV_BIN / "ansible-playbook", "-i", inv, plays["module"]])
        result = release_result(records)
        assert not result["changed"] and result["answered_by"] == "module", result
        if i >= 0:
            tasks["release task as a module"].append(result["_task_seconds"])
        return seconds

    def floor_side(i: int) -> float:
        return playbook([b.VENV_BIN / "ansible-playbook", "-i", inv, plays["empty"]])[0]

    times = b.alternate(
        {
            "release playbook": release_side,
            "buildx": buildx_side(ctx, ref_tag),
            "release task as a module (playbook)": module_side,
            "empty playbook (floor)": floor_side,
        },
        repetitions,
    )
    imports = [
        b.timed_seconds(b.run, [b.VENV_BIN / "python", "-c", "import ansible.cli.playbook"])
        for _round in range(repetitions)
    ]
    stats = {name: b.summary(values) for name, values in times.items()}
    stats.update({name: b.summary(values) for name, values in tasks.items()})
    stats["python + import ansible.cli.playbook"] = b.summary(imports)
    med = {name: value["median"] for name, value in stats.items()}
    ref = med["buildx"]
    ratio = round(ref / med["release playbook"], 2)
    # each round's two sides ran within seconds of each other: the median of the rounds' own ratios is what a load
    # that changes over the run (other jobs on the machine, on its shared docker engine) moves least
    paired = round(statistics.median(x / y for x, y in zip(times["buildx"], times["release playbook"])), 2)
    module_ratio = round(ref / med["release task as a module (playbook)"], 2)
    bound = round(ref / med["empty playbook (floor)"], 2)
    met = ratio >= TARGET
    rows = [
        b.row(
            "release playbook, unchanged inputs, 3 platforms (the build host is the controller)",
            f"`ansible-playbook fleet.multiarch.release` {med['release playbook']:.2f} s (its release task"
            f" {med['release task']:.2f} s, answered in the controller's process)",
            f"buildx build --pull --push x3 + imagetools create {ref:.2f} s",
            f"{ratio:.1f}x (target {TARGET:.0f}x; round by round {paired:.1f}x)",
            met,
        ),
        b.row(
            "the same release task run as a module (a build host that is not the controller)",
            f"playbook {med['release task as a module (playbook)']:.2f} s (task"
            f" {med['release task as a module']:.2f} s)",
            f"buildx {ref:.2f} s",
            f"{module_ratio:.1f}x",
            None,
        ),
        b.row(
            "the floor: an empty play with the same inventory",
            f"`ansible-playbook` {med['empty playbook (floor)']:.2f} s (python + import ansible.cli.playbook"
            f" {med['python + import ansible.cli.playbook']:.2f} s)",
            f"buildx {ref:.2f} s",
            f"{bound:.1f}x: the best any playbook reaches here",
            None,
        ),
    ]
    b.save(
        "release_playbook",
        {
            "title": "Release playbook on unchanged inputs vs buildx build --push per platform + imagetools create",
            "target": f"the release playbook >= {TARGET}x faster than the reference (whole commands)",
            "met": met,
            "repetitions": repetitions,
            "machine": b.machine(),
            "figures": {
                "seconds": stats,
                "ratio": ratio,
                "ratio_round_by_round": paired,
                "ratio_module": module_ratio,
                "best_possible": bound,
            },
            "rows": rows,
        },
    )
    b.verdict(
        "release_playbook",
        f"buildx / release playbook {ratio:.1f}x (playbook {med['release playbook']:.2f} s, buildx {ref:.2f} s;"
        f" round by round {paired:.1f}x;"
        f" as a module {module_ratio:.1f}x; floor {med['empty playbook (floor)']:.2f} s, best possible {bound:.1f}x)",
        met,
    )


if __name__ == "__main__":
    main()
