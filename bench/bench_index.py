"""Benchmark 2, index creation: the registry client behind ``fleet.multiarch.manifest`` against
``docker buildx imagetools create`` and ``docker manifest create/annotate/push``, for 3 and 8 platforms.

Sources: one small single-platform image per platform, pushed once (Docker v2 manifests, as buildx
pushes them from the classic engine) under ``bench/index:src-<platform>`` on the local registry. Every
run creates a NEW tag from the same sources, on every side, so no side can take a no-op shortcut.

- ``library``: ``ManifestManager(ClientPool(...)).run()`` in this process, a fresh pool (new
  connections) for every run, exactly what the module's ``main()`` does after argument parsing;
- ``imagetools``: ``docker buildx imagetools create -t NEW SRC...``;
- ``docker manifest``: ``docker manifest create --insecure NEW SRC...``, ``annotate --variant`` for
  each ARM image (what a user does for arm/v7 and arm/v6), ``push --insecure --purge``;
- ``ansible``: ``ansible localhost -m fleet.multiarch.manifest``: the task as Ansible times it (module
  transfer, interpreter, module, result) and the whole command (with Ansible's own start-up);
- ``imagetools command task``: ``ansible localhost -m ansible.builtin.command`` running the same
  ``docker buildx imagetools create``: what a playbook without the collection runs instead of the manifest task.

No target: this is a diagnostic of one task. What a user feels of it is reported first: in a playbook, the manifest
task against the command task that runs imagetools (medians, 3 and 8 platforms), the whole ``ansible`` command of
each; the manifest task also checks every platform, is idempotent and reports what it pushed. The user-felt target
of the release pipeline, which publishes the index, is benchmark 8's (the whole release playbook). The library's
own time against imagetools' (the module's work without Ansible's start of
a module, about 0.4-0.5 s of either task here) is reported as a diagnostic, not a target: it was 3x at 3
platforms and 2.3-2.7x at 8 on the client of ``http.client`` (2026-11-29), 3.1x and 1.7x on ``requests``
(2026-12-08), whose import and per-request Python cost is the difference.

Also reported, for the library and imagetools: the CPU time per index of the registry (its process, read
from ``/proc``) and of the client (this process for the library, the ``docker``/``buildx`` processes for
imagetools). The registry runs on the same cores, so (registry + library CPU) / cores is the least wall time
the library could take here, and imagetools' time over it the best ratio this client could reach.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import resource
import tarfile
import time

import benchlib as b

from ansible_collections.fleet.multiarch.plugins.module_utils._manifest import ManifestManager
from ansible_collections.fleet.multiarch.plugins.module_utils._reference import compute_digest
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import (
    DOCKER_MANIFEST,
    ClientPool,
    RegistryClient,
    registry_argument_spec,
)

PLATFORMS_8 = [
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/386",
    "linux/riscv64",
    "linux/ppc64le",
    "linux/s390x",
]
PLATFORMS_3 = PLATFORMS_8[:3]
REPO = "bench/index"


def tag_of(plat: str) -> str:
    return "src-" + plat.replace("linux/", "").replace("/", "")


def make_layer(plat: str) -> tuple:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = f"built for {plat}\n".encode()
        info = tarfile.TarInfo("platform.txt")
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), compute_digest(tar_bytes)


def push_sources(reg: str) -> None:
    """One single-platform image per platform (config with architecture/variant, one layer)."""
    client = RegistryClient(reg)
    for plat in PLATFORMS_8:
        os_, arch, *variant = plat.split("/")
        layer, diff_id = make_layer(plat)
        config = {"architecture": arch, "os": os_, "config": {}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
        if variant:
            config["variant"] = variant[0]
        config_bytes = json.dumps(config, sort_keys=True).encode()
        for blob in (layer, config_bytes):
            digest = compute_digest(blob)
            if not client.blob_exists(REPO, digest):
                client.upload_blob(REPO, digest, blob)
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config_bytes),
                "digest": compute_digest(config_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": compute_digest(layer),
                }
            ],
        }
        client.put_manifest(REPO, tag_of(plat), json.dumps(manifest, indent=3).encode(), DOCKER_MANIFEST)


def module_params(name: str, images: list) -> dict:
    params = {key: spec.get("default") for key, spec in registry_argument_spec().items()}
    params.update(
        name=name,
        images=images,
        annotations=None,
        media_type=None,
        state="present",
        require_platforms=[],
        require_match="exact",
        attestations="keep",
    )
    return params


def cpu_now() -> tuple:
    """(registry, this process, its finished children) CPU seconds so far."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return b.registry_cpu_seconds(), time.process_time(), children.ru_utime + children.ru_stime


def with_cpu(side, spent: dict):
    """``side`` that also adds up, over its timed runs, the registry's CPU and the client's (this process for
    the library, the child processes for a CLI)."""

    def wrapped(i: int) -> float:
        before = cpu_now()
        seconds = side(i)
        after = cpu_now()
        if i >= 0 and before[0] is not None and after[0] is not None:
            spent["runs"] += 1
            spent["registry"] += after[0] - before[0]
            spent["client"] += (after[1] - before[1]) + (after[2] - before[2])
        return seconds

    return wrapped


def cpu_per_run(spent: dict) -> dict | None:
    if not spent["runs"]:
        return None
    return {key: round(spent[key] / spent["runs"], 4) for key in ("registry", "client")}


def library_side(reg: str, count: int, sources: list):
    def side(i: int) -> float:
        name = f"{reg}/{REPO}:lib-{count}-{b.nonce()}"
        params = module_params(name, sources)
        seconds, result = b.timed(lambda: ManifestManager(ClientPool(params, reg), params).run())
        assert result["changed"] and len(result["entries"]) == count, result
        return seconds

    return side


def imagetools_side(reg: str, count: int, sources: list):
    def side(i: int) -> float:
        name = f"{reg}/{REPO}:it-{count}-{b.nonce()}"
        seconds = b.timed_seconds(b.run, ["docker", "buildx", "imagetools", "create", "-t", name, *sources])
        return seconds

    return side


def docker_manifest_side(reg: str, count: int, sources: list, platforms: list):
    def side(i: int) -> float:
        name = f"{reg}/{REPO}:dm-{count}-{b.nonce()}"

        def steps():
            b.run(["docker", "manifest", "create", "--insecure", name, *sources])
            for src, plat in zip(sources, platforms):
                parts = plat.split("/")
                if len(parts) == 3:
                    b.run(["docker", "manifest", "annotate", "--variant", parts[2], name, src])
            b.run(["docker", "manifest", "push", "--insecure", "--purge", name])

        seconds = b.timed_seconds(steps)
        return seconds

    return side


def ansible_side(reg: str, count: int, sources: list, tasks: list):
    def side(i: int) -> float:
        name = f"{reg}/{REPO}:ans-{count}-{b.nonce()}"
        seconds, result = b.timed(b.ansible_module, "fleet.multiarch.manifest", {"name": name, "images": sources})
        assert result.get("changed"), result
        if i >= 0:
            tasks.append(result["_task_seconds"])
        return seconds

    return side


def imagetools_task_side(reg: str, count: int, sources: list, tasks: list):
    """What a playbook that does not use the collection runs: an ``ansible.builtin.command`` task with imagetools."""

    def side(i: int) -> float:
        name = f"{reg}/{REPO}:itt-{count}-{b.nonce()}"
        argv = ["docker", "buildx", "imagetools", "create", "-t", name, *sources]
        seconds, result = b.timed(b.ansible_module, "ansible.builtin.command", {"argv": argv})
        assert result.get("rc") == 0, result
        if i >= 0:
            tasks.append(result["_task_seconds"])
        return seconds

    return side


def main() -> None:
    reg = b.registry()
    push_sources(reg)
    repetitions = b.reps(7)
    figures = {}
    lines = []
    rows = []
    for platforms in (PLATFORMS_3, PLATFORMS_8):
        count = len(platforms)
        sources = [f"{reg}/{REPO}:{tag_of(p)}" for p in platforms]
        tasks, it_tasks = [], []
        spent = {label: {"runs": 0, "registry": 0.0, "client": 0.0} for label in ("library", "imagetools")}
        b.log(f"index of {count} platforms: {repetitions} rounds, alternating")
        times = b.alternate(
            {
                "library": with_cpu(library_side(reg, count, sources), spent["library"]),
                "imagetools": with_cpu(imagetools_side(reg, count, sources), spent["imagetools"]),
                "docker manifest": docker_manifest_side(reg, count, sources, platforms),
                "ansible command": ansible_side(reg, count, sources, tasks),
                "imagetools command task": imagetools_task_side(reg, count, sources, it_tasks),
            },
            repetitions,
        )
        stats = {label: b.summary(samples) for label, samples in times.items()}
        stats["ansible task"] = b.summary(tasks)
        stats["imagetools task"] = b.summary(it_tasks)
        lib = stats["library"]["median"]
        ratio_it = stats["imagetools"]["median"] / lib
        ratio_dm = stats["docker manifest"]["median"] / lib
        ratio_task = stats["imagetools"]["median"] / stats["ansible task"]["median"]
        task_ratio = stats["ansible task"]["median"] / stats["imagetools task"]["median"]
        command_ratio = stats["ansible command"]["median"] / stats["imagetools command task"]["median"]
        cpu = {label: cpu_per_run(totals) for label, totals in spent.items()}
        # Both the registry and the client run on this machine's cores: their CPU per index, spread over every
        # core, is the least wall time any client sending the library's requests could take here.
        lib_cpu, it_cpu = cpu["library"], cpu["imagetools"]
        floor = (lib_cpu["registry"] + lib_cpu["client"]) / (os.cpu_count() or 1) if lib_cpu and it_cpu else None
        figures[f"{count} platforms"] = {
            "seconds": stats,
            "cpu_seconds_per_index": cpu,
            "cpu_floor_seconds": round(floor, 4) if floor is not None else None,
            "ratio_imagetools_over_library": round(ratio_it, 2),
            "ratio_docker_manifest_over_library": round(ratio_dm, 2),
            "ratio_imagetools_over_ansible_task": round(ratio_task, 2),
            "ratio_manifest_task_over_imagetools_task": round(task_ratio, 2),
            "ratio_manifest_command_over_imagetools_command": round(command_ratio, 2),
        }
        rows.append(
            b.row(
                f"{count} platforms, in a playbook",
                f"manifest task {stats['ansible task']['median']:.2f} s",
                f"command task with imagetools create {stats['imagetools task']['median']:.2f} s",
                f"{task_ratio:.2f} (whole commands: {command_ratio:.2f})",
                None,
            )
        )
        rows.append(
            b.row(
                f"{count} platforms",
                f"library {lib * 1000:.0f} ms (ansible task {stats['ansible task']['median']:.2f} s, whole command "
                f"{stats['ansible command']['median']:.2f} s)",
                f"imagetools create {stats['imagetools']['median'] * 1000:.0f} ms; docker manifest create/annotate/push"
                f" "
                f"{stats['docker manifest']['median'] * 1000:.0f} ms",
                f"{ratio_it:.1f}x vs imagetools, {ratio_dm:.1f}x vs docker manifest (diagnostic); "
                f"task {ratio_task:.2f}x",
                None,
            )
        )
        if floor is not None:
            rows.append(
                b.row(
                    f"{count} platforms, CPU per index",
                    f"registry {lib_cpu['registry'] * 1000:.0f} ms + library {lib_cpu['client'] * 1000:.0f} ms"
                    f" = {floor * 1000:.0f} ms on each of {os.cpu_count()} cores",
                    f"registry {it_cpu['registry'] * 1000:.0f} ms + docker/buildx {it_cpu['client'] * 1000:.0f} ms",
                    f"at most {stats['imagetools']['median'] / floor:.1f}x on this machine with this client's CPU",
                    None,
                )
            )
            b.log(
                f"{count} platforms, CPU per index: library side: registry {lib_cpu['registry']:.3f} s + client"
                f" {lib_cpu['client']:.3f} s (floor {floor:.3f} s on {os.cpu_count()} cores); imagetools side:"
                f" registry {it_cpu['registry']:.3f} s + client {it_cpu['client']:.3f} s"
            )
        lines.append(
            f"{count} platforms {task_ratio:.2f} (manifest task {stats['ansible task']['median']:.3f} s, imagetools"
            f" task {stats['imagetools task']['median']:.3f} s; library {ratio_it:.1f}x faster than imagetools)"
        )
        b.log(
            f"{count} platforms, as a playbook runs it: manifest task {stats['ansible task']['median']:.3f} s,"
            f" command task with imagetools {stats['imagetools task']['median']:.3f} s"
            f" ({stats['imagetools task']['median'] / stats['ansible task']['median']:.2f}x)"
        )
        b.log(
            f"{count} platforms: library {lib:.3f} s, imagetools {stats['imagetools']['median']:.3f} s "
            f"({ratio_it:.2f}x), docker manifest {stats['docker manifest']['median']:.3f} s ({ratio_dm:.2f}x), "
            f"ansible task {stats['ansible task']['median']:.3f} s (imagetools/task {ratio_task:.2f}x), "
            f"whole ansible command {stats['ansible command']['median']:.3f} s"
        )
    b.save(
        "index",
        {
            "title": "Index creation: manifest library vs imagetools / docker manifest",
            "target": "none (a diagnostic; benchmark 8 holds the release pipeline's target)",
            "met": None,
            "repetitions": repetitions,
            "machine": b.machine(),
            "figures": figures,
            "rows": rows,
        },
    )
    b.verdict("index", "manifest task / imagetools command task: " + "; ".join(lines), None)


if __name__ == "__main__":
    main()
