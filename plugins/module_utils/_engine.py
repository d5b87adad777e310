# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""The collection's one place for Engine API access, through the ``docker`` SDK.

:class:`Engine` is a thin wrapper: each method is one Engine API call (or one streamed pull) with
the SDK's exceptions turned into :class:`EngineError` whose message says what was asked. Decisions
(what to pull, what to create, when a container is healthy) live in the callers and in pure
functions; this module only talks to the engine.
"""

from __future__ import annotations

import json
import os
import threading

try:
    import docker
    from docker.errors import APIError, DockerException, NotFound
    from docker.types import LogConfig
    from requests.exceptions import RequestException

    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - depends on the target's Python
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = _exc

    class DockerException(Exception):
        """Stand-ins so ``except`` clauses stay valid without the SDK (the modules fail first then)."""

    class APIError(DockerException):
        pass

    class NotFound(APIError):
        pass

    class RequestException(Exception):
        pass

# The SDK raises its own exceptions for what the engine answers, and lets the ``requests`` ones through for what
# the connection does: a read timeout of a busy engine (a small board under load) or a socket that went away.
# Every call below catches both.


DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# Seconds an Engine API call may take. Generous: on a small or busy board (and on emulated ARM guests) a
# container create, start or inspect has been seen to take over a minute; a call that times out fails the
# deployment (and is rolled back) instead of hanging.
DEFAULT_API_TIMEOUT = 180


class EngineError(Exception):
    """An Engine API call failed; the message names the call and what the engine said."""


class PullTimeout(EngineError):
    """A pull did not finish in its time (the engine cancels it when this process, its client, goes away)."""


# What the engine says when the file system of its data is full (the Go error text of ENOSPC).
NO_SPACE = "no space left on device"


def docker_host(option: str | None = None, environ=None) -> str:
    """``option``, else ``$DOCKER_HOST``, else the local socket."""
    env = os.environ if environ is None else environ
    return option or env.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def pull_progress(event: dict) -> str:
    """One line of a pull's streamed progress: ``<layer>: Downloading 12.5MB/48MB`` (the bar left out)."""
    detail = event.get("progressDetail") or {}
    amount = ""
    if detail.get("total"):
        amount = f" {detail.get('current', 0) / 1e6:.1f}MB/{detail['total'] / 1e6:.1f}MB"
    layer = f"{event['id']}: " if event.get("id") else ""
    return f"{layer}{event.get('status', '')}{amount}"


# What the engine (Docker 20.10) reports of a layer still on its way; then "Pull complete" or "Already exists".
LAYER_BUSY = ("Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum", "Download complete", "Extracting")


def unfinished(layers: dict) -> list:
    """The last progress events of the layers still under way (``layers``: id -> last event, in the order they
    came); the last event of all when no layer is under way."""
    busy = [event for event in layers.values() if event.get("status") in LAYER_BUSY]
    return busy or list(layers.values())[-1:]


def _explain(exc) -> str:
    if isinstance(exc, APIError) and getattr(exc, "explanation", None):
        return str(exc.explanation)
    return str(exc)


class Engine:
    """One Docker engine. ``client`` may be passed in (tests); otherwise one is built for ``base_url``."""

    def __init__(self, base_url: str = DEFAULT_DOCKER_HOST, timeout: int = DEFAULT_API_TIMEOUT, client=None):
        self.base_url = base_url
        if client is None:
            try:
                client = docker.DockerClient(base_url=base_url, version="auto", timeout=timeout)
            except (DockerException, RequestException) as exc:
                raise EngineError(
                    f"cannot reach the Docker engine at {base_url}: {_explain(exc)};"
                    " check that it runs and that this user may use its socket (docker_host)"
                ) from None
        self.client = client

    # ---- engine

    def version(self) -> dict:
        """The engine's ``/version`` (Version, ApiVersion, Os, Arch, ...)."""
        try:
            return self.client.version()
        except (DockerException, RequestException) as exc:
            raise EngineError(
                f"asking the Docker engine at {self.base_url} its version failed: {_explain(exc)}"
            ) from None

    def version_json(self) -> str:
        """The engine's version in the shape of ``docker version --format '{{json .}}'`` (for ``_device``)."""
        try:
            server = self.version()
        except EngineError:
            server = None
        return json.dumps({"Client": {}, "Server": server})

    # ---- images

    def pull(
        self, repository: str, digest: str, platform: str, auth_config: dict | None = None, timeout: float = 0
    ) -> None:
        """Pull ``repository@digest`` for ``platform``; the engine's streamed errors are raised.

        ``timeout`` (seconds, 0 for none) bounds the whole pull: :class:`PullTimeout` when it is up. The SDK reads
        a pull's stream without a timeout, and the engine (Docker 20.10) keeps a download whose link went down
        for minutes - a read that times out after about 5, then 5 retries - so without a bound the task hangs
        for over 10 minutes. The stream is read in a thread; the engine cancels the pull when this process, its
        client, goes away.
        """
        what = f"pulling {repository}@{digest} for {platform}"
        outcome = {}
        layers = {}  # the last progress event of each layer (and of the pull itself, id "")

        def consume():
            try:
                stream = self.client.api.pull(
                    repository, tag=digest, stream=True, decode=True, platform=platform, auth_config=auth_config
                )
                for event in stream:
                    if isinstance(event, dict) and event.get("error"):
                        outcome["error"] = f"{what} failed: {event['error']}"
                        return
                    if isinstance(event, dict) and event.get("status"):
                        layers[event.get("id") or ""] = event
            except (DockerException, RequestException) as exc:
                outcome["error"] = f"{what} failed: {_explain(exc)}"

        worker = threading.Thread(target=consume, name="pull", daemon=True)
        worker.start()
        worker.join(timeout or None)
        if worker.is_alive():
            last = "; ".join(pull_progress(event) for event in unfinished(dict(layers)))
            raise PullTimeout(
                f"{what} did not finish within {timeout:g} s (pull_timeout)"
                + (f"; the engine's last report: {last}" if last else "")
            )
        if "error" in outcome:
            raise EngineError(outcome["error"])

    def data_root(self) -> str:
        """Where the engine keeps images and containers (``DockerRootDir``); "" when it cannot be asked."""
        try:
            return self.client.info().get("DockerRootDir") or ""
        except (DockerException, RequestException):
            return ""

    def has_image(self, reference: str) -> bool:
        try:
            self.client.images.get(reference)
        except NotFound:
            return False
        except (DockerException, RequestException) as exc:
            raise EngineError(f"inspecting image {reference} failed: {_explain(exc)}") from None
        return True

    # ---- containers

    def container(self, name: str):
        """The container called ``name`` (a docker SDK Container), or None."""
        try:
            return self.client.containers.get(name)
        except NotFound:
            return None
        except (DockerException, RequestException) as exc:
            raise EngineError(f"inspecting container {name} failed: {_explain(exc)}") from None

    def create(self, image: str, name: str, kwargs: dict):
        """Create (not start) a container; ``kwargs`` are ``containers.create`` keyword arguments."""
        args = dict(kwargs)
        log = args.pop("log_config", None)
        if log:
            args["log_config"] = LogConfig(type=log.get("type") or "", config=log.get("config") or {})
        try:
            return self.client.containers.create(image, name=name, detach=True, **args)
        except (DockerException, RequestException) as exc:
            raise EngineError(f"creating container {name} from {image} failed: {_explain(exc)}") from None

    def _call(self, what: str, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (DockerException, RequestException) as exc:
            raise EngineError(f"{what} failed: {_explain(exc)}") from None

    def start(self, container) -> None:
        self._call(f"starting container {container.name}", container.start)

    def stop(self, container, timeout: int) -> None:
        self._call(f"stopping container {container.name}", container.stop, timeout=timeout)

    def rename(self, container, new_name: str) -> None:
        old = container.name
        self._call(f"renaming container {old} to {new_name}", container.rename, new_name)
        container.reload()

    def remove(self, container) -> None:
        try:
            container.remove(force=True)
        except NotFound:
            return
        except (DockerException, RequestException) as exc:
            raise EngineError(f"removing container {container.name} failed: {_explain(exc)}") from None

    def set_restart_policy(self, container, policy: dict) -> None:
        self._call(
            f"setting the restart policy of container {container.name}",
            container.update,
            restart_policy={
                "Name": policy.get("Name") or "no",
                "MaximumRetryCount": policy.get("MaximumRetryCount") or 0,
            },
        )

    def reload(self, container) -> dict:
        """Re-inspect; return ``attrs`` (``{}`` when the container is gone)."""
        try:
            container.reload()
        except NotFound:
            return {}
        except (DockerException, RequestException) as exc:
            raise EngineError(f"inspecting container {container.name} failed: {_explain(exc)}") from None
        return container.attrs

    def logs(self, container, lines: int) -> str:
        """The last ``lines`` lines of stdout and stderr; "" when they cannot be read."""
        try:
            data = container.logs(stdout=True, stderr=True, tail=lines)
        except (DockerException, RequestException):
            return ""
        return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)

    def exec_run(self, container, argv: list) -> tuple:
        """``(exit code, output)`` of ``argv`` run inside the container."""
        result = self._call(f"running {argv!r} in container {container.name}", container.exec_run, argv)
        output = result.output.decode("utf-8", errors="replace") if isinstance(result.output, bytes) else ""
        return result.exit_code, output
