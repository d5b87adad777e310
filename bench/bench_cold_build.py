"""Benchmark 3, cold multi-platform build: ``fleet.multiarch.image_build`` against plain buildx on the
same Dockerfile and platforms (linux/amd64, linux/arm64, linux/arm/v7, the ARM ones under QEMU). The
``RUN`` step uses shell built-ins only: busybox applets that re-execute themselves lose ``argv[0]`` under
QEMU registered without the ``P`` flag (see docs/container_rollout.md).

Truly cold on both sides without touching the shared builder's cache (other engineers build on it):
every run copies the context to a new directory with a new random ``nonce`` file that the first
instruction after ``FROM`` copies, so every step after ``FROM`` misses the cache and every layer pushed is
new; every run pushes to a new tag. Both sides push every platform and then an index.

Classic engine (``unix:///var/run/docker.sock``, docker driver, no multi-platform builds):
- ``image_build``: ``ansible localhost -m fleet.multiarch.image_build`` (strategy ``auto`` picks
  ``per_platform``: the three builds run concurrently, the index is pushed through the registry API);
- ``buildx``: what a user runs on that engine: ``docker buildx build --platform P --pull --provenance false
  --sbom false -t TAG-P --push`` for each platform, one after the other, then ``imagetools create``;
- ``buildx, concurrent``: the same three builds started at once (``&`` and ``wait``), then
  ``imagetools create`` (reported, not the target).

Containerd engine (``unix:///var/run/fleet-docker2.sock``, reported, not the target): ``image_build``
(strategy ``multi``) against ``docker buildx build --platform a,b,c --push``.

Target: image_build (the task as Ansible times it) no slower than the sequential buildx reference:
ratio image_build / buildx <= 1.05 (medians).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import benchlib as b

TARGET = 1.05
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
DOCKERFILE = """FROM busybox
COPY nonce /nonce
COPY app/ /app/
RUN read n < /nonce; echo "built $n" > /built; echo "built $n"
CMD ["cat", "/built"]
"""
ENGINE2 = "unix:///var/run/fleet-docker2.sock"


def fresh_context() -> Path:
    ctx = b.WORK / "cold" / b.nonce()
    (ctx / "app").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "nonce").write_text(ctx.name + "\n")
    for i in range(20):
        (ctx / "app" / f"part{i:02d}.txt").write_text(f"part {i} of the application\n" * 50)
    return ctx


def short(plat: str) -> str:
    return plat.replace("linux/", "").replace("/", "")


def buildx_argv(plat: str, ref: str, ctx: Path) -> list:
    return [
        *("docker", "buildx", "build", "--progress", "plain", "--platform", plat, "--pull"),
        *("--provenance", "false", "--sbom", "false", "-t", ref, "--push", str(ctx)),
    ]


def module_side(reg: str, task_times: list, docker_host: str = ""):
    def side(i: int) -> float:
        ctx = fresh_context()
        tag = f"{reg}/bench/cold-module:{ctx.name}"
        args = {"context": str(ctx), "platforms": PLATFORMS, "tags": [tag]}
        if docker_host:
            args["docker_host"] = docker_host
        seconds, result = b.timed(b.ansible_module, "fleet.multiarch.image_build", args)
        assert result.get("built"), f"image_build did not build: {result}"
        if i >= 0:
            task_times.append(result["_task_seconds"])
        shutil.rmtree(ctx)
        return seconds

    return side


def buildx_sequential_side(reg: str):
    def side(i: int) -> float:
        ctx = fresh_context()
        tag = f"{reg}/bench/cold-buildx:{ctx.name}"

        def commands():
            refs = []
            for plat in PLATFORMS:
                refs.append(f"{tag}-{short(plat)}")
                b.run(buildx_argv(plat, refs[-1], ctx))
            b.run(["docker", "buildx", "imagetools", "create", "-t", tag, *refs])

        seconds = b.timed_seconds(commands)
        shutil.rmtree(ctx)
        return seconds

    return side


def buildx_concurrent_side(reg: str):
    def side(i: int) -> float:
        ctx = fresh_context()
        tag = f"{reg}/bench/cold-buildx-concurrent:{ctx.name}"

        def commands():
            refs = [f"{tag}-{short(plat)}" for plat in PLATFORMS]
            procs = [
                subprocess.Popen(buildx_argv(plat, ref, ctx), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for plat, ref in zip(PLATFORMS, refs)
            ]
            for proc in procs:
                _out, err = proc.communicate(timeout=1800)
                if proc.returncode != 0:
                    raise RuntimeError(f"concurrent buildx build failed: {err.decode()[-2000:]}")
            b.run(["docker", "buildx", "imagetools", "create", "-t", tag, *refs])

        seconds = b.timed_seconds(commands)
        shutil.rmtree(ctx)
        return seconds

    return side


def buildx_multi_side(reg: str):
    def side(i: int) -> float:
        ctx = fresh_context()
        tag = f"{reg}/bench/cold-buildx-multi:{ctx.name}"
        argv = buildx_argv(",".join(PLATFORMS), tag, ctx)
        seconds = b.timed_seconds(b.run, argv, env={"DOCKER_HOST": ENGINE2})
        shutil.rmtree(ctx)
        return seconds

    return side


def main() -> None:
    reg = b.registry()
    repetitions = b.reps(5)
    b.log(f"classic engine: {repetitions} rounds of image_build / buildx / buildx concurrent")
    tasks = []
    times = b.alternate(
        {
            "image_build command": module_side(reg, tasks),
            "buildx": buildx_sequential_side(reg),
            "buildx, concurrent": buildx_concurrent_side(reg),
        },
        repetitions,
    )
    classic = {name: b.summary(samples) for name, samples in times.items()}
    classic["image_build task"] = b.summary(tasks)
    ratio = classic["image_build task"]["median"] / classic["buildx"]["median"]
    ratio_command = classic["image_build command"]["median"] / classic["buildx"]["median"]
    ratio_concurrent = classic["image_build task"]["median"] / classic["buildx, concurrent"]["median"]

    b.log(f"containerd engine: {repetitions} rounds of image_build (multi) / buildx --platform a,b,c")
    tasks2 = []
    times2 = b.alternate(
        {"image_build command": module_side(reg, tasks2, ENGINE2), "buildx multi-platform": buildx_multi_side(reg)},
        repetitions,
    )
    engine2 = {name: b.summary(samples) for name, samples in times2.items()}
    engine2["image_build task"] = b.summary(tasks2)
    ratio2 = engine2["image_build task"]["median"] / engine2["buildx multi-platform"]["median"]

    met = ratio <= TARGET
    rows = [
        b.row(
            "classic engine, per_platform (3 concurrent builds)",
            f"image_build task {classic['image_build task']['median']:.2f} s (whole command "
            f"{classic['image_build command']['median']:.2f} s)",
            f"buildx x3 one after the other + imagetools {classic['buildx']['median']:.2f} s "
            f"(x3 at once: {classic['buildx, concurrent']['median']:.2f} s)",
            f"{ratio:.2f} (target <= {TARGET}); command {ratio_command:.2f}; vs concurrent {ratio_concurrent:.2f}",
            met,
        ),
        b.row(
            "containerd engine, multi",
            f"image_build task {engine2['image_build task']['median']:.2f} s",
            f"buildx --platform a,b,c --push {engine2['buildx multi-platform']['median']:.2f} s",
            f"{ratio2:.2f} (reported)",
            None,
        ),
    ]
    b.save(
        "cold_build",
        {
            "title": "Cold build, 3 platforms: image_build vs plain buildx (per platform + imagetools create)",
            "target": f"image_build task / buildx <= {TARGET} (classic engine, sequential reference)",
            "met": met,
            "repetitions": repetitions,
            "machine": b.machine(),
            "figures": {
                "classic engine (per_platform)": {
                    "seconds": classic,
                    "ratio_image_build_task_over_buildx": round(ratio, 3),
                    "ratio_image_build_command_over_buildx": round(ratio_command, 3),
                    "ratio_image_build_task_over_buildx_concurrent": round(ratio_concurrent, 3),
                },
                "containerd engine (multi)": {
                    "seconds": engine2,
                    "ratio_image_build_task_over_buildx": round(ratio2, 3),
                },
            },
            "rows": rows,
        },
    )
    b.log(
        f"classic: task {classic['image_build task']['median']:.2f} s, command "
        f"{classic['image_build command']['median']:.2f} s, buildx {classic['buildx']['median']:.2f} s, concurrent "
        f"{classic['buildx, concurrent']['median']:.2f} s; containerd: task {engine2['image_build task']['median']:.2f}"
        f" s, buildx {engine2['buildx multi-platform']['median']:.2f} s ({ratio2:.2f})"
    )
    b.verdict(
        "cold_build",
        f"image_build / buildx = {ratio:.2f} (task {classic['image_build task']['median']:.2f} s, buildx "
        f"{classic['buildx']['median']:.2f} s; whole ansible command {ratio_command:.2f}; vs concurrent buildx "
        f"{ratio_concurrent:.2f}; containerd multi {ratio2:.2f})",
        met,
    )


if __name__ == "__main__":
    main()
