"""Unit-test fakes of the container rollout: an in-memory engine, a registry client, and the module.

The engine is an in-memory stand-in with the methods of ``_engine.Engine`` that records every call; the
registry is a stand-in client serving one index (amd64, arm64, arm/v7). The real engine, registry and
emulation are exercised by tests/integration/test_container_rollout.py.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleet.multiarch.plugins.module_utils import _binfmt as bf
from ansible_collections.fleet.multiarch.plugins.module_utils import _reference
from ansible_collections.fleet.multiarch.plugins.module_utils import _registry as reg
from ansible_collections.fleet.multiarch.plugins.module_utils import _rollout as ro
from ansible_collections.fleet.multiarch.plugins.module_utils._deploy import EngineDeviceReader
from ansible_collections.fleet.multiarch.plugins.modules import container_rollout

BINFMT_PROC = Path(__file__).resolve().parents[1] / "fixtures" / "binfmt" / "proc"

REPO = "127.0.0.1:5000/fleet-test/app"
DIGESTS = {
    "linux/amd64": "sha256:" + "1" * 64,
    "linux/arm64": "sha256:" + "2" * 64,
    "linux/arm/v7": "sha256:" + "3" * 64,
}
OLD_DIGEST = "sha256:" + "9" * 64
KEPT_DIGEST = "sha256:" + "8" * 64
PLATFORM_OBJECTS = {
    "linux/amd64": {"os": "linux", "architecture": "amd64"},
    "linux/arm64": {"os": "linux", "architecture": "arm64", "variant": "v8"},
    "linux/arm/v7": {"os": "linux", "architecture": "arm", "variant": "v7"},
}


# One platform's image manifest: a config and two layers, 1.5 MB and 48 MiB compressed.
IMAGE_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": reg.OCI_MANIFEST,
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "c" * 64, "size": 1500},
    "layers": [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "d" * 64, "size": 1_500_000},
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": "sha256:" + "e" * 64,
            "size": 50_331_648,
        },
    ],
}


def index_fetched() -> reg.Fetched:
    data = {
        "schemaVersion": 2,
        "mediaType": reg.OCI_INDEX,
        "manifests": [
            {"mediaType": reg.OCI_MANIFEST, "digest": DIGESTS[p], "size": 500, "platform": PLATFORM_OBJECTS[p]}
            for p in DIGESTS
        ],
    }
    body = json.dumps(data).encode()
    return reg.Fetched(reg.OCI_INDEX, _reference.compute_digest(body), body, data)


class FakeRegistryClient:
    def __init__(self, missing=False):
        self.missing = missing

    def get_manifest(self, repository, ref, accept=reg.MANIFEST_ACCEPT):
        if self.missing:
            raise _reference.RegistryError(f"{repository}:{ref} not found", status=404)
        if ref in DIGESTS.values():
            body = json.dumps(IMAGE_MANIFEST).encode()
            return reg.Fetched(reg.OCI_MANIFEST, ref, body, IMAGE_MANIFEST)
        return index_fetched()


class FakeContainer:
    def __init__(self, engine, name, image="", labels=None, *, running=False, health="", restart=None):
        self.engine = engine
        self.id = f"id-{name}-{len(engine.calls)}"
        self.name = name
        self.image = image
        self.labels = dict(labels or {})
        self.running = running
        self.health = health
        self.restart = restart or {"Name": "unless-stopped", "MaximumRetryCount": 0}

    @property
    def attrs(self) -> dict:
        state = {"Status": "running" if self.running else "exited", "Running": self.running, "ExitCode": 0}
        if self.health and self.running:
            state["Health"] = {"Status": self.health, "Log": [{"ExitCode": 1, "Output": "wget: 404 Not Found"}]}
        return {
            "Id": self.id,
            "Name": "/" + self.name,
            "Config": {"Image": self.image, "Labels": self.labels},
            "State": state,
            "HostConfig": {"RestartPolicy": dict(self.restart)},
        }


class PowerCut(BaseException):
    """The device lost power: nothing after it runs (a BaseException, so that no ``except Exception`` of the code
    under test outlives it, as no code outlives its process)."""


class FakeEngine:
    """The methods of _engine.Engine the rollout uses, on a dict of containers."""

    def __init__(self):
        self.containers = {}
        self.calls = []
        self.images = set()
        self.health_of_new = "healthy"  # what a created container's HEALTHCHECK reports once started
        self.logs_text = "app starting\nerror: cannot bind\n"
        self.exec_code = 0
        self.pull_error = None  # an EngineError the next pull raises
        self.root = "/var/lib/docker"
        self.power_cut_after = None  # the device loses power before this many writes have been done
        self.powered = True

    READS = ("container", "has_image", "reload", "version_json", "logs")

    def _call(self, call: tuple) -> None:
        """Record ``call``; a device without power answers nothing, and loses it at the cut write."""
        if not self.powered:
            raise PowerCut(f"{call[0]}: the device has no power")
        if (
            call[0] not in self.READS
            and self.power_cut_after is not None
            and len(self.writes()) >= self.power_cut_after
        ):
            self.powered = False
            raise PowerCut(f"the device lost power before {call}")
        self.calls.append(call)

    def boot(self) -> None:
        """Power back: the engine starts again what ran with a restart policy that restarts it, and nothing else."""
        self.powered, self.power_cut_after = True, None
        for container in self.containers.values():
            container.running = container.running and container.restart.get("Name") in ("always", "unless-stopped")

    def add(self, name, digest, chash="sha256:old", *, running=True, health="healthy", reference=f"{REPO}:old"):
        labels = ro.deployment_labels(reference, digest, "linux/amd64", chash, {"Name": "always"})
        container = FakeContainer(
            self, name, f"{REPO}@{digest}", labels, running=running, health=health, restart={"Name": "always"}
        )
        self.containers[name] = container
        return container

    def writes(self) -> list:
        return [c for c in self.calls if c[0] not in self.READS]

    # The Engine interface
    def version_json(self):
        self._call(("version_json",))
        return json.dumps({"Client": {}, "Server": {"Version": "20.10.24", "Arch": "amd64", "Os": "linux"}})

    def container(self, name):
        """By name or by id, as the Engine API finds containers."""
        self._call(("container", name))
        return self.containers.get(name) or next((c for c in self.containers.values() if c.id == name), None)

    def has_image(self, reference):
        self._call(("has_image", reference))
        return reference in self.images

    def pull(self, repository, digest, platform, auth_config=None, timeout=0):
        self._call(("pull", f"{repository}@{digest}", platform))
        if self.pull_error is not None:
            raise self.pull_error
        self.images.add(f"{repository}@{digest}")

    def data_root(self):
        return self.root

    def create(self, image, name, kwargs):
        self._call(("create", name, image))
        container = FakeContainer(self, name, image, kwargs.get("labels"), health=self.health_of_new)
        self.containers[name] = container
        return container

    def start(self, container):
        self._call(("start", container.name))
        container.running = True

    def stop(self, container, timeout):
        self._call(("stop", container.name, timeout))
        container.running = False

    def rename(self, container, new_name):
        self._call(("rename", container.name, new_name))
        assert new_name not in self.containers, f"name {new_name} is taken"
        del self.containers[container.name]
        container.name = new_name
        self.containers[new_name] = container

    def remove(self, container):
        self._call(("remove", container.name))
        self.containers.pop(container.name, None)

    def set_restart_policy(self, container, policy):
        self._call(("restart_policy", container.name, policy.get("Name")))
        container.restart = {"Name": policy.get("Name") or "no", "MaximumRetryCount": 0}

    def reload(self, container):
        self._call(("reload", container.name))
        return container.attrs if self.containers.get(container.name) is container else {}

    def logs(self, container, lines):
        self._call(("logs", container.name))
        return self.logs_text

    def exec_run(self, container, argv):
        self._call(("exec", container.name, tuple(argv)))
        return self.exec_code, ""


def binfmt_entries(*targets: str) -> dict:
    """binfmt_misc entries of QEMU ``targets``, as captured from a Debian host's /proc/sys/fs/binfmt_misc."""
    return {f"qemu-{t}": bf.parse_entry(f"qemu-{t}", (BINFMT_PROC / f"qemu-{t}").read_text()) for t in targets}


@pytest.fixture
def engine(monkeypatch):
    """A FakeEngine, with every registry client answering with the index of :data:`DIGESTS`; the device emulates
    arm64 and arm (binfmt_misc entries captured from a real host), whatever this host has registered."""
    monkeypatch.setattr(reg.ClientPool, "get", lambda self, registry: FakeRegistryClient())
    monkeypatch.setattr(EngineDeviceReader, "binfmt", lambda self: (binfmt_entries("aarch64", "arm"), True))
    return FakeEngine()


@pytest.fixture
def make_module():
    """``make_module(args, check_mode=False, diff=False)``: the AnsibleModule container_rollout's main() builds.

    The module args stay patched until the test ends (``exit_json`` and ``fail_json`` need them).
    """
    with contextlib.ExitStack() as stack:

        def make(args: dict, check_mode=False, diff=False) -> AnsibleModule:
            extra = {"_ansible_check_mode": check_mode, "_ansible_diff": diff}
            stack.enter_context(patch_module_args({**args, **extra}))
            return AnsibleModule(argument_spec=container_rollout.argument_spec(), supports_check_mode=True)

        yield make


@pytest.fixture
def args_for(tmp_path):
    """``args_for(**extra)``: the options of a deployment of ``REPO:1.0`` as ``app``, history in ``tmp_path``."""

    def args(**extra) -> dict:
        out = {
            "name": "app",
            "image": f"{REPO}:1.0",
            "platform": "linux/amd64",
            "ports": ["8080:8080"],
            "history_file": str(tmp_path / "history.json"),
            "running_seconds": 0,
        }
        out.update(extra)
        return out

    return args
