"""Unit tests for _engine: what the SDK and its HTTP layer raise becomes EngineError, naming the call."""

from __future__ import annotations

import threading

import pytest
import requests

from ansible_collections.fleet.multiarch.plugins.module_utils import _engine


class Containers:
    def __init__(self, exc):
        self.exc = exc

    def get(self, name):
        raise self.exc


class Container:
    name = "app"

    def __init__(self, exc):
        self.exc = exc

    def start(self):
        raise self.exc

    def reload(self):
        raise self.exc


class Client:
    def __init__(self, exc):
        self.containers = Containers(exc)


# A busy engine on a small board: the SDK lets requests' ReadTimeout through (seen on an emulated arm64 guest).
TIMEOUT = requests.exceptions.ReadTimeout("UnixHTTPConnectionPool(host='localhost', port=None): Read timed out.")


@pytest.mark.parametrize(
    "exc", [TIMEOUT, requests.exceptions.ConnectionError("socket gone"), _engine.APIError("500 Server Error")]
)
def test_engine_and_connection_errors_become_engine_errors(exc):
    engine = _engine.Engine("unix:///var/run/docker.sock", client=Client(exc))
    with pytest.raises(_engine.EngineError, match="inspecting container app failed"):
        engine.container("app")
    with pytest.raises(_engine.EngineError, match="starting container app failed"):
        engine.start(Container(exc))
    with pytest.raises(_engine.EngineError, match="inspecting container app failed"):
        engine.reload(Container(exc))


def test_not_found_is_no_container():
    engine = _engine.Engine("unix:///var/run/docker.sock", client=Client(_engine.NotFound("no such container")))
    assert engine.container("app") is None


def test_api_timeout_is_generous_for_small_boards():
    assert _engine.DEFAULT_API_TIMEOUT >= 120


class PullApi:
    """The SDK's low-level pull: a stream of the engine's progress events, or one that stops coming (a dead link)."""

    def __init__(self, events, stall=False):
        self.events, self.stall = events, stall
        self.released = threading.Event()

    def pull(self, repository, **kwargs):
        yield from self.events
        if self.stall:
            self.released.wait(30)


class PullClient:
    def __init__(self, api):
        self.api = api


# Progress events of a pull on an emulated arm64 guest (Engine 20.10.24), trimmed.
DOWNLOADING = [
    {"status": "Pulling from fleet-test/fleet-test-faults", "id": "sha256:3d77b288"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "9f4b97605eab"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "1a2dfd885aa3"},
    {
        "status": "Downloading",
        "progressDetail": {"current": 12582912, "total": 50331648},
        "progress": "[============>      ]  12.58MB/50.33MB",
        "id": "9f4b97605eab",
    },
    {"status": "Pull complete", "progressDetail": {}, "id": "1a2dfd885aa3"},
]


def test_pull_bounded_by_its_timeout_says_what_the_engine_last_reported():
    api = PullApi(DOWNLOADING, stall=True)
    engine = _engine.Engine("unix:///var/run/docker.sock", client=PullClient(api))
    try:
        with pytest.raises(_engine.PullTimeout) as caught:
            engine.pull("10.0.2.2:5000/app", "sha256:" + "a" * 64, "linux/arm64", timeout=0.5)
    finally:
        api.released.set()
    assert str(caught.value) == (
        f"pulling 10.0.2.2:5000/app@sha256:{'a' * 64} for linux/arm64 did not finish within 0.5 s (pull_timeout);"
        " the engine's last report: 9f4b97605eab: Downloading 12.6MB/50.3MB"
    )


def test_pull_error_event_is_an_engine_error():
    events = [
        *DOWNLOADING,
        {"errorDetail": {"message": "no space"}, "error": "write /var/lib/docker/tmp/x: no space left on device"},
    ]
    engine = _engine.Engine("unix:///var/run/docker.sock", client=PullClient(PullApi(events)))
    with pytest.raises(_engine.EngineError, match=r"failed: write /var/lib/docker/tmp/x: no space left on device$"):
        engine.pull("10.0.2.2:5000/app", "sha256:" + "a" * 64, "linux/arm64", timeout=10)


def test_pull_that_completes_returns():
    engine = _engine.Engine("unix:///var/run/docker.sock", client=PullClient(PullApi(DOWNLOADING)))
    engine.pull("10.0.2.2:5000/app", "sha256:" + "a" * 64, "linux/arm64")


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (DOWNLOADING[3], "9f4b97605eab: Downloading 12.6MB/50.3MB"),
        (DOWNLOADING[1], "9f4b97605eab: Pulling fs layer"),
        ({"status": "Digest: sha256:3d77"}, "Digest: sha256:3d77"),
    ],
)
def test_pull_progress(event, line):
    assert _engine.pull_progress(event) == line
