"""Benchmarks 4 and 5 on an emulated arm64 device (one provisioned guest of a private fleet):

4. ``downtime``: how long the application does not answer during an update, ``container_rollout`` with
   ``update_order: start-first`` (``ansible DEVICE -m fleet.multiarch.container_rollout`` from the host, as a
   user runs it) against the naive ``docker pull NEW && docker rm -f app && docker run -d ... NEW`` (one SSH
   command, as a user runs it); ``container_rollout`` with the default ``stop-first`` is the third side,
   reported beside them. Measured identically for all, INSIDE the device: a poller (python3 on the guest,
   started before the update) asks ``http://127.0.0.1:PORT/`` every 50 ms and reports the longest gap
   between two answers. The application is the same for all sides: the shared-port server
   (tests/integration/apps/shared-port-app, SO_REUSEPORT) on the host network, port PORT. Two image
   sizes: ``small`` (the server + a 4 MB app layer) and ``large`` (a new 40 MB layer below the app layer
   in every version, so it is really pulled each time).
   Target: rollout downtime <= 1/3 of the naive one (medians, each size), and independent of the image
   size (large <= 1.25 x small + 0.25 s). ``BENCH_DEVICE_SIZES=small`` runs one size (the target then
   counts as missed: independence is not measured).
5. ``bytes``: what the device pulled when only the application layer changed (the ``small`` updates):
   bytes the registry sent for the app's repository (access log: manifests and blobs, GET 200), against
   the compressed size of the new app layer; eth0 ``rx_bytes`` of the guest is reported beside it (it also
   counts SSH, the Ansible module transfer and TCP/Ethernet headers). Target: within 5% of the layer.

Each version is a new tag with new content; the rollout side runs container ``bench-r`` (port 8081), the
stop-first side ``bench-s`` (8083), the naive side ``bench-n`` (port 8082), all with ``--restart
unless-stopped`` and the same image (a server that stops at once on SIGTERM). Sides alternate per update
(rollout, stop-first, naive, rollout, ...).

``python bench/bench_device.py downtime|bytes``: both benchmarks come from the same updates; the first
call runs them and keeps the raw trials (``results/parts/device_trials.json``, tagged with ``BENCH_RUN_ID``),
the second reuses them when its ``BENCH_RUN_ID`` matches, so each prints its own line last.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import sys
import tempfile

import benchlib as b
import fleetlib as f

ALL_SIZES = {"small": 0, "large": 40 * 1024 * 1024}  # bytes of the layer below the app layer (new per version)
SIZES = {
    size: ALL_SIZES[size] for size in os.environ.get("BENCH_DEVICE_SIZES", "small large").split() if size in ALL_SIZES
}
APP_BYTES = 4 * 1024 * 1024
SIDES = {"rollout": ("bench-r", 8081), "stop-first": ("bench-s", 8083), "naive": ("bench-n", 8082)}
ORDERS = {"rollout": "start-first", "stop-first": "stop-first"}
TRIALS = b.PARTS / "device_trials.json"
RUN_ID = os.environ.get("BENCH_RUN_ID", "")


def rollout_args(ref: str, name: str, port: int, order: str) -> dict:
    return {
        "name": name,
        "image": ref,
        "network_mode": "host",
        "env": {"PORT": str(port)},
        "restart_policy": "unless-stopped",
        "update_order": order,
        "insecure_registries": [f.GUEST_REGISTRY],
        # Inside the new container (the port is shared): the server's readiness file, written once it listens.
        "health": {"command": ["/server", "ready"]},
        "health_timeout": 300,
    }


def rollout_update(guest: str, ref: str, name: str, port: int, order: str) -> dict:
    """The update as a user runs it; returns the module's own timings (pull, swap, health)."""
    with tempfile.TemporaryDirectory() as tmp:
        timer = f"{tmp}/timer.jsonl"
        proc = b.run(
            [
                *(b.VENV_BIN / "ansible", guest, "-i", f.inventory(), "-m", "fleet.multiarch.container_rollout"),
                *("-a", json.dumps(rollout_args(ref, name, port, order))),
            ],
            env=b.ansible_env(timer),
            check=False,
            timeout=1800,
        )
        records = b.read_timer(timer)
    if proc.returncode != 0 or not records:
        raise RuntimeError(f"container_rollout failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    result = records[-1]["result"]
    return {
        "task_seconds": records[-1]["task_seconds"],
        "module_seconds": result.get("seconds"),
        "pull_seconds": result.get("pull_seconds"),
        "swap_seconds": result.get("swap_seconds"),
        "health_seconds": (result.get("health") or {}).get("seconds"),
    }


def naive_update(guest: str, ref: str, name: str, port: int) -> dict:
    f.ssh(
        guest,
        f"docker pull -q {ref} >/dev/null && docker rm -f {name} >/dev/null 2>&1;"
        f" docker run -d --name {name} --restart unless-stopped --network host -e PORT={port} {ref} >/dev/null",
    )
    return {}


UPDATE = {
    "rollout": functools.partial(rollout_update, order=ORDERS["rollout"]),
    "stop-first": functools.partial(rollout_update, order=ORDERS["stop-first"]),
    "naive": naive_update,
}


def run_trials(repetitions: int) -> dict:
    if not f.provisioned_ready():
        sys.exit("no provisioned arm64 fleet image: run `make fleet-provisioned` (scripts/fleet-provision.sh) first")
    guest = f.up(1)["guests"][0]["name"]
    f.ssh(guest, "docker info --format '{{.ServerVersion}}'")
    f.install_poller(guest)
    run = b.nonce()
    trials = []
    counter = [0]

    def version(size: str) -> dict:
        counter[0] += 1
        # A new large layer each version AND each run: the device must not have it from an earlier run.
        seed = int(run, 16) + counter[0] if SIZES[size] else 0
        return f.build_app(f"bench/app-{size}-{run}", f"v{counter[0]}", SIZES[size], APP_BYTES, seed)

    for size in SIZES:
        b.log(f"device: {size} image, first deployment of both containers (not timed)")
        for side, (name, port) in SIDES.items():
            UPDATE[side](guest, version(size)["guest_ref"], name, port)

        def trial(side: str, size: str = size):
            def one(i: int) -> float:
                name, port = SIDES[side]
                image = version(size)
                log = f.RegistryLog(f"bench/app-{size}-{run}")
                poll = f.start_poller(guest, port, f"app {image['version']}")
                log.start()
                rx_before = f.rx_bytes(guest)
                seconds, details = b.timed(UPDATE[side], guest, image["guest_ref"], name, port)
                rx_after = f.rx_bytes(guest)
                sent = log.bytes_sent()
                polled = f.stop_poller(guest, poll)
                record = {
                    "size": size,
                    "side": side,
                    "round": i,
                    "update_seconds": round(seconds, 3),
                    "downtime_seconds": round(polled["max_gap"], 3),
                    "poller": polled,
                    "registry_bytes": sent,
                    "eth0_rx_bytes": rx_after - rx_before,
                    "module": details or {},
                    **image,
                }
                trials.append(record)
                save_trials(trials, repetitions, complete=False)
                b.log(
                    f"  {size} {side}: downtime {polled['max_gap']:.2f} s, update {seconds:.1f} s, registry sent "
                    f"{sent['total']} B for an app layer of {image['app_layer_bytes']} B"
                )
                return polled["max_gap"]

            return one

        b.alternate({side: trial(side) for side in SIDES}, repetitions)
    for name, _port in SIDES.values():
        f.ssh(guest, f"docker rm -f {name} {name}-previous {name}-older >/dev/null 2>&1; true", check=False)
    return save_trials(trials, repetitions, complete=True)


def save_trials(trials: list, repetitions: int, complete: bool) -> dict:
    """Keep the raw updates after each one, so that an interrupted run still shows what it measured."""
    data = {
        "run_id": RUN_ID,
        "complete": complete,
        "repetitions": repetitions,
        "machine": b.machine(),
        "trials": trials,
    }
    b.PARTS.mkdir(parents=True, exist_ok=True)
    TRIALS.write_text(json.dumps(data, indent=2) + "\n")
    return data


def load_trials(repetitions: int) -> dict:
    if RUN_ID and TRIALS.exists():
        data = json.loads(TRIALS.read_text())
        if data.get("run_id") == RUN_ID and data.get("complete"):
            b.log(f"device: reusing the updates of this run ({TRIALS})")
            return data
    try:
        return run_trials(repetitions)
    finally:
        if not os.environ.get("BENCH_KEEP_FLEET"):
            f.down()


def rounds(data: dict, size: str, side: str) -> list:
    """The timed updates (not the warm-up) of one side for one image size."""
    return [t for t in data["trials"] if t["size"] == size and t["side"] == side and t["round"] >= 0]


def timed_rounds(data: dict, size: str, side: str, key: str) -> list:
    return [t[key] for t in rounds(data, size, side)]


def failed_text(counts: list) -> str:
    low, high = min(counts), max(counts)
    return f"{low} failed requests" if low == high else f"{low}-{high} failed requests"


def downtime(data: dict) -> None:
    figures = {}
    rows = []
    met = True
    parts = []
    sizes = [size for size in ALL_SIZES if any(t["size"] == size for t in data["trials"])]
    for size in sizes:
        stats = {side: b.summary(timed_rounds(data, size, side, "downtime_seconds")) for side in SIDES}
        updates = {side: b.summary(timed_rounds(data, size, side, "update_seconds")) for side in SIDES}
        # Requests that got no answer at all (refused, reset, timed out), per update: 0 means always served.
        failed = {side: [t["poller"]["failed"] for t in rounds(data, size, side)] for side in SIDES}
        naive = stats["naive"]["median"]
        ratios = {side: naive / max(stats[side]["median"], 1e-6) for side in ORDERS}
        figures[size] = {
            "downtime_seconds": stats,
            "update_seconds": updates,
            "failed_requests": failed,
            "ratio_naive_over_rollout": round(ratios["rollout"], 2),
            "ratio_naive_over_stop_first": round(ratios["stop-first"], 2),
        }
        met = met and ratios["rollout"] >= 3.0
        parts.append(
            f"{size} {ratios['rollout']:.1f}x (rollout {stats['rollout']['median']:.2f} s, naive {naive:.2f} s)"
        )
        image = next(t["image_bytes"] for t in data["trials"] if t["size"] == size)
        what = f"{size} image ({image / 1e6:.0f} MB compressed, new layers pulled each time)"
        naive_text = (
            f"pull && rm -f && run: {naive:.2f} s, {failed_text(failed['naive'])}"
            f" (update {updates['naive']['median']:.0f} s)"
        )
        for side, order in ORDERS.items():
            rows.append(
                b.row(
                    f"{what}, {order}",
                    f"container_rollout {order}: {stats[side]['median']:.2f} s without answer,"
                    f" {failed_text(failed[side])}"
                    f" (update {updates[side]['median']:.0f} s)",
                    naive_text,
                    f"naive/rollout {ratios[side]:.1f}x" + (" (target >= 3x)" if side == "rollout" else " (reported)"),
                    ratios[side] >= 3.0 if side == "rollout" else None,
                )
            )
    if "small" in figures and "large" in figures:
        small = figures["small"]["downtime_seconds"]["rollout"]["median"]
        large = figures["large"]["downtime_seconds"]["rollout"]["median"]
        independent = large <= 1.25 * small + 0.25
        rows.append(
            b.row(
                "start-first downtime, large vs small image",
                f"{large:.2f} s vs {small:.2f} s",
                "",
                f"large <= 1.25 x small + 0.25 s: {large:.2f} <= {1.25 * small + 0.25:.2f}",
                independent,
            )
        )
        parts.append(f"rollout large {large:.2f} s vs small {small:.2f} s")
    else:
        independent = False
        parts.append("one image size only: independence not measured")
    met = met and independent
    b.save(
        "downtime",
        {
            "title": "Device update downtime (arm64 guest): container_rollout vs docker pull && rm -f && run",
            "target": "rollout (start-first) downtime <= naive / 3 for each size; large <= 1.25 x small + 0.25 s",
            "met": met,
            "repetitions": data["repetitions"],
            "machine": data["machine"],
            "figures": figures,
            "size_independent": independent,
            "rows": rows,
        },
    )
    b.verdict("downtime", "naive / rollout: " + "; ".join(parts), met)


def bytes_pulled(data: dict) -> None:
    figures = {}
    for side in SIDES:
        trials = rounds(data, "small", side)
        ratios = [t["registry_bytes"]["total"] / t["app_layer_bytes"] for t in trials]
        eth = [t["eth0_rx_bytes"] / t["app_layer_bytes"] for t in trials]
        figures[side] = {
            "app_layer_bytes": [t["app_layer_bytes"] for t in trials],
            "registry_bytes": [t["registry_bytes"]["total"] for t in trials],
            "registry_over_layer": b.summary(ratios),
            "eth0_rx_bytes": [t["eth0_rx_bytes"] for t in trials],
            "eth0_over_layer": b.summary(eth),
        }
    ratio = figures["rollout"]["registry_over_layer"]["median"]
    met = ratio <= 1.05
    naive = figures["naive"]["registry_over_layer"]["median"]
    eth = figures["rollout"]["eth0_over_layer"]["median"]
    layer = statistics.median(figures["rollout"]["app_layer_bytes"])
    pulled = statistics.median(figures["rollout"]["registry_bytes"])
    rows = [
        b.row(
            "only the app layer changed",
            f"container_rollout: {pulled / 1e6:.3f} MB from the registry (guest eth0 rx {eth:.3f}x the layer)",
            f"changed layer {layer / 1e6:.3f} MB; naive docker pull {naive:.3f}x the layer",
            f"{ratio:.3f}x the layer (target <= 1.05)",
            met,
        )
    ]
    b.save(
        "bytes",
        {
            "title": "Bytes pulled by the device when only the app layer changed (4 MB layer)",
            "target": "registry bytes sent to the device <= 1.05 x the changed layer (rollout)",
            "met": met,
            "repetitions": data["repetitions"],
            "machine": data["machine"],
            "figures": figures,
            "rows": rows,
        },
    )
    b.verdict(
        "bytes",
        f"pulled / changed layer = {ratio:.3f} (rollout; naive docker pull {naive:.3f}; guest eth0 rx {eth:.3f})",
        met,
    )


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "downtime"
    if which not in ("downtime", "bytes"):
        sys.exit("usage: bench_device.py downtime|bytes")
    data = load_trials(b.reps(3))
    (downtime if which == "downtime" else bytes_pulled)(data)


if __name__ == "__main__":
    main()
