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
        With an engine on this device (a C(unix://) O(docker_host)), a platform whose architecture the device can
        neither run natively (its userland's or its kernel's) nor emulate (an enabled C(binfmt_misc) entry) fails
        the task before anything is pulled or stopped, also in check mode. 32-bit ARM on a 64-bit ARM device is
        left to the engine (most such CPUs run it).
    type: str
  expected_digests:
    description:
      - The manifest digest the release expects for each platform, as the release record's C(platforms) lists
        them (platform as key, C(sha256:...) as value); the C(rollout) role passes the record's.
      - When O(image) resolves, for the chosen platform, to another digest (or to a platform the release does not
        list), the task fails before anything is pulled or stopped, also in check mode. That happens when a tag
        was re-pointed since the release.
      - Not given or empty, any digest is deployed.
    type: dict
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

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.fleet.multiarch.plugins.module_utils._deploy import run
from ansible_collections.fleet.multiarch.plugins.module_utils._engine import (
    DOCKER_IMPORT_ERROR,
    HAS_DOCKER,
    Engine,
    docker_host,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import registry_argument_spec
from ansible_collections.fleet.multiarch.plugins.module_utils._rollout import UPDATE_ORDERS


def argument_spec() -> dict:
    spec = {
        "name": {"type": "str", "required": True},
        "image": {"type": "str"},
        "state": {"type": "str", "choices": ["started", "rolled_back"], "default": "started"},
        "platform": {"type": "str"},
        "expected_digests": {"type": "dict"},
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
    spec.update(registry_argument_spec())
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("state", "started", ("image",))],
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=str(DOCKER_IMPORT_ERROR))
    run(module, lambda: Engine(docker_host(module.params.get("docker_host"))))


if __name__ == "__main__":
    main()
