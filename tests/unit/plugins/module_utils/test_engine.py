"""Unit tests for _engine: what the SDK and its HTTP layer raise becomes EngineError, naming the call."""

from __future__ import annotations

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
