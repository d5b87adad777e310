# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""Container rollout as data: the desired configuration, what runs and the plan.

Everything here is pure (no Engine API, no registry, no files): the manager (``_deploy``) reads the engine
through ``_engine`` and the registry through ``_registry``/``_manifest``, and passes what it read in here.
Health is decided in ``_waiter``, the deployment history is kept by ``_history``.

What a container runs is answered from its own labels (:data:`LABEL_DIGEST`, :data:`LABEL_CONFIG`,
...), written when the module created it, so "same digest and same configuration" needs no other state.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex

from ansible_collections.fleet.multiarch.plugins.module_utils._platform import PlatformError, parse_platform

LABEL_PREFIX = "io.fleet-multiarch."
LABEL_DIGEST = LABEL_PREFIX + "digest"
LABEL_CONFIG = LABEL_PREFIX + "config-hash"
LABEL_REFERENCE = LABEL_PREFIX + "reference"
LABEL_PLATFORM = LABEL_PREFIX + "platform"
LABEL_RESTART = LABEL_PREFIX + "restart-policy"

PREVIOUS_SUFFIX = "-previous"
NEXT_SUFFIX = "-next"
OLDER_SUFFIX = "-older"
RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")


class RolloutError(ValueError):
    """Options that cannot make a container, or state that cannot be read; the message says what to change."""


def previous_name(name: str) -> str:
    return name + PREVIOUS_SUFFIX


def next_name(name: str) -> str:
    return name + NEXT_SUFFIX


def older_name(name: str) -> str:
    """Where the kept previous container waits during a swap, until the new one is healthy."""
    return name + OLDER_SUFFIX


# --------------------------------------------------------------------------- desired configuration

_PORT_RE = re.compile(
    r"^(?:(?P<ip>\[[0-9a-fA-F:.]+\]|\d{1,3}(?:\.\d{1,3}){3}):)?(?:(?P<host>\d{1,5})?:)?(?P<container>\d{1,5})(?:/(?P<proto>tcp|udp|sctp))?$"
)
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_ENV_NAME_RE = re.compile(r"^[^=\s]+$")


def _port_number(text: str, spec: str) -> int:
    number = int(text)
    if not 1 <= number <= 65535:
        raise RolloutError(f"ports: {spec!r} has port {number}, outside 1-65535")
    return number


def parse_port(spec) -> dict:
    """``[ip:][host:]container[/proto]`` -> ``{container: "80/tcp", host_ip, host_port}``.

    ``8080:80``, ``127.0.0.1:8080:80``, ``8080:80/udp``, ``80`` and ``127.0.0.1::80`` (a host port the
    engine chooses), as ``docker run -p`` reads them.
    """
    text = str(spec).strip()
    match = _PORT_RE.match(text)
    if not match:
        raise RolloutError(
            f"ports: cannot read {spec!r}; write [host_ip:][host_port:]container_port[/tcp|udp|sctp], e.g. 8080:80"
        )
    container = _port_number(match.group("container"), text)
    host = match.group("host")
    ip = (match.group("ip") or "").strip("[]")
    return {
        "container": f"{container}/{match.group('proto') or 'tcp'}",
        "host_ip": ip,
        "host_port": str(_port_number(host, text)) if host else "",
    }


def parse_volume(spec) -> str:
    """``source:/target[:ro|rw]`` -> ``source:/target:mode`` (the mode made explicit)."""
    parts = str(spec).strip().split(":")
    if len(parts) == 2:
        parts.append("rw")
    if len(parts) != 3 or not parts[0] or not parts[1].startswith("/"):
        raise RolloutError(
            f"volumes: cannot read {spec!r}; write SOURCE:/container/path[:ro|rw] (SOURCE a host path or volume name)"
        )
    if parts[2] not in ("ro", "rw"):
        raise RolloutError(f"volumes: {spec!r} has mode {parts[2]!r}; use ro or rw")
    return ":".join(parts)


def parse_memory(value):
    """``64m``, ``1g``, ``512MiB``, ``1048576`` -> bytes (units are binary, as Docker reads them); None stays."""
    if value is None or value == "":
        return None
    match = _MEMORY_RE.match(str(value))
    if not match:
        raise RolloutError(f"memory: cannot read {value!r}; write a size such as 64m, 512MiB or 1g")
    number = int(float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()])
    if number < 6 * 1024**2:
        raise RolloutError(f"memory: {value!r} is below the engine's minimum of 6 MiB")
    return number


def parse_command(value):
    """A list is used as is; a string is split like a shell would (no shell runs); None keeps the image's."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise RolloutError(f"command: cannot split {value!r}: {exc}") from None
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    raise RolloutError(f"command: expected a list of arguments or a string, got {type(value).__name__}")


def _string_map(value, option: str) -> dict:
    out = {}
    for key, item in (value or {}).items():
        if isinstance(item, bool):
            raise RolloutError(
                f"{option}: the value of {key} is a boolean; quote it ('true' or 'yes') to mean a string"
            )
        if isinstance(item, (dict, list)):
            raise RolloutError(f"{option}: the value of {key} must be a string, not a {type(item).__name__}")
        out[str(key)] = "" if item is None else str(item)
    return out


def desired_config(params: dict) -> dict:
    """The container configuration the options ask for, normalised so that equal meaning gives equal data."""
    env = _string_map(params.get("env"), "env")
    for key in env:
        if not _ENV_NAME_RE.match(key):
            raise RolloutError(f"env: {key!r} is not a valid variable name")
    labels = _string_map(params.get("labels"), "labels")
    reserved = sorted(k for k in labels if k.startswith(LABEL_PREFIX))
    if reserved:
        raise RolloutError(f"labels: {', '.join(reserved)} belong to the module ({LABEL_PREFIX}*); choose other names")
    restart = params.get("restart_policy") or "unless-stopped"
    if restart not in RESTART_POLICIES:
        raise RolloutError(f"restart_policy: {restart!r} is not one of {', '.join(RESTART_POLICIES)}")
    retries = int(params.get("restart_retries") or 0)
    if retries and restart != "on-failure":
        raise RolloutError("restart_retries applies to restart_policy on-failure only")
    ports = sorted((parse_port(p) for p in params.get("ports") or []), key=lambda p: json.dumps(p, sort_keys=True))
    return {
        "command": parse_command(params.get("command")),
        "env": dict(sorted(env.items())),
        "ports": ports,
        "volumes": sorted(parse_volume(v) for v in params.get("volumes") or []),
        "restart_policy": {"Name": restart, "MaximumRetryCount": retries},
        "labels": dict(sorted(labels.items())),
        "memory": parse_memory(params.get("memory")),
        "log": {
            "type": params.get("log_driver") or "",
            "config": _string_map(params.get("log_options"), "log_options"),
        },
        "network_mode": params.get("network_mode") or "",
        "init": bool(params.get("init")),
    }


def config_hash(config: dict) -> str:
    """A stable digest of a :func:`desired_config` (what the label stores)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def deployment_labels(reference: str, digest: str, platform: str, chash: str, restart_policy: dict) -> dict:
    return {
        LABEL_DIGEST: digest,
        LABEL_CONFIG: chash,
        LABEL_REFERENCE: reference,
        LABEL_PLATFORM: platform,
        LABEL_RESTART: json.dumps(restart_policy, sort_keys=True),
    }


def create_kwargs(config: dict, labels: dict) -> dict:
    """Keyword arguments of the docker SDK's ``containers.create`` for a :func:`desired_config`."""
    ports: dict = {}
    for port in config["ports"]:
        if port["host_port"]:
            binding = (port["host_ip"], int(port["host_port"])) if port["host_ip"] else int(port["host_port"])
        else:
            binding = (port["host_ip"],) if port["host_ip"] else None
        if binding is None:
            ports.setdefault(port["container"], None)
        else:
            current = ports.get(port["container"])
            ports[port["container"]] = [*(current or []), binding]
    out = {
        "environment": dict(config["env"]),
        "labels": {**config["labels"], **labels},
        "restart_policy": dict(config["restart_policy"]),
    }
    if config["command"] is not None:
        out["command"] = list(config["command"])
    if ports:
        out["ports"] = ports
    if config["volumes"]:
        out["volumes"] = list(config["volumes"])
    if config["memory"]:
        out["mem_limit"] = config["memory"]
    if config["log"]["type"] or config["log"]["config"]:
        out["log_config"] = {"type": config["log"]["type"], "config": dict(config["log"]["config"])}
    if config["network_mode"]:
        out["network_mode"] = config["network_mode"]
    if config.get("init"):
        out["init"] = True
    return out


UPDATE_ORDERS = ("stop-first", "start-first")


def _host_port_text(host_ip: str, host_port: str) -> str:
    return f"{host_ip}:{host_port}" if host_ip else host_port


def fixed_host_ports(config: dict) -> list:
    """The ports of a :func:`desired_config` that publish a fixed host port, as ``[host_ip:]host_port``."""
    return [_host_port_text(p["host_ip"], p["host_port"]) for p in config["ports"] if p["host_port"]]


def bound_host_ports(attrs: dict) -> list:
    """The fixed host ports a container (its inspect data) publishes, as ``[host_ip:]host_port``."""
    bindings = (attrs.get("HostConfig") or {}).get("PortBindings") or {}
    out = []
    for container_port in sorted(bindings):
        for binding in bindings[container_port] or []:
            host_port = (binding or {}).get("HostPort") or ""
            if host_port and host_port != "0":
                out.append(_host_port_text(binding.get("HostIp") or "", host_port))
    return out


def start_first_conflict(ports: list, what: str) -> str:
    """Why ``start-first`` cannot run ``what`` beside the container it replaces; empty when it can."""
    if not ports:
        return ""
    return (
        f"update_order start-first runs {what} beside the container it replaces, but {what} publishes the fixed host"
        f" port(s) {', '.join(ports)}, which only one container can hold at a time. Publish no fixed host port"
        " (network_mode host with an application that shares its port through SO_REUSEPORT, or a reverse proxy"
        " that reaches the containers on their network), or use update_order stop-first"
    )


# --------------------------------------------------------------------------- what runs, and the plan


def deployment_of(attrs: dict) -> dict | None:
    """What a container (its inspect data) runs, read from its labels; None for no container."""
    if not attrs:
        return None
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    state = attrs.get("State") or {}
    restart = None
    if labels.get(LABEL_RESTART):
        try:
            restart = json.loads(labels[LABEL_RESTART])
        except ValueError:
            restart = None
    return {
        "id": attrs.get("Id", ""),
        "name": (attrs.get("Name") or "").lstrip("/"),
        "image": (attrs.get("Config") or {}).get("Image", ""),
        "digest": labels.get(LABEL_DIGEST, ""),
        "config_hash": labels.get(LABEL_CONFIG, ""),
        "reference": labels.get(LABEL_REFERENCE, ""),
        "platform": labels.get(LABEL_PLATFORM, ""),
        "restart_policy": restart,
        "managed": bool(labels.get(LABEL_DIGEST)),
        "running": bool(state.get("Running")),
        "status": state.get("Status", ""),
        "started_at": state.get("StartedAt", ""),
    }


def plan(current: dict | None, digest: str, chash: str) -> str:
    """``none`` (already runs it), ``start`` (same deployment, stopped), ``create`` (no container), ``replace``."""
    if current is None:
        return "create"
    if current["digest"] == digest and current["config_hash"] == chash:
        return "none" if current["running"] else "start"
    return "replace"


def image_name(repository: str, digest: str) -> str:
    """``registry/repository@digest``: what a container is created from (never a floating tag)."""
    return f"{repository}@{digest}"


def diff_view(deployment: dict | None, config: dict | None = None) -> dict:
    """The before/after of a diff: image reference, digest, platform and configuration hash."""
    if not deployment:
        return {}
    out = {
        "reference": deployment.get("reference", ""),
        "digest": deployment.get("digest", ""),
        "platform": deployment.get("platform", ""),
        "config_hash": deployment.get("config_hash", ""),
    }
    if config is not None:
        out["config"] = config
    return out


def no_platform_message(reference: str, platform: str, platforms: list) -> str:
    """The error for an index that has no image a ``platform`` host can run."""
    have = ", ".join(platforms) if platforms else "no platform at all"
    return (
        f"{reference} has no image for {platform} (this device's platform); the index has {have}."
        f" Build and push a {platform} variant, or deploy another reference"
    )


def unrunnable_message(requested: str, device: str, native: list, emulated: list) -> str:
    """The refusal of a ``requested`` platform that a ``device`` can neither run natively nor emulate."""
    runs = ", ".join(native) + " natively"
    runs += f" and {', '.join(emulated)} under QEMU emulation (binfmt_misc)" if emulated else ", and emulates nothing"
    return (
        f"this device cannot run {requested}: it runs {runs}, and no emulator for {requested} is registered, so its"
        f" containers would fail with 'exec format error'. Nothing was pulled or stopped. Drop the forced platform"
        f" (the device's own is {device}), or register emulation of {requested} on the device with"
        f" fleet.multiarch.binfmt (platforms: [{requested}])"
    )


_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")


def expected_digests(value) -> dict:
    """``expected_digests`` checked and keyed by normalised platform (``aarch64`` -> ``linux/arm64``)."""
    if not value:
        return {}
    out = {}
    for key, digest in dict(value).items():
        try:
            platform = parse_platform(str(key)).oci
        except PlatformError as exc:
            raise RolloutError(f"expected_digests: {exc}") from exc
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            raise RolloutError(
                f"expected_digests: {key} maps to {digest!r}, not a digest; give sha256:<64 hex digits> for each"
                " platform, as the release record's platforms list them"
            )
        out[platform] = digest
    return out


def unexpected_digest_message(reference: str, by_digest: bool, expected: dict, matched: str, digest: str) -> str:
    """The refusal of a ``digest`` (for the ``matched`` image platform) that ``expected`` does not list; "" if it
    does. ``expected`` comes from :func:`expected_digests`."""
    if not expected or expected.get(matched) == digest:
        return ""
    want = expected.get(matched)
    if want:
        found = f"{reference} holds {digest} for {matched}, but the release expects {want}"
    else:
        found = f"{reference} holds {digest} for {matched}, but the release has no image for {matched} (it lists"
        found += f" {', '.join(sorted(expected))})"
    if by_digest:
        why = (
            "The release record does not match the index it names. Nothing was pulled or stopped. Use the record"
            " that the release wrote for this index, or run the release again"
        )
    else:
        why = (
            "The tag was re-pointed since the release. Nothing was pulled or stopped. Run the release again to"
            " record what the tag holds now, or roll out the release by its digest (repository@index digest, as"
            " the rollout role does with a release record)"
        )
    return f"{found}. {why}"


# --------------------------------------------------------------------------- a deployment that did not start


def image_bytes(manifest: dict | None) -> int:
    """What pulling an image manifest downloads: its layers and its config, compressed, in bytes."""
    if not isinstance(manifest, dict):
        return 0
    blobs = [*(manifest.get("layers") or []), manifest.get("config") or {}]
    return sum(int(b.get("size") or 0) for b in blobs if isinstance(b, dict))


def megabytes(size: int) -> str:
    """``size`` bytes as Docker's progress shows them (MB of 10^6 bytes)."""
    return f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{size / 1e6:.1f} MB"


def not_deployed_message(error: str, *, running: str, timed_out: bool = False, no_space: dict | None = None) -> str:
    """The message of a deployment that failed before any container was touched (the pull, or the create).

    ``running`` says what runs and keeps running. ``timed_out``: the pull did not finish within pull_timeout.
    ``no_space``: the engine's file system is full - ``device`` (the engine's host name), ``path`` (its data root),
    ``free`` and ``needed`` (bytes; 0 when unknown).
    """
    msg = error.rstrip(".")
    if timed_out:
        msg += (
            ": the device's link to the registry is down or too slow for the image; check the link, or raise"
            " pull_timeout for slow links and large images"
        )
    elif no_space is not None:
        where = no_space.get("path") or "the engine's data root"
        msg += f": the disk of {no_space.get('device') or 'the device'} is full"
        if no_space.get("free") is not None:
            msg += f" ({where} has {megabytes(no_space['free'])} free)"
        if no_space.get("needed"):
            msg += (
                f"; the image needs {megabytes(no_space['needed'])} there for its download alone (its layers,"
                " compressed) and more to unpack them"
            )
        msg += (
            f". Free space in {where} on the device (for example `docker image prune` removes the images no"
            " container uses) and run again"
        )
    return f"{msg}. Nothing was stopped or replaced: {running}"


# --------------------------------------------------------------------------- logs


def log_tail(text: str, lines: int) -> list:
    """The last ``lines`` non-empty log lines, right-stripped."""
    out = [line.rstrip() for line in (text or "").splitlines() if line.strip()]
    return out[-lines:] if lines > 0 else []
