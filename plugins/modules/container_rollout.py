#!/usr/bin/python
# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_rollout
short_description: Replace one application container on a device with the image digest for its platform, health-checked
version_added: 0.1.0
description:
  - Runs one application container, named O(name), from the image manifest that the device's platform pulls. The
    image reference O(image) (a tag or a digest) is resolved in the registry to its index, and the index to the
    single per-platform manifest digest by containerd's matching rules (C(arm64) and C(arm64/v8) are one platform;
    an C(arm/v7) device may run an C(arm/v6) image; other variants match exactly). The container is created from
    C(repository@sha256:...), never from a floating tag.
  - What a container runs is stored in its labels (C(io.fleet-multiarch.digest), C(io.fleet-multiarch.config-hash),
    C(io.fleet-multiarch.reference), C(io.fleet-multiarch.platform)). When the running container already has the
    same digest and the same configuration, nothing is pulled, stopped or restarted.
  - Otherwise the new image is pulled while the old container keeps serving, the new container is created under
    the name C(<name>-next), and then the swap is done - while it still serves, the old container is renamed
    C(<name>-previous) and its restart policy set to C(no), and the new one takes the name O(name); then the old
    one is stopped (within O(stop_timeout)) and the new one starts. The new container must then
    become healthy within O(health_timeout), by the probes of O(health), else by the image's C(HEALTHCHECK),
    else by still running after O(running_seconds).
  - With O(update_order=start-first) the new container starts beside the old one, which keeps serving and is not
    touched until the new one is healthy; then the names move and the old one is stopped and kept as
    C(<name>-previous). Nothing goes without an answer, but both containers must be able to run at once (see
    O(update_order)).
  - When the new container fails to start or to become healthy, its last O(log_lines) log lines are kept, it is
    removed, the previous container gets its name back and is started and checked, and the task fails. In a play
    with C(max_fail_percentage) or C(serial) that stops the rollout of the fleet.
  - After a failed deployment the previous container kept before it is still kept, so O(state=rolled_back) still
    has a deployment to return to.
  - The previous container is kept (stopped, with restart policy C(no) so that a reboot does not start it beside
    the new one) for O(state=rolled_back), which swaps back to it on demand.
  - Each deployment, automatic rollback and rollback on demand is appended to a JSON history file on the device
    (O(history_file)), which keeps the last O(history_size) records.
  - Talks to the engine through the Engine API (the C(docker) Python SDK) and to the registry over HTTP; no Docker
    CLI is needed.
author:
  - fleet.multiarch contributors (@fleet-multiarch)
extends_documentation_fragment:
  - fleet.multiarch.registry
options:
  name:
    description:
      - The container's name. C(<name>-previous), C(<name>-next) and C(<name>-older) (during a swap) are used by the
        module too.
    type: str
    required: true
  image:
    description:
      - The image to run, with its registry host, by tag (C(127.0.0.1:5000/fleet/app:1.0)) or digest
        (C(...@sha256:...)). An index is resolved to the entry for O(platform); a single image must match it.
      - Required with O(state=started).
    type: str
  state:
    description:
      - V(started) runs O(image) with the given configuration (deploying it when it differs from what runs).
      - V(rolled_back) swaps back to the container kept as C(<name>-previous); the container it replaces becomes
        C(<name>-previous) in turn. Running it again changes nothing while the history's last record for O(name) is
        that rollback. Configuration options are ignored.
    type: str
    choices: [started, rolled_back]
    default: started
  platform:
    description:
      - The platform to run (any spelling, for example C(linux/arm/v7), C(armhf), C(aarch64)).
      - Defaults to the device's own platform, decided as M(fleet.multiarch.device_facts) does it, with the
        architecture of the engine at O(docker_host).
      - Another platform runs only when the device can emulate it (QEMU registered with M(fleet.multiarch.binfmt)).
    type: str
  username:
    description:
      - User name for the registry of O(image), for HTTP Basic authentication or the Bearer token server. It is
        used to resolve the digest and passed to the engine for the pull.
      - When O(username) and O(password) are not given, credentials come from the Docker config, else the registry is
        used anonymously.
    type: str
  docker_host:
    description:
      - The engine's address, for example C(unix:///var/run/docker.sock) or C(tcp://127.0.0.1:2375).
      - Defaults to E(DOCKER_HOST), else C(unix:///var/run/docker.sock).
    type: str
  command:
    description:
      - The command, instead of the image's C(CMD). A list is used as is; a string is split as a shell would split
        it, but no shell runs.
    type: raw
  env:
    description:
      - Environment variables. Values are strings; quote booleans (C("true")).
    type: dict
    default: {}
  ports:
    description:
      - Published ports, each C([host_ip:][host_port:]container_port[/tcp|udp|sctp]), for example C(8080:80) or
        C(127.0.0.1:8080:80/tcp). Without a host port the engine chooses one.
      - A host port is held by one container at a time, so the new container starts only after the old one stopped;
        a fixed host port cannot be used with O(update_order=start-first).
    type: list
    elements: str
    default: []
  volumes:
    description:
      - Bind mounts and named volumes, each C(SOURCE:/container/path[:ro|rw]).
    type: list
    elements: str
    default: []
  restart_policy:
    description:
      - The engine's restart policy for the container.
    type: str
    choices: ["no", always, on-failure, unless-stopped]
    default: unless-stopped
  restart_retries:
    description:
      - With O(restart_policy=on-failure), the most restarts; V(0) means no limit.
    type: int
    default: 0
  labels:
    description:
      - Labels of the container. Names starting with C(io.fleet-multiarch.) belong to the module.
    type: dict
    default: {}
  memory:
    description:
      - Memory limit, for example C(64m), C(512MiB), C(1g) (binary units, as Docker reads them).
    type: str
  log_driver:
    description:
      - The logging driver (C(json-file), C(local), C(journald), ...). Defaults to the engine's.
      - O(state=rolled_back) and automatic rollback read the last O(log_lines) lines, which needs a driver the
        engine can read back (C(json-file), C(local), C(journald)).
    type: str
  log_options:
    description:
      - Options of the logging driver, for example C(max-size) and C(max-file) of the C(json-file) driver.
    type: dict
    default: {}
  network_mode:
    description:
      - The network (C(bridge), C(host), C(none), or the name of a user-defined network). Defaults to the engine's.
    type: str
  init:
    description:
      - Run the engine's init (C(docker-init), tini) as PID 1, which forwards signals and reaps processes. A
        command that ignores C(SIGTERM) as PID 1 otherwise makes every stop last O(stop_timeout).
    type: bool
    default: false
  health:
    description:
      - Probes that must all pass before the new container counts as healthy. Without them the image's
        C(HEALTHCHECK) decides (an image check with a long C(--interval) makes the wait that long); without
        either the container must still run after O(running_seconds).
      - An image C(HEALTHCHECK) that reports C(unhealthy) fails the deployment even when probes are given.
    type: dict
    suboptions:
      http:
        description:
          - An HTTP GET, from the device, that must answer with one of O(health.http.status).
        type: dict
        suboptions:
          url:
            description:
              - The URL, for example C(http://127.0.0.1:8080/health).
            type: str
            required: true
          status:
            description:
              - Accepted status codes.
            type: list
            elements: int
            default: [200]
      tcp:
        description:
          - A TCP connection, from the device, that must be accepted.
        type: dict
        suboptions:
          host:
            description:
              - The address to connect to.
            type: str
            default: 127.0.0.1
          port:
            description:
              - The port.
            type: int
            required: true
      command:
        description:
          - A command (argv list) run inside the container that must exit 0.
        type: list
        elements: str
  health_timeout:
    description:
      - Seconds the new container has to become healthy (from its start).
    type: int
    default: 60
  health_interval:
    description:
      - Seconds between two health observations.
    type: float
    default: 0.25
  running_seconds:
    description:
      - Without probes and without an image C(HEALTHCHECK), how long the new container must keep running.
    type: float
    default: 2
  stop_timeout:
    description:
      - Seconds the old container has to stop after C(SIGTERM) before it is killed. Short means short downtime.
    type: int
    default: 3
  update_order:
    description:
      - How the old container makes way for the new one (the names of Docker Swarm's C(--update-order)).
      - V(stop-first) stops the old container, then starts the new one. The application does not answer for the
        engine's stop and start, and the new one may use the same fixed host ports (O(ports)).
      - V(start-first) starts the new container while the old one still runs, and stops the old one only once the
        new one is healthy; a new container that fails is removed and the old one was never stopped. Both run at
        once for a while, so the new container may not publish a fixed host port (the task fails before it
        changes anything). What makes it serve the same clients is up to the application, for example
        O(network_mode=host) with a server that opens its port with C(SO_REUSEPORT) (both then accept
        connections), or a reverse proxy that reaches the containers on a user-defined network.
      - With V(start-first), a probe that connects to a shared port (O(health.http), O(health.tcp)) may be
        answered by the old container; check the new one with O(health.command) (it runs inside the new
        container) or the image's C(HEALTHCHECK).
      - O(state=rolled_back) follows the same order.
    type: str
    choices: [stop-first, start-first]
    default: stop-first
  log_lines:
    description:
      - How many of the failed container's last log lines the failure message and RV(logs) carry.
    type: int
    default: 20
  history_file:
    description:
      - The JSON file on the device that keeps the deployment history.
      - Defaults to C(/var/lib/fleet-multiarch/rollout/<name>.json).
    type: path
  history_size:
    description:
      - How many records the history keeps (the oldest go first).
    type: int
    default: 20
attributes:
  check_mode:
    support: full
    description: Resolves the digest and reads the running container, reports C(changed) and the diff; pulls, creates
      and stops nothing.
  diff_mode:
    support: full
    description: Shows the reference, digest, platform and configuration before and after.
  idempotent:
    support: full
    description: Nothing is pulled or restarted when the container already runs the digest with the configuration.
  platform:
    platforms: posix
    support: full
    description: Runs on the device (or wherever O(docker_host) is reachable); any architecture.
requirements:
  - docker (the Python SDK for the Docker Engine API), 5.0 or newer
  - requests
notes:
  - The registry is reached twice - by the module to resolve the digest and by the engine to pull it; both must
    trust it (for the engine, C(/etc/docker/certs.d) or C(insecure-registries)).
  - The module measures the swap itself (RV(swap_seconds), from stopping the old container to the new one
    running); what a client sees also includes the time the application needs to listen (RV(health)).
seealso:
  - module: fleet.multiarch.device_facts
  - module: fleet.multiarch.manifest_info
"""

EXAMPLES = r"""
# In a play with "serial: 10%" and "max_fail_percentage: 0", a failed device stops the rollout of the fleet.
- name: Run the release for this device's platform
  fleet.multiarch.container_rollout:
    name: sensor-api
    image: registry.example.net:5000/fleet/sensor-api:1.4
    ports: ["8080:8080"]
    env:
      LOG_LEVEL: info
    volumes: ["/srv/sensor:/data"]
    memory: 128m
    log_driver: local
    log_options:
      max-size: 5m
    health:
      http:
        url: http://127.0.0.1:8080/health
    health_timeout: 90
  register: rollout

- name: Report what changed
  ansible.builtin.debug:
    msg: "{{ rollout.platform }}: {{ rollout.digest_before }} -> {{ rollout.digest_after }} in {{ rollout.seconds }} s"

- name: Start the new version beside the old one, which stops only once the new one is healthy
  fleet.multiarch.container_rollout:
    name: gateway
    image: registry.example.net:5000/fleet/gateway:2.0
    network_mode: host  # the gateway opens its port with SO_REUSEPORT, so both versions can listen
    update_order: start-first
    health:
      command: [/gateway, --check]  # runs inside the new container

- name: Go back to the previous deployment
  fleet.multiarch.container_rollout:
    name: sensor-api
    state: rolled_back

- name: Run the 32-bit variant on purpose (a Pi 4 under a 32-bit OS, or a test under QEMU)
  fleet.multiarch.container_rollout:
    name: probe
    image: 127.0.0.1:5000/library/busybox:latest
    platform: linux/arm/v7
    command: [httpd, -f, -p, "8080"]
    init: true
    health:
      command: [wget, -q, -O, /dev/null, "http://127.0.0.1:8080/etc/hostname"]
"""

RETURN = r"""
action:
  description:
    - What was done (or would be, in check mode) - V(none), V(create) (no container before), V(replace), V(start) (the
      same deployment was stopped), V(rolled_back) (on demand).
  returned: always
  type: str
  sample: replace
container:
  description: The container called O(name) after the task.
  returned: always
  type: dict
  contains:
    name:
      description: Its name.
      type: str
    id:
      description: Its id; empty in check mode for a container still to be created.
      type: str
image:
  description: What the container is created from, C(repository@sha256:...).
  returned: always
  type: str
  sample: 127.0.0.1:5000/fleet/app@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
reference:
  description: The reference O(image) as resolved (with C(latest) made explicit).
  returned: always
  type: str
platform:
  description: The device platform the digest was chosen for.
  returned: always
  type: str
  sample: linux/arm/v7
platform_match:
  description: The platform of the image chosen (an C(arm/v7) device may get C(linux/arm/v6)).
  returned: with O(state=started)
  type: str
digest_before:
  description:
    - The digest the container ran before the task; empty when there was none or it was not deployed by this module.
  returned: always
  type: str
digest_after:
  description: The digest the container runs after the task (after a failed deployment, the restored one).
  returned: always
  type: str
config_hash:
  description: The digest of the normalised configuration, as stored in the container's label.
  returned: with O(state=started)
  type: str
previous:
  description: The container kept for rollback (C(<name>-previous)) after the task; V(null) when none.
  returned: always
  type: dict
  contains:
    name:
      description: Its name.
      type: str
    digest:
      description: The digest it runs.
      type: str
health:
  description: How the new (or restored) container's health was decided; V(null) when nothing was started.
  returned: always
  type: dict
  contains:
    status:
      description: V(healthy), V(unhealthy) or V(timeout).
      type: str
    method:
      description:
        - What decided - the probes (V(http), V(tcp), V(command), joined with C(+)), V(healthcheck) or V(running).
      type: str
    detail:
      description: The last observation.
      type: str
    seconds:
      description: Seconds from the start to the decision.
      type: float
    checks:
      description: How many observations were made.
      type: int
rolled_back:
  description: Whether the task put the previous container back (automatically after a failure, or on demand).
  returned: always
  type: bool
seconds:
  description: Seconds the task took in all (resolve, pull, swap, health).
  returned: always
  type: float
pull_seconds:
  description: Seconds the pull took (0 when the image was present or nothing was pulled).
  returned: always
  type: float
swap_seconds:
  description:
    - Seconds from stopping the old container to the new one running; 0 when nothing was swapped.
    - With O(update_order=start-first), seconds from the new container healthy to the old one stopped (both
      containers run during that time).
  returned: always
  type: float
logs:
  description: The failed container's last O(log_lines) log lines.
  returned: on failure
  type: list
  elements: str
history_file:
  description: The history file.
  returned: always
  type: str
"""

import datetime
import json
import os
import socket
import tempfile
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.fleet.multiarch.plugins.module_utils._device import DeviceReader, gather
from ansible_collections.fleet.multiarch.plugins.module_utils._engine import (
    DOCKER_IMPORT_ERROR,
    HAS_DOCKER,
    Engine,
    EngineError,
    docker_host,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._manifest import ManifestError, describe, match_platform
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import PlatformError, parse_platform
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import (
    ClientPool,
    RegistryError,
    parse_reference,
    registry_argument_spec,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._rollout import (
    UPDATE_ORDERS,
    RolloutError,
    add_record,
    bound_host_ports,
    combine_checks,
    command_probe_state,
    config_hash,
    container_state,
    create_kwargs,
    deployment_labels,
    deployment_of,
    desired_config,
    diff_view,
    docker_health,
    fixed_host_ports,
    health_method,
    http_status_ok,
    image_name,
    last_record,
    log_tail,
    new_record,
    next_name,
    no_platform_message,
    older_name,
    parse_history,
    plan,
    previous_name,
    start_first_conflict,
    wait_healthy,
)

if HAS_DOCKER:
    import requests  # a dependency of the Docker SDK (_engine imports both); the HTTP health check uses it

HISTORY_DIR = "/var/lib/fleet-multiarch/rollout"
PROBE_TIMEOUT = 2.0


class RolloutFailed(Exception):
    """The deployment failed (and what could be restored was); ``result`` is what the task reports."""

    def __init__(self, msg: str, result: dict):
        super().__init__(msg)
        self.result = result


class EngineDeviceReader(DeviceReader):
    """The device, with the engine's architecture read through the Engine API instead of the Docker CLI."""

    def __init__(self, module, engine: Engine):
        super().__init__(module)
        self.engine = engine

    def docker_version(self):
        return self.engine.version_json()


def resolve(client, ref, platform: str) -> tuple:
    """``(digest, matched platform)`` of the manifest a ``platform`` host pulls for ``ref``."""
    fetched, entries = describe(client, ref)
    if fetched is None:
        raise RolloutError(
            f"{ref} does not exist in the registry; check the repository and tag, and that it was pushed"
        )
    chosen = match_platform(entries, platform)
    if chosen is None:
        platforms = [e.platform_str for e in entries if not e.attestation]
        raise RolloutError(no_platform_message(str(ref), platform, platforms))
    return chosen.digest, chosen.platform_str


def engine_failure(exc: EngineError) -> dict:
    """The health of a container that the engine failed to start (or rename, or stop)."""
    return {"status": "unhealthy", "detail": str(exc), "seconds": 0.0, "checks": 0, "method": "running"}


def now_text() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Rollout:
    """Deploys and rolls back one container through ``engine``; the decisions are ``_rollout``'s."""

    def __init__(self, module, engine: Engine, clock=time.monotonic, sleep=time.sleep):
        self.module = module
        self.params = module.params
        self.engine = engine
        self.clock = clock
        self.sleep = sleep
        self.name = self.params["name"]
        self.start_first = self.params.get("update_order") == "start-first"
        self.history_path = self.params.get("history_file") or os.path.join(HISTORY_DIR, f"{self.name}.json")
        self.started = clock()
        self.result = {
            "changed": False,
            "action": "none",
            "container": {"name": self.name, "id": ""},
            "image": "",
            "reference": "",
            "platform": "",
            "digest_before": "",
            "digest_after": "",
            "previous": None,
            "health": None,
            "rolled_back": False,
            "seconds": 0.0,
            "pull_seconds": 0.0,
            "swap_seconds": 0.0,
            "history_file": self.history_path,
        }

    # ---- helpers

    def finish(self) -> dict:
        self.result["seconds"] = round(self.clock() - self.started, 3)
        return self.result

    def device_platform(self) -> str:
        if self.params.get("platform"):
            return parse_platform(self.params["platform"]).oci
        return gather(EngineDeviceReader(self.module, self.engine))["platform"]

    def auth_config(self):
        if self.params.get("username") and self.params.get("password"):
            return {"username": self.params["username"], "password": self.params["password"]}
        return None

    def probes(self, container) -> list:
        health = self.params.get("health") or {}
        out = []
        if health.get("http"):
            out.append(self._http_probe(health["http"]))
        if health.get("tcp"):
            out.append(self._tcp_probe(health["tcp"]))
        if health.get("command"):
            out.append(self._command_probe(container, health["command"]))
        return out

    @staticmethod
    def _http_probe(spec: dict):
        url, expected = spec["url"], spec.get("status")

        def probe():
            try:
                resp = requests.get(url, timeout=PROBE_TIMEOUT, allow_redirects=False)
            except requests.exceptions.RequestException as exc:
                return "fail", f"GET {url}: {exc.__class__.__name__}"
            if http_status_ok(resp.status_code, expected):
                return "pass", f"GET {url}: HTTP {resp.status_code}"
            return "fail", f"GET {url}: HTTP {resp.status_code}, expected {expected}"

        return probe

    @staticmethod
    def _tcp_probe(spec: dict):
        host, port = spec.get("host") or "127.0.0.1", spec["port"]

        def probe():
            try:
                with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
                    return "pass", f"TCP {host}:{port} accepted"
            except OSError as exc:
                return "fail", f"TCP {host}:{port}: {exc}"

        return probe

    def _command_probe(self, container, argv: list):
        def probe():
            try:
                code, output = self.engine.exec_run(container, argv)
            except EngineError as exc:
                return "fail", str(exc)
            last = output.strip().splitlines()[-1:] if output else []
            return command_probe_state(code), f"{argv!r} exited {code}" + (f": {last[0]}" if last else "")

        return probe

    def wait_health(self, container) -> dict:
        """Observe ``container`` until it is healthy or not, within ``health_timeout``."""
        started = self.clock()
        probes = self.probes(container)
        attrs_box = {}

        def container_check():
            attrs_box["attrs"] = self.engine.reload(container)
            return container_state(attrs_box["attrs"])

        def health_check():
            return docker_health(attrs_box.get("attrs") or {})

        def check():
            return combine_checks(
                container_check,
                probes,
                health_check,
                grace=self.params["running_seconds"],
                clock=self.clock,
                started=started,
            )

        outcome = wait_healthy(
            check, self.params["health_timeout"], self.params["health_interval"], self.clock, self.sleep
        )
        has_hc = bool(docker_health(attrs_box.get("attrs") or {})[0])
        outcome["method"] = health_method(self.params.get("health"), has_hc)
        return outcome

    def start_and_check(self, container) -> dict:
        """Start ``container`` and observe it until it is healthy or not; an engine error is unhealthy."""
        try:
            self.engine.start(container)
            return self.wait_health(container)
        except EngineError as exc:
            return engine_failure(exc)

    def drop(self, name: str) -> None:
        """Remove the container called ``name``, if there is one (a leftover of an interrupted run)."""
        stale = self.engine.container(name)
        if stale is not None:
            self.engine.remove(stale)

    def restart_policy_of(self, attrs: dict) -> dict:
        policy = (attrs.get("HostConfig") or {}).get("RestartPolicy") or {}
        return {"Name": policy.get("Name") or "no", "MaximumRetryCount": policy.get("MaximumRetryCount") or 0}

    def record(self, record: dict) -> None:
        """Append to the history file (atomically); a file that cannot be written is a warning, not a failure."""
        path = self.history_path
        try:
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
            except FileNotFoundError:
                text = ""
            history = add_record(parse_history(text, path), record, self.params["history_size"])
            directory = os.path.dirname(path) or "."
            os.makedirs(directory, mode=0o755, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".rollout-", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(history, handle, indent=2)
                    handle.write("\n")
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except (OSError, RolloutError) as exc:
            self.module.warn(f"the deployment history could not be written to {path}: {exc}")

    def read_history(self) -> dict:
        try:
            with open(self.history_path, encoding="utf-8") as handle:
                return parse_history(handle.read(), self.history_path)
        except FileNotFoundError:
            return parse_history("", self.history_path)
        except OSError as exc:
            raise RolloutError(f"cannot read the history file {self.history_path}: {exc}") from None

    def previous_info(self) -> dict | None:
        prev = self.engine.container(previous_name(self.name))
        if prev is None:
            return None
        dep = deployment_of(prev.attrs)
        return {"name": dep["name"], "digest": dep["digest"]}

    # ---- state: started

    def deploy(self) -> dict:
        params = self.params
        ref = parse_reference(params["image"])
        platform = self.device_platform()
        config = desired_config(params)
        if self.start_first:
            conflict = start_first_conflict(fixed_host_ports(config), "the new container")
            if conflict:
                raise RolloutError(conflict)
        chash = config_hash(config)
        client = ClientPool(params, ref.registry).get(ref.registry)
        digest, matched = resolve(client, ref, platform)
        image = image_name(ref.name, digest)

        current = self.engine.container(self.name)
        cur = deployment_of(current.attrs) if current is not None else None
        action = plan(cur, digest, chash)
        wanted = {"reference": str(ref), "digest": digest, "platform": platform, "config_hash": chash}
        self.result.update(
            action=action,
            image=image,
            reference=str(ref),
            platform=platform,
            platform_match=matched,
            config_hash=chash,
            digest_before=cur["digest"] if cur else "",
            digest_after=digest if action != "none" or not cur else cur["digest"],
            previous=self.previous_info(),
        )
        if cur:
            self.result["container"]["id"] = cur["id"]
        if self.module._diff:
            self.result["diff"] = {"before": diff_view(cur), "after": diff_view(wanted, config)}
        if action == "none" or self.module.check_mode:
            self.result["changed"] = action != "none"
            return self.finish()

        labels = deployment_labels(str(ref), digest, platform, chash, config["restart_policy"])
        self.result["changed"] = True
        begin = self.clock()
        if not self.engine.has_image(image):
            self.engine.pull(ref.name, digest, platform, self.auth_config())
        self.result["pull_seconds"] = round(self.clock() - begin, 3)
        record = {"reference": str(ref), "digest": digest, "platform": platform, "config_hash": chash}
        if action == "start":
            self.start_again(current, record)
        elif self.start_first and current is not None:
            self.swap_start_first(current, cur, image, create_kwargs(config, labels), record)
        else:
            self.swap(current, cur, image, create_kwargs(config, labels), record)
        return self.finish()

    def start_again(self, container, record: dict) -> None:
        """The same deployment, stopped: start it and check it."""
        health = self.start_and_check(container)
        self.result["health"] = health
        if health["status"] != "healthy":
            logs = log_tail(self.engine.logs(container, self.params["log_lines"]), self.params["log_lines"])
            self.engine.stop(container, self.params["stop_timeout"])
            self.write(record, "start", "failed", health)
            self.result.update(logs=logs, digest_after="")
            raise RolloutFailed(self.failure_message("starting", record, health, logs, None), self.result)
        self.write(record, "start", "ok", health)

    def swap(self, old, cur: dict | None, image: str, kwargs: dict, record: dict) -> None:
        """Create the new container, stop and rename the old one, start the new one, check; undo on failure."""
        engine, params = self.engine, self.params
        self.drop(next_name(self.name))
        new = engine.create(image, next_name(self.name), kwargs)
        old_policy = None
        kept = None
        if old is not None:
            old_policy = self.restart_policy_of(old.attrs)
            record["previous_restart_policy"] = old_policy
            # The deployment kept until now waits aside: it is dropped only once the new one is healthy.
            kept = engine.container(previous_name(self.name))
            if kept is not None:
                self.drop(older_name(self.name))
                engine.rename(kept, older_name(self.name))
            engine.rename(old, previous_name(self.name))
        try:
            # Before the window: the old container still answers while it loses its restart policy (so the engine
            # cannot start it again over the new one) and the new one takes the name. The window is stop + start.
            if old is not None:
                engine.set_restart_policy(old, {"Name": "no"})
            engine.rename(new, self.name)
            begin = self.clock()
            if old is not None:
                engine.stop(old, params["stop_timeout"])
            engine.start(new)
            self.result["swap_seconds"] = round(self.clock() - begin, 3)
            health = self.wait_health(new)
        except EngineError as exc:
            health = engine_failure(exc)
        self.result["health"] = health
        self.result["container"]["id"] = new.id
        if health["status"] == "healthy":
            if kept is not None:
                engine.remove(kept)
            self.result["previous"] = self.previous_info()
            self.write(record, self.result["action"], "ok", health, previous=cur)
            return
        # Failure: keep the logs, remove the new container, give the old one its name back.
        logs = log_tail(engine.logs(new, params["log_lines"]), params["log_lines"])
        engine.remove(new)
        self.result["logs"] = logs
        restored = None
        if old is not None:
            restored = self.promote(old, old_policy)
            if kept is not None:
                engine.rename(kept, previous_name(self.name))
            self.result.update(
                rolled_back=True,
                digest_after=cur["digest"] if cur else "",
                container={"name": self.name, "id": old.id},
                previous=self.previous_info(),
            )
        else:
            self.result.update(digest_after="", container={"name": self.name, "id": ""})
        self.write(record, self.result["action"], "rolled_back" if old is not None else "failed", health, previous=cur)
        raise RolloutFailed(self.failure_message("deploying", record, health, logs, restored), self.result)

    def swap_start_first(self, old, cur: dict | None, image: str, kwargs: dict, record: dict) -> None:
        """Create and start the new container beside the old one; only once it is healthy, stop the old one.

        The old container is not touched until then, so a new version that fails leaves it serving as it was.
        """
        engine, params = self.engine, self.params
        self.drop(next_name(self.name))
        new = engine.create(image, next_name(self.name), kwargs)
        health = self.start_and_check(new)
        self.result["health"] = health
        if health["status"] != "healthy":
            logs = log_tail(engine.logs(new, params["log_lines"]), params["log_lines"])
            engine.remove(new)
            self.result.update(logs=logs, digest_after=cur["digest"] if cur else "")
            self.write(record, self.result["action"], "failed", health, previous=cur)
            raise RolloutFailed(self.failure_message("deploying", record, health, logs, None, kept=old), self.result)
        # Hand over: both serve while the names move; then the old one stops and is kept for rollback.
        old_policy = self.restart_policy_of(old.attrs)
        record["previous_restart_policy"] = old_policy
        begin = self.clock()
        self.drop(previous_name(self.name))
        engine.set_restart_policy(old, {"Name": "no"})
        engine.rename(old, previous_name(self.name))
        engine.rename(new, self.name)
        engine.stop(old, params["stop_timeout"])
        self.result["swap_seconds"] = round(self.clock() - begin, 3)
        self.result["container"]["id"] = new.id
        self.result["previous"] = self.previous_info()
        self.write(record, self.result["action"], "ok", health, previous=cur)

    def promote(self, container, policy: dict | None) -> dict:
        """Give ``container`` the name back, restore its restart policy, start it, check it: its health."""
        try:
            self.engine.rename(container, self.name)
            if policy:
                self.engine.set_restart_policy(container, policy)
            self.engine.start(container)
            return self.wait_health(container)
        except EngineError as exc:
            return engine_failure(exc)

    def failure_message(
        self, doing: str, record: dict, health: dict, logs: list, restored: dict | None, *, kept=None
    ) -> str:
        what = {"healthy": "became healthy", "timeout": "did not become healthy in time"}.get(
            health["status"], "failed"
        )
        msg = (
            f"{doing} {self.name} from {record['reference']} ({record['digest']} for {record['platform']}) failed:"
            f" the new container {what} ({health['detail']})."
        )
        if kept is not None:
            state = "still runs" if deployment_of(kept.attrs)["running"] else "is as it was (stopped)"
            msg += f" The container that ran before was not stopped (update_order start-first) and {state}."
        elif restored is None:
            msg += " There was no previous container to restore."
        elif restored["status"] == "healthy":
            before = self.result["digest_after"] or "not deployed by this module"
            msg += f" Rolled back: the previous container ({before}) runs again and is healthy."
        else:
            msg += f" Rolled back, but the previous container is not healthy either ({restored['detail']})."
        if logs:
            msg += f" Last {len(logs)} log lines of the new container:\n" + "\n".join(logs)
        else:
            msg += " The new container logged nothing."
        return msg

    def write(self, record: dict, action: str, result: str, health: dict, *, detail: str = "", previous=None) -> None:
        entry = new_record(
            when=now_text(),
            name=self.name,
            action=action,
            result=result,
            reference=record.get("reference", ""),
            digest=record.get("digest", ""),
            previous_digest=(previous or {}).get("digest", ""),
            platform=record.get("platform", ""),
            config_hash=record.get("config_hash", ""),
            health=health,
            seconds=self.clock() - self.started,
            detail=detail or (health or {}).get("detail", ""),
        )
        if record.get("previous_restart_policy"):
            entry["previous_restart_policy"] = record["previous_restart_policy"]
        self.record(entry)

    # ---- state: rolled_back

    def rollback(self) -> dict:
        engine = self.engine
        current = engine.container(self.name)
        prev = engine.container(previous_name(self.name))
        cur = deployment_of(current.attrs) if current is not None else None
        self.result.update(
            action="rolled_back",
            digest_before=cur["digest"] if cur else "",
            digest_after=cur["digest"] if cur else "",
            reference=cur["reference"] if cur else "",
            platform=cur["platform"] if cur else "",
            previous=self.previous_info(),
        )
        if cur:
            self.result["container"]["id"] = cur["id"]
            self.result["image"] = cur["image"]
        history = self.read_history()
        last = last_record(history, self.name)
        done = (
            last is not None
            and last.get("action") == "rolled_back"
            and last.get("result") == "ok"
            and cur is not None
            and cur["running"]
            and last.get("digest") == cur["digest"]
        )
        if done:
            self.result["action"] = "none"
            return self.finish()
        if prev is None:
            raise RolloutError(
                f"no previous deployment of {self.name} is kept (no container {previous_name(self.name)}), so there is"
                " nothing to roll back to; deploy the wanted image with state started instead"
            )
        target = deployment_of(prev.attrs)
        if self.start_first and current is not None:
            conflict = start_first_conflict(bound_host_ports(prev.attrs), f"the kept container {prev.name}")
            if conflict:
                raise RolloutError(conflict)
        self.result.update(
            changed=True,
            digest_after=target["digest"],
            reference=target["reference"],
            platform=target["platform"],
            image=target["image"],
        )
        if self.module._diff:
            self.result["diff"] = {"before": diff_view(cur), "after": diff_view(target)}
        if self.module.check_mode:
            return self.finish()
        policy = target["restart_policy"] or (last or {}).get("previous_restart_policy")
        record = {"reference": target["reference"], "digest": target["digest"], "platform": target["platform"]}
        record["config_hash"] = target["config_hash"]
        if self.start_first and current is not None:
            return self.rollback_start_first(current, cur, prev, policy, record)
        begin = self.clock()
        swap_name = next_name(self.name)
        if current is not None:
            engine.rename(current, swap_name)
            engine.stop(current, self.params["stop_timeout"])
            engine.set_restart_policy(current, {"Name": "no"})
        health = self.promote(prev, policy)
        self.result["swap_seconds"] = round(self.clock() - begin, 3)
        if current is not None:
            engine.rename(current, previous_name(self.name))
        self.result.update(health=health, rolled_back=True, container={"name": self.name, "id": prev.id})
        self.result["previous"] = self.previous_info()
        if health["status"] != "healthy":
            logs = log_tail(engine.logs(prev, self.params["log_lines"]), self.params["log_lines"])
            self.result["logs"] = logs
            self.write(record, "rolled_back", "failed", health, previous=cur)
            msg = (
                f"rolling {self.name} back to {target['digest'] or prev.name} failed: the container is"
                f" {health['status']} ({health['detail']}). {previous_name(self.name)} holds what ran before."
            )
            if logs:
                msg += f" Last {len(logs)} log lines:\n" + "\n".join(logs)
            raise RolloutFailed(msg, self.result)
        self.write(record, "rolled_back", "ok", health, previous=cur)
        return self.finish()

    def rollback_start_first(self, current, cur: dict, prev, policy: dict | None, record: dict) -> dict:
        """Start the kept container beside the current one; only once it is healthy, stop the current one."""
        engine, params = self.engine, self.params
        self.drop(next_name(self.name))
        health = self.start_and_check(prev)
        self.result["health"] = health
        if health["status"] != "healthy":
            logs = log_tail(engine.logs(prev, params["log_lines"]), params["log_lines"])
            engine.stop(prev, params["stop_timeout"])
            self.result.update(logs=logs, digest_after=cur["digest"])
            self.write(record, "rolled_back", "failed", health, previous=cur)
            raise RolloutFailed(
                f"rolling {self.name} back to {record['digest'] or prev.name} failed: {prev.name} is"
                f" {health['status']} ({health['detail']}) and was stopped again; {self.name} was not stopped"
                " (update_order start-first) and still runs."
                + (f" Last {len(logs)} log lines:\n" + "\n".join(logs) if logs else ""),
                self.result,
            )
        begin = self.clock()
        engine.set_restart_policy(current, {"Name": "no"})
        engine.rename(current, next_name(self.name))
        engine.rename(prev, self.name)
        if policy:
            engine.set_restart_policy(prev, policy)
        engine.stop(current, params["stop_timeout"])
        engine.rename(current, previous_name(self.name))
        self.result["swap_seconds"] = round(self.clock() - begin, 3)
        self.result.update(rolled_back=True, container={"name": self.name, "id": prev.id})
        self.result["previous"] = self.previous_info()
        self.write(record, "rolled_back", "ok", health, previous=cur)
        return self.finish()


def main():
    argument_spec = {
        "name": {"type": "str", "required": True},
        "image": {"type": "str"},
        "state": {"type": "str", "choices": ["started", "rolled_back"], "default": "started"},
        "platform": {"type": "str"},
        "docker_host": {"type": "str"},
        "command": {"type": "raw"},
        "env": {"type": "dict", "default": {}},
        "ports": {"type": "list", "elements": "str", "default": []},
        "volumes": {"type": "list", "elements": "str", "default": []},
        "restart_policy": {
            "type": "str",
            "choices": ["no", "always", "on-failure", "unless-stopped"],
            "default": "unless-stopped",
        },
        "restart_retries": {"type": "int", "default": 0},
        "labels": {"type": "dict", "default": {}},
        "memory": {"type": "str"},
        "log_driver": {"type": "str"},
        "log_options": {"type": "dict", "default": {}},
        "network_mode": {"type": "str"},
        "init": {"type": "bool", "default": False},
        "health": {
            "type": "dict",
            "options": {
                "http": {
                    "type": "dict",
                    "options": {
                        "url": {"type": "str", "required": True},
                        "status": {"type": "list", "elements": "int", "default": [200]},
                    },
                },
                "tcp": {
                    "type": "dict",
                    "options": {
                        "host": {"type": "str", "default": "127.0.0.1"},
                        "port": {"type": "int", "required": True},
                    },
                },
                "command": {"type": "list", "elements": "str"},
            },
        },
        "health_timeout": {"type": "int", "default": 60},
        "health_interval": {"type": "float", "default": 0.25},
        "running_seconds": {"type": "float", "default": 2},
        "stop_timeout": {"type": "int", "default": 3},
        "update_order": {"type": "str", "choices": list(UPDATE_ORDERS), "default": "stop-first"},
        "log_lines": {"type": "int", "default": 20},
        "history_file": {"type": "path"},
        "history_size": {"type": "int", "default": 20},
    }
    argument_spec.update(registry_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "started", ("image",))],
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=str(DOCKER_IMPORT_ERROR))
    params = module.params
    rollout = None
    try:
        engine = Engine(docker_host(params.get("docker_host")))
        rollout = Rollout(module, engine)
        result = rollout.deploy() if params["state"] == "started" else rollout.rollback()
    except RolloutFailed as exc:
        module.fail_json(msg=str(exc), **rollout.finish())
    except (RolloutError, RegistryError, ManifestError, PlatformError, EngineError, ValueError) as exc:
        extra = rollout.finish() if rollout is not None else {}
        module.fail_json(msg=str(exc), **extra)
    except Exception as exc:
        module.fail_json(msg=f"unexpected error: {exc.__class__.__name__}: {exc}", exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
