"""The emulated ARM fleet for the device benchmarks: a PRIVATE fleet (own state dir and ports), SSH to a
guest, the app images, a poller that runs inside the device, and the registry's access log.

The fleet is booted from the ``provisioned`` images (Docker engine, python3-docker, the host registry
``10.0.2.2:5000`` as an insecure registry) with ``scripts/fleet.sh up --arm64 N --armhf 0 --image
provisioned``, state in ``BENCH_FLEET_STATE`` (default ``/tmp/bench-fleet``, under the temp dir), ports
from ``BENCH_FLEET_PORT_BASE`` (13800), so it neither disturbs nor depends on other fleets of the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import benchlib as b

from ansible_collections.fleet.multiarch.plugins.module_utils._registry import RegistryClient

FLEET_SH = b.ROOT / "scripts" / "fleet.sh"
STATE = Path(os.environ.get("BENCH_FLEET_STATE") or Path(b.WORK.parent, "bench-fleet"))
PORT_BASE = os.environ.get("BENCH_FLEET_PORT_BASE", "13800")
GUEST_REGISTRY = "10.0.2.2:5000"  # the host registry as the guests see it
REGISTRY_LOG = Path(os.environ.get("BENCH_REGISTRY_LOG", "/var/lib/fleet-multiarch-testenv/registry/plain.log"))
# The application: tests/integration/apps/shared-port-app/server.c (answers every GET with $APP_VERSION on
# $PORT, opens it with SO_REUSEPORT so that two versions can listen at once on the host network, stops at once on
# SIGTERM), cross-compiled static for arm64. Its own layer stays the same; /pad and /www are the data layers.
APP_PORT = 8080  # the server's port inside the container, unless PORT says otherwise
SERVER_C = b.ROOT / "tests" / "integration" / "apps" / "shared-port-app" / "server.c"
CROSS_CC = "aarch64-linux-gnu-gcc"
CROSS_PACKAGES = ("gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross")
DOCKERFILE = """FROM scratch
ARG VERSION
COPY server /server
COPY pad/ /pad/
COPY www/ /www/
ENV APP_VERSION="app ${VERSION}"
CMD ["/server"]
"""

POLLER = r"""
import json, os, sys, time, urllib.request
port, want, out = sys.argv[1], sys.argv[2], sys.argv[3]
stop = out + ".stop"
last_ok = None; max_gap = 0.0; ok = 0; fail = 0; new_at = None; start = time.monotonic()
while True:
    t = time.monotonic()
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%s/" % port, timeout=0.5).read().decode()
        if last_ok is not None:
            max_gap = max(max_gap, t - last_ok)
        last_ok = t; ok += 1
        if want in body and new_at is None:
            new_at = t - start
        if ok == 1:
            open(out + ".ready", "w").close()
    except Exception:
        fail += 1
    if os.path.exists(stop) and (new_at is not None or t - start > 900):
        break
    time.sleep(max(0.0, 0.05 - (time.monotonic() - t)))
with open(out + ".tmp", "w") as fh:
    json.dump({"max_gap": max_gap, "ok": ok, "failed": fail, "new_at": new_at, "seconds": time.monotonic() - start}, fh)
os.rename(out + ".tmp", out)
"""


def env() -> dict:
    return {"FLEET_TESTENV_STATE": str(STATE), "FLEET_PORT_BASE": PORT_BASE}


def provisioned_ready() -> bool:
    return b.run([FLEET_SH, "provisioned-recipe", "arm64"], check=False, env=env()).returncode == 0


def up(arm64: int) -> dict:
    """Boot ``arm64`` provisioned arm64 guests (keeps them when the same fleet already runs); fleet.json."""
    b.log(f"fleet: up --arm64 {arm64} --image provisioned (state {STATE}, ports from {PORT_BASE})")
    seconds = b.timed_seconds(
        b.run,
        [FLEET_SH, "up", "--arm64", str(arm64), "--armhf", "0", "--image", "provisioned"],
        env=env(),
        timeout=2400,
    )
    b.log(f"fleet: up in {seconds:.0f} s")
    return fleet()


def fleet() -> dict:
    return json.loads((STATE / "fleet" / "fleet.json").read_text())


def inventory() -> str:
    return str(STATE / "fleet" / "inventory.yml")


def down() -> None:
    close_ssh()
    if (STATE / "fleet").exists():
        b.log("fleet: down")
        b.run([FLEET_SH, "down"], check=False, env=env(), timeout=600)


def ssh(guest: str, command: str, *, check: bool = True, timeout: int = 1800):
    """One shell command on a guest as ``pi``, over a shared SSH connection (as the inventory's ControlPersist).

    The master connection is started on its own, detached from every pipe: a master forked by the first
    command would keep that command's output pipes open and make reading them wait for it to exit.
    """
    info = fleet()
    port = next(g["port"] for g in info["guests"] if g["name"] == guest)
    control = STATE / "fleet" / f"ssh-{guest}.ctl"
    base = [
        *("ssh", "-i", info["key"], "-p", str(port), "-o", "StrictHostKeyChecking=no"),
        *("-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"),
        *("-o", f"ControlPath={control}", "-o", "ServerAliveInterval=15"),
    ]
    target = f"{info['user']}@127.0.0.1"
    if not control.exists():
        subprocess.run(
            [*base, "-o", "ControlMaster=yes", "-o", "ControlPersist=600s", "-N", "-f", target],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=300,
        )
    return b.run([*base, "-o", "ControlMaster=no", target, command], check=check, timeout=timeout)


def close_ssh() -> None:
    """Stop the shared SSH connections this module opened."""
    for control in (STATE / "fleet").glob("ssh-*.ctl"):
        subprocess.run(["ssh", "-o", f"ControlPath={control}", "-O", "exit", "x"], capture_output=True, check=False)


def build_app(repository: str, version: str, pad_bytes: int, app_bytes: int, pad_seed: int) -> dict:
    """Build and push an arm64 app image ``<host registry>/<repository>:<version>``.

    Layers: the server (:func:`server_binary`), ``/pad`` (``pad_bytes`` of random data from ``pad_seed``: the
    same seed gives the same layer), ``/www`` (index.html naming the version, plus ``app_bytes`` of random data:
    always new). The server answers ``app <version>`` (its ``APP_VERSION``).
    Returns the guest reference and the compressed size of the app layer (the last one).
    """
    reg = b.registry()
    ctx = b.WORK / "app" / f"{repository.replace('/', '-')}-{version}"
    shutil.rmtree(ctx, ignore_errors=True)
    (ctx / "pad").mkdir(parents=True)
    (ctx / "www").mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    shutil.copy(server_binary(), ctx / "server")
    rng = random.Random(pad_seed)  # noqa: S311 - filler data, not security
    (ctx / "pad" / "data.bin").write_bytes(rng.randbytes(pad_bytes) if pad_bytes else b"")
    (ctx / "www" / "index.html").write_text(f"app {version}\n")
    (ctx / "www" / "assets.bin").write_bytes(os.urandom(app_bytes))
    ref = f"{reg}/{repository}:{version}"
    b.run(
        [
            *("docker", "buildx", "build", "--progress", "plain", "--platform", "linux/arm64"),
            *("--build-arg", f"VERSION={version}", "--provenance", "false", "--sbom", "false"),
            *("-t", ref, "--push", str(ctx)),
        ]
    )
    shutil.rmtree(ctx)
    manifest = RegistryClient(reg).get_manifest(repository, version).data
    layers = manifest["layers"]
    return {
        "guest_ref": f"{GUEST_REGISTRY}/{repository}:{version}",
        "version": version,
        "app_layer_bytes": layers[-1]["size"],
        "image_bytes": sum(layer["size"] for layer in layers) + manifest["config"]["size"],
    }


def server_binary() -> Path:
    """The app's server for arm64 (static), compiled once per source; the cross compiler is installed if missing."""
    source = SERVER_C.read_bytes()
    out = b.WORK / "app" / f"server-arm64-{hashlib.sha256(source).hexdigest()[:16]}"
    if out.exists():
        return out
    if shutil.which(CROSS_CC) is None:
        b.log(f"app: installing the arm64 cross compiler ({' '.join(CROSS_PACKAGES)})")
        b.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *CROSS_PACKAGES], timeout=1800)
    out.parent.mkdir(parents=True, exist_ok=True)
    b.run([CROSS_CC, "-static", "-O2", "-Wall", "-Werror", "-o", f"{out}.tmp", str(SERVER_C)])
    os.replace(f"{out}.tmp", out)
    return out


def install_poller(guest: str) -> None:
    ssh(guest, f"cat > bench-poll.py <<'EOF'\n{POLLER}\nEOF")


def start_poller(guest: str, port: int, want: str) -> str:
    out = f"bench-poll-{b.nonce()}.json"  # in the home of pi
    ssh(guest, f"nohup python3 bench-poll.py {port} '{want}' {out} >/dev/null 2>&1 &")
    ssh(guest, f"for i in $(seq 600); do [ -e {out}.ready ] && exit 0; sleep 0.2; done; exit 1")
    return out


def stop_poller(guest: str, out: str) -> dict:
    proc = ssh(guest, f"touch {out}.stop; for i in $(seq 3000); do [ -e {out} ] && break; sleep 0.2; done; cat {out}")
    return json.loads(proc.stdout)


def rx_bytes(guest: str) -> int:
    """Bytes the guest's network interface received (``/proc/net/dev``, the first non-loopback one)."""
    text = ssh(guest, "cat /proc/net/dev").stdout
    for line in text.splitlines()[2:]:
        if ":" not in line:
            continue
        name, rest = line.split(":", 1)
        if name.strip() not in ("lo",) and not name.strip().startswith(("docker", "veth", "br-")):
            return int(rest.split()[0])
    raise RuntimeError(f"no network interface in {text!r}")


_ACCESS = re.compile(r'"(GET|HEAD) /v2/(\S+) HTTP/[0-9.]+" (\d+) (\d+)')


class RegistryLog:
    """Bytes the registry sent for one repository between ``start()`` and ``bytes_sent()`` (access log)."""

    def __init__(self, repository: str):
        self.repository = repository
        self.offset = 0

    def start(self) -> None:
        self.offset = REGISTRY_LOG.stat().st_size

    def bytes_sent(self) -> dict:
        time.sleep(0.5)  # the registry writes its log line after the response
        with REGISTRY_LOG.open("rb") as fh:
            fh.seek(self.offset)
            text = fh.read().decode(errors="replace")
        out = {"blobs": 0, "manifests": 0, "requests": 0}
        for method, path, status, size in _ACCESS.findall(text):
            if not path.startswith(self.repository + "/") or method != "GET" or status != "200":
                continue
            kind = "blobs" if "/blobs/" in path else "manifests"
            out[kind] += int(size)
            out["requests"] += 1
        out["total"] = out["blobs"] + out["manifests"]
        return out
