# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""Whether a container became healthy: the probes, one observation, and the wait loop.

:class:`Waiter` observes one container through the engine (its state, the image's HEALTHCHECK, the probes of
the ``health`` option) until it is healthy or not, within ``health_timeout``. The decisions are the pure
functions below it; the probes are functions returning ``(state, detail)``.
"""

from __future__ import annotations

import socket
import time

from ansible_collections.fleet.multiarch.plugins.module_utils._engine import EngineError

try:
    import requests  # a dependency of the Docker SDK (_engine imports both); the HTTP probe uses it
except ImportError:  # pragma: no cover - the module fails first without the Docker SDK
    requests = None

PROBE_TIMEOUT = 2.0


def engine_failure(exc: EngineError) -> dict:
    """The health of a container that the engine failed to start (or rename, or stop)."""
    return {"status": "unhealthy", "detail": str(exc), "seconds": 0.0, "checks": 0, "method": "running"}


def http_probe(spec: dict):
    """A probe: GET ``spec["url"]`` must answer with one of ``spec["status"]``."""
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


def tcp_probe(spec: dict):
    """A probe: a TCP connection to ``spec["host"]:spec["port"]`` must be accepted."""
    host, port = spec.get("host") or "127.0.0.1", spec["port"]

    def probe():
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
                return "pass", f"TCP {host}:{port} accepted"
        except OSError as exc:
            return "fail", f"TCP {host}:{port}: {exc}"

    return probe


def command_probe(engine, container, argv: list):
    """A probe: ``argv`` run inside ``container`` must exit 0."""

    def probe():
        try:
            code, output = engine.exec_run(container, argv)
        except EngineError as exc:
            return "fail", str(exc)
        last = output.strip().splitlines()[-1:] if output else []
        return command_probe_state(code), f"{argv!r} exited {code}" + (f": {last[0]}" if last else "")

    return probe


class Waiter:
    """Observes containers of one engine by the module's ``health``, ``health_timeout``, ``health_interval``
    and ``running_seconds`` options."""

    def __init__(self, engine, params: dict, clock=time.monotonic, sleep=time.sleep):
        self.engine = engine
        self.health = params.get("health")
        self.timeout = params["health_timeout"]
        self.interval = params["health_interval"]
        self.grace = params["running_seconds"]
        self.clock = clock
        self.sleep = sleep

    def probes(self, container) -> list:
        health = self.health or {}
        out = []
        if health.get("http"):
            out.append(http_probe(health["http"]))
        if health.get("tcp"):
            out.append(tcp_probe(health["tcp"]))
        if health.get("command"):
            out.append(command_probe(self.engine, container, health["command"]))
        return out

    def wait(self, container) -> dict:
        """Observe ``container`` until it is healthy or not, within the timeout: its health."""
        started = self.clock()
        probes = self.probes(container)
        attrs_box = {}

        def container_check():
            try:
                attrs_box["attrs"] = self.engine.reload(container)
            except EngineError as exc:  # the engine restarts (or is too busy to answer): it may be back in time
                attrs_box["attrs"] = {}
                return "waiting", f"the engine does not answer ({exc})"
            return container_state(attrs_box["attrs"])

        def health_check():
            return docker_health(attrs_box.get("attrs") or {})

        def check():
            return combine_checks(
                container_check, probes, health_check, grace=self.grace, clock=self.clock, started=started
            )

        outcome = wait_healthy(check, self.timeout, self.interval, self.clock, self.sleep)
        has_hc = bool(docker_health(attrs_box.get("attrs") or {})[0])
        outcome["method"] = health_method(self.health, has_hc)
        return outcome

    def start_and_wait(self, container) -> dict:
        """Start ``container`` and observe it; an engine error is unhealthy."""
        try:
            self.engine.start(container)
            return self.wait(container)
        except EngineError as exc:
            return engine_failure(exc)


# Restart policies under which the engine starts a container again whatever its exit (unless it was stopped).
RESTARTING_POLICIES = ("always", "unless-stopped")


def container_state(attrs: dict) -> tuple:
    """``(state, detail)`` from inspect data: ``exited`` (with code and error), ``running``, ``gone``, or
    ``waiting`` for a container that the engine stopped with itself.

    A container whose restart policy starts it again after any exit is ``restarting`` when it exits on its own
    (the engine marks it so at once); one that is ``exited`` under such a policy was stopped - by the engine that
    is shutting down (``systemctl restart docker``; the engine starts it again when it is back), or by someone
    else. That is worth waiting for, within the timeout, rather than a failure of the new version.
    """
    if not attrs:
        return "gone", "the container no longer exists"
    state = attrs.get("State") or {}
    if state.get("Running") and not state.get("Restarting"):
        return "running", "running"
    detail = f"the container is {state.get('Status') or 'not running'} (exit code {state.get('ExitCode', '?')})"
    if state.get("Error"):
        detail += f": {state['Error']}"
    if state.get("OOMKilled"):
        detail += " (killed: out of memory)"
    policy = ((attrs.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name")
    if state.get("Status") == "exited" and policy in RESTARTING_POLICIES and not state.get("OOMKilled"):
        return "waiting", f"{detail} and not restarting under restart policy {policy}: stopped with the engine?"
    return "exited", detail


def docker_health(attrs: dict) -> tuple:
    """``(status, detail)`` of the image's HEALTHCHECK: healthy, unhealthy, starting; ``("", "")`` without one."""
    health = ((attrs or {}).get("State") or {}).get("Health") or {}
    status = health.get("Status") or ""
    if not status or status == "none":
        return "", ""
    log = health.get("Log") or []
    detail = ""
    if log:
        last = log[-1]
        output = (last.get("Output") or "").strip().splitlines()
        detail = f"last check exited {last.get('ExitCode')}" + (f": {output[-1]}" if output else "")
    return status, detail


def wait_healthy(check, timeout: float, interval: float, clock, sleep) -> dict:
    """Call ``check()`` until it says ``healthy`` or ``unhealthy``, or ``timeout`` seconds pass.

    ``check`` returns ``(state, detail)`` with state ``healthy``, ``unhealthy`` (final: stop waiting) or
    ``waiting``. The result is ``{status: healthy|unhealthy|timeout, detail, seconds, checks}``.
    """
    start = clock()
    checks = 0
    detail = ""
    while True:
        state, detail = check()
        checks += 1
        elapsed = clock() - start
        if state in ("healthy", "unhealthy"):
            return {"status": state, "detail": detail, "seconds": round(elapsed, 3), "checks": checks}
        if elapsed >= timeout:
            return {
                "status": "timeout",
                "detail": f"not healthy within {timeout:g} s" + (f" ({detail})" if detail else ""),
                "seconds": round(elapsed, 3),
                "checks": checks,
            }
        sleep(min(interval, max(0.0, timeout - elapsed)) or interval)


def _probes_verdict(probes: list) -> tuple:
    """``healthy`` when every probe passes, ``unhealthy`` when one can never pass, else ``waiting``."""
    for probe in probes:
        probe_state, probe_detail = probe()
        if probe_state == "error":
            return "unhealthy", probe_detail
        if probe_state != "pass":
            return "waiting", probe_detail
    return "healthy", "every probe passed"


def combine_checks(container_check, probes: list, health_check, *, grace: float, clock, started: float) -> tuple:
    """One health observation, from the container state, the task's probes and the image's HEALTHCHECK.

    - a container that is not running is ``unhealthy`` at once, unless it stopped with the engine or the engine
      does not answer (state ``waiting``): then the observation waits;
    - with probes (each a function returning ``(state, detail)``, state ``pass``, ``fail`` or ``error``
      for a probe that can never pass, such as a command that does not exist), all must pass; an
      ``unhealthy`` HEALTHCHECK fails at once, but the probes decide ``healthy``;
    - without probes, the HEALTHCHECK decides; without one either, a container still running
      ``grace`` seconds after its start is ``healthy``.
    """
    state, detail = container_check()
    if state != "running":
        return ("waiting" if state == "waiting" else "unhealthy"), detail
    hc_status, hc_detail = health_check()
    hc_text = f"the image's HEALTHCHECK reports {hc_status}" + (f" ({hc_detail})" if hc_detail else "")
    if hc_status == "unhealthy":
        return "unhealthy", hc_text
    if probes:
        return _probes_verdict(probes)
    if hc_status:
        return ("healthy" if hc_status == "healthy" else "waiting"), hc_text
    if clock() - started >= grace:
        return "healthy", f"running for {grace:g} s (no HEALTHCHECK and no probe)"
    return "waiting", "running"


def health_method(health: dict | None, has_healthcheck: bool) -> str:
    """What decides health: the probes given (``http+tcp``), ``healthcheck`` (the image's), or ``running``."""
    names = [key for key in ("http", "tcp", "command") if (health or {}).get(key)]
    if names:
        return "+".join(names)
    return "healthcheck" if has_healthcheck else "running"


# ``docker exec`` exit codes of a command that could not run at all: it will not pass by waiting.
EXEC_CANNOT_RUN = (126, 127)


def command_probe_state(code: int) -> str:
    """``pass`` for exit 0, ``error`` when the command cannot run (126, 127), ``fail`` otherwise."""
    if code == 0:
        return "pass"
    return "error" if code in EXEC_CANNOT_RUN else "fail"


def http_status_ok(status: int, expected) -> bool:
    """``expected`` is one status, a list of them, or None for any 2xx/3xx."""
    if expected is None or expected == []:
        return 200 <= status < 400
    if isinstance(expected, (list, tuple)):
        return status in [int(e) for e in expected]
    return status == int(expected)
