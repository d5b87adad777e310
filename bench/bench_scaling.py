"""Benchmark 6, fleet scaling: wall time of a rollout to 1, 2 and 4 emulated arm64 devices (a private
provisioned fleet, ``BENCH_SCALING_DEVICES`` guests, default 4), by fleet size and by batch size.

- ``rollout``: ``ansible-playbook fleet.multiarch.rollout -i INVENTORY --limit FIRST_N`` with a new
  image version each time (the role: device_facts, container_rollout with an HTTP health check, the fleet
  report), ``rollout_serial`` = the batch size;
- ``naive``: the reference, ``ssh DEVICE 'docker pull NEW && docker rm -f app && docker run -d ... NEW'`` to
  the same devices, all at once (one SSH per device in parallel, as ``parallel-ssh`` does).

Fleet sizes 1, 2, 4 with the whole fleet as one batch alternate rollout/naive; then, on the whole
fleet, the rollout with smaller batches (serial 1 and 2). The plot ``results/scaling.png`` shows wall time
against fleet size (both sides) and the batch-size series. No target: the ratio line says how time grows.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import benchlib as b
import fleetlib as f

DEVICES = int(os.environ.get("BENCH_SCALING_DEVICES", "4"))
NAME, PORT = "bench-s", 8083


def sizes() -> list:
    out, n = [], 1
    while n < DEVICES:
        out.append(n)
        n *= 2
    return [*out, DEVICES]


def rollout(guests: list, ref: str, batch: int) -> None:
    extra = {
        "rollout_image": ref,
        "rollout_container_name": NAME,
        "rollout_ports": [f"{PORT}:{f.APP_PORT}"],
        "rollout_insecure_registries": [f.GUEST_REGISTRY],
        "rollout_health": {"http": {"url": f"http://127.0.0.1:{PORT}/"}},
        "rollout_health_timeout": 600,
        "rollout_serial": batch,
        "rollout_report_dir": str(b.WORK / "rollout-report"),
    }
    proc = b.run(
        [
            *(b.VENV_BIN / "ansible-playbook", "fleet.multiarch.rollout", "-i", f.inventory()),
            *("--limit", ",".join(guests), "-e", json.dumps(extra)),
        ],
        env=b.ansible_env(),
        check=False,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the rollout playbook failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")


def naive(guests: list, ref: str) -> None:
    command = (
        f"docker pull -q {ref} >/dev/null && docker rm -f {NAME}-n >/dev/null 2>&1;"
        f" docker run -d --name {NAME}-n --restart unless-stopped -p {PORT + 1}:{f.APP_PORT} {ref} >/dev/null"
    )
    with ThreadPoolExecutor(max_workers=len(guests)) as pool:
        list(pool.map(lambda guest: f.ssh(guest, command), guests))


def main() -> None:
    if not f.provisioned_ready():
        sys.exit("no provisioned arm64 fleet image: run `make fleet-provisioned` (scripts/fleet-provision.sh) first")
    repetitions = b.reps(3)
    all_guests = [g["name"] for g in f.up(DEVICES)["guests"]]
    run_id = b.nonce()
    counter = [0]

    def new_version() -> str:
        counter[0] += 1
        return f.build_app(f"bench/app-scale-{run_id}", f"v{counter[0]}", 0, 4 * 1024 * 1024, 0)["guest_ref"]

    try:
        b.log("scaling: first deployment on every device, both containers at once (not timed)")
        first = new_version()
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = [pool.submit(rollout, all_guests, first, DEVICES), pool.submit(naive, all_guests, first)]
            for job in jobs:
                job.result()
        by_size = {}
        for n in sizes():
            guests = all_guests[:n]

            def side_rollout(i: int, guests: list = guests) -> float:
                ref = new_version()
                return b.timed(rollout, guests, ref, len(guests))[0]

            def side_naive(i: int, guests: list = guests) -> float:
                ref = new_version()
                return b.timed(naive, guests, ref)[0]

            b.log(f"scaling: {n} device(s), one batch, {repetitions} rounds")
            times = b.alternate({"rollout": side_rollout, "naive": side_naive}, repetitions, warmup=0)
            by_size[n] = {side: b.summary(samples) for side, samples in times.items()}
        by_batch = {DEVICES: by_size[DEVICES]["rollout"]}
        for batch in [s for s in sizes() if s < DEVICES]:
            b.log(f"scaling: {DEVICES} devices in batches of {batch}, {repetitions} rounds")
            samples = [b.timed(rollout, all_guests, new_version(), batch)[0] for round_no in range(repetitions)]
            by_batch[batch] = b.summary(samples)
    finally:
        if not os.environ.get("BENCH_KEEP_FLEET"):
            f.down()

    one = by_size[1]["rollout"]["median"]
    growth = {n: round(by_size[n]["rollout"]["median"] / one, 2) for n in by_size}
    naive_growth = {n: round(by_size[n]["naive"]["median"] / by_size[1]["naive"]["median"], 2) for n in by_size}
    ratio = {n: round(by_size[n]["rollout"]["median"] / by_size[n]["naive"]["median"], 2) for n in by_size}
    figures = {
        "by_fleet_size": {str(n): v for n, v in by_size.items()},
        "by_batch_size_on_whole_fleet": {str(k): v for k, v in sorted(by_batch.items())},
        "rollout_growth_over_1_device": {str(k): v for k, v in growth.items()},
        "naive_growth_over_1_device": {str(k): v for k, v in naive_growth.items()},
        "ratio_rollout_over_naive": {str(k): v for k, v in ratio.items()},
    }
    rows = [
        b.row(
            f"{n} device(s), one batch",
            f"rollout playbook {by_size[n]['rollout']['median']:.0f} s (x{growth[n]:.2f} of 1 device)",
            f"naive over parallel SSH {by_size[n]['naive']['median']:.0f} s (x{naive_growth[n]:.2f})",
            f"rollout/naive {ratio[n]:.2f}",
            None,
        )
        for n in by_size
    ] + [
        b.row(f"{DEVICES} devices, batches of {k}", f"rollout playbook {v['median']:.0f} s", "", "", None)
        for k, v in sorted(by_batch.items())
        if k != DEVICES
    ]
    b.save(
        "scaling",
        {
            "title": f"Fleet scaling: rollout playbook to 1..{DEVICES} arm64 devices, by fleet and batch size",
            "target": "none (how time grows); reference: naive docker pull/rm/run over parallel SSH",
            "met": None,
            "repetitions": repetitions,
            "machine": b.machine(),
            "figures": figures,
            "rows": rows,
        },
    )
    plot(by_size, by_batch)
    serial_one = by_batch[min(by_batch)]["median"] / by_batch[DEVICES]["median"]
    b.verdict(
        "scaling",
        f"rollout time x{growth[DEVICES]:.2f} from 1 to {DEVICES} devices (naive x{naive_growth[DEVICES]:.2f});"
        f" rollout/naive {ratio[1]:.2f} at 1 device, {ratio[DEVICES]:.2f} at {DEVICES}; batches of"
        f" {min(by_batch)} take x{serial_one:.2f} the one-batch time",
        None,
    )


def plot(by_size: dict, by_batch: dict) -> None:
    import matplotlib  # noqa: PLC0415 - only this benchmark needs it, installed by run.sh

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    sizes_ = sorted(by_size)
    for side, style in (("rollout", "o-"), ("naive", "s--")):
        medians = [by_size[n][side]["median"] for n in sizes_]
        lows = [by_size[n][side]["median"] - by_size[n][side]["min"] for n in sizes_]
        highs = [by_size[n][side]["max"] - by_size[n][side]["median"] for n in sizes_]
        label = "rollout playbook (one batch)" if side == "rollout" else "naive pull/rm/run over parallel SSH"
        left.errorbar(sizes_, medians, yerr=[lows, highs], fmt=style, capsize=3, label=label)
    left.set_xlabel("devices (emulated arm64)")
    left.set_ylabel("wall time, s (median, min-max)")
    left.set_xticks(sizes_)
    left.set_ylim(bottom=0)
    left.set_title("time by fleet size")
    left.legend(fontsize=8)
    batches = sorted(by_batch)
    right.bar([str(x) for x in batches], [by_batch[x]["median"] for x in batches], color="tab:blue")
    right.set_xlabel(f"batch size (serial) on {max(by_size)} devices")
    right.set_ylabel("wall time, s (median)")
    right.set_title("time by batch size")
    fig.suptitle("fleet.multiarch rollout scaling on this machine (2 x86 cores, QEMU TCG guests)", fontsize=10)
    fig.tight_layout()
    b.RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(b.RESULTS / "scaling.png", dpi=110)
    b.log(f"plot: {b.RESULTS / 'scaling.png'}")


if __name__ == "__main__":
    main()
