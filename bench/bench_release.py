"""Benchmark 1, unchanged release: ``fleet.multiarch.image_build`` for linux/amd64, linux/arm64 and
linux/arm/v7 when nothing changed, against re-running the equivalent plain buildx commands with a warm
cache, on the classic engine (``unix:///var/run/docker.sock``, the ``default`` builder):

- ``image_build``: ``ansible localhost -c local -m fleet.multiarch.image_build``, a module run. Three figures:
  the task as Ansible times it (``callback_plugins/bench_timer.py``: from the task's start to its result), the
  check's own ``seconds``, and the whole ``ansible`` command (with Ansible's own start-up, about 0.5-2.5 s on
  this machine, paid once per playbook, not per task). Beside them, an ``ansible.builtin.ping`` task: what
  starting any module costs;
- ``buildx``: ``docker buildx build --platform P --pull --provenance false --sbom false -t TAG-P --push``
  for each platform (what ``image_build`` itself runs, minus the log plumbing), then
  ``docker buildx imagetools create -t TAG TAG-amd64 TAG-arm64 TAG-armv7``.

Both sides build the same context once before timing (that run and one more of each are discarded),
then alternate. Two contexts: a small one (a Dockerfile and three files) and a large one (3000 files,
100 MB of incompressible data) to show how each side grows with the context.

No target since the release became one module (issue 21): an unchanged release as users run it is
benchmark 8 (``bench_release_playbook.py``: the whole release playbook, target 3x). This one reports what
one ``image_build`` task and its check cost against the same buildx commands. Until then ``image_build``
had an action plugin that answered an unchanged build in the controller's process (task 0.10 s, 24.9x on
2026-11-29); the release does not use it (its own action plugin runs the check), so it was removed.
"""

from __future__ import annotations

import random
from pathlib import Path

import benchlib as b

PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
DOCKERFILE = "FROM busybox\nCOPY . /app\n"
LARGE_FILES = 3000
LARGE_BYTES = 100 * 1024 * 1024


def small_context(ctx: Path | None = None) -> Path:
    """A Dockerfile and three files, in ``ctx`` (default ``$BENCH_WORK/release-small``)."""
    ctx = ctx or b.WORK / "release-small"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "app.sh").write_text("#!/bin/sh\necho hello from the fleet\n")
    (ctx / "VERSION").write_text("1.0.0\n")
    (ctx / "config.ini").write_text("[app]\nport = 8080\n")
    return ctx


def large_context() -> Path:
    """3000 files, 100 MB in all, in 30 directories; made once (a marker file records it)."""
    ctx = b.WORK / "release-large"
    marker = ctx / ".complete"
    if marker.exists():
        return ctx
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    rng = random.Random(10)  # noqa: S311 - filler data, not security
    size = LARGE_BYTES // LARGE_FILES
    for i in range(LARGE_FILES):
        sub = ctx / f"d{i % 30:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:04d}.bin").write_bytes(rng.randbytes(size))
    (ctx / ".dockerignore").write_text(".complete\n")
    marker.write_text("done\n")
    return ctx


def context_stats(ctx: Path) -> dict:
    files = [p for p in ctx.rglob("*") if p.is_file() and p.name != ".complete"]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def module_side(ctx: Path, tag: str, record: dict):
    args = {"context": str(ctx), "platforms": PLATFORMS, "tags": [tag]}

    def side(i: int) -> float:
        seconds, result = b.timed(b.ansible_module, "fleet.multiarch.image_build", args)
        if i >= 0:
            assert not result.get("changed"), f"image_build rebuilt an unchanged release: {result}"
            record["task"].append(result["_task_seconds"])
            record["module"].append(result["seconds"])
        return seconds

    return side


def buildx_side(ctx: Path, tag: str):
    def commands():
        per_platform = []
        for plat in PLATFORMS:
            ref = f"{tag}-{plat.replace('linux/', '').replace('/', '')}"
            b.run(
                [
                    *("docker", "buildx", "build", "--progress", "plain", "--platform", plat, "--pull"),
                    *("--provenance", "false", "--sbom", "false", "-t", ref, "--push", str(ctx)),
                ]
            )
            per_platform.append(ref)
        b.run(["docker", "buildx", "imagetools", "create", "-t", tag, *per_platform])

    def side(i: int) -> float:
        seconds = b.timed_seconds(commands)
        return seconds

    return side


def main() -> None:
    reg = b.registry()
    repetitions = b.reps(5)
    figures = {}
    lines = []
    rows = []
    for label, make in (("small context", small_context), ("large context", large_context)):
        ctx = make()
        stats_ctx = context_stats(ctx)
        slug = label.split()[0]
        mod_tag = f"{reg}/bench/release-{slug}-module:1"
        ref_tag = f"{reg}/bench/release-{slug}-buildx:1"
        b.log(f"{label}: {stats_ctx['files']} files, {stats_ctx['bytes'] / 1e6:.1f} MB; first builds (not timed)")
        b.ansible_module(
            "fleet.multiarch.image_build", {"context": str(ctx), "platforms": PLATFORMS, "tags": [mod_tag]}
        )
        buildx_side(ctx, ref_tag)(-1)
        inside = {"task": [], "module": []}
        times = b.alternate(
            {"ansible command": module_side(ctx, mod_tag, inside), "buildx": buildx_side(ctx, ref_tag)},
            repetitions,
        )
        stats = {
            "image_build task": b.summary(inside["task"]),
            "image_build module": b.summary(inside["module"]),
            "image_build ansible command": b.summary(times["ansible command"]),
            "buildx": b.summary(times["buildx"]),
        }
        ref = stats["buildx"]["median"]
        ratios = {
            "task": round(ref / stats["image_build task"]["median"], 2),
            "module": round(ref / stats["image_build module"]["median"], 1),
            "ansible command": round(ref / stats["image_build ansible command"]["median"], 2),
        }
        figures[label] = {"context": stats_ctx, "seconds": stats, "ratio_buildx_over_image_build": ratios}
        rows.append(
            b.row(
                f"{label} ({stats_ctx['files']} files, {stats_ctx['bytes'] / 1e6:.0f} MB)",
                f"image_build task {stats['image_build task']['median']:.2f} s (module "
                f"{stats['image_build module']['median']:.3f} s, whole ansible command "
                f"{stats['image_build ansible command']['median']:.2f} s)",
                f"buildx build --push x3 + imagetools create {ref:.2f} s",
                f"{ratios['task']:.1f}x task, {ratios['module']:.0f}x module, {ratios['ansible command']:.1f}x command"
                " (no target: benchmark 8 is the release as users run it)",
                None,
            )
        )
        lines.append(
            f"{slug} {ratios['task']:.1f}x (task {stats['image_build task']['median']:.2f} s, buildx {ref:.2f} s;"
            f" whole ansible command {ratios['ansible command']:.1f}x, inside the module {ratios['module']:.0f}x)"
        )
        b.log(f"{label}: {lines[-1]}")
    # The floor of an Ansible task that starts a module on this machine: a module that does nothing, timed the same
    # way. It bounds the ratio a task that runs a module could reach here (buildx / floor): what image_build would
    # get on a build host that is not the controller, where the module must run.
    floor = b.summary([b.ansible_module("ansible.builtin.ping", {})["_task_seconds"] for i in range(repetitions)])
    bound = round(figures["small context"]["seconds"]["buildx"]["median"] / floor["median"], 2)
    figures["ansible task floor (ansible.builtin.ping)"] = {"seconds": floor, "best_possible_ratio_small": bound}
    b.log(f"an ansible.builtin.ping task takes {floor['median']:.2f} s: no module task beats buildx by over {bound}x")
    lines.append(f"ping task floor {floor['median']:.2f} s, best possible {bound:.1f}x")
    rows.append(
        b.row(
            "Ansible's floor: a task that starts a module that does nothing",
            f"ansible.builtin.ping task {floor['median']:.2f} s",
            f"buildx (small context) {figures['small context']['seconds']['buildx']['median']:.2f} s",
            f"{bound:.1f}x: the best ratio a task that starts a module can reach here",
            None,
        )
    )
    small, large = figures["small context"]["seconds"], figures["large context"]["seconds"]
    growth = {name: round(large[name]["median"] / small[name]["median"], 2) for name in small}
    b.save(
        "release",
        {
            "title": "Unchanged release, 3 platforms: image_build vs buildx build --push + imagetools create",
            "target": "none (reported): the unchanged release's target is benchmark 8's, the whole release playbook",
            "met": None,
            "repetitions": repetitions,
            "machine": b.machine(),
            "figures": figures,
            "growth_large_over_small": growth,
            "rows": rows,
        },
    )
    b.log(f"growth from the small to the large context: {growth}")
    b.verdict("release", "buildx / image_build: " + "; ".join(lines), None)


if __name__ == "__main__":
    main()
