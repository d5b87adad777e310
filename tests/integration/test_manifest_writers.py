"""fleet.multiarch.manifest when the tag's PUT meets trouble: its answer lost, another writer of the same tag.

A relay in this file stands in front of the plain registry (127.0.0.1:5000): it forwards every request to the real
registry and its answer back, except that after forwarding the index PUT of a tag it either drops the client's
connection without the answer (the registry stored it) or first writes another index to the same tag, as a second
writer would at that moment. The registry's state is real; only the timing is arranged.
"""

from __future__ import annotations

import http.client
import json
import socket
import socketserver
import threading
import uuid

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils._reference import compute_digest
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import RegistryClient

from .helpers import purge_repository, run_module

RUN_ID = uuid.uuid4().hex[:8]


class Relay(socketserver.StreamRequestHandler):
    """Forwards HTTP/1.1 requests one by one to ``server.upstream``; ``server.on_tag_put`` decides what happens after
    the PUT of a tag was stored: ``"drop"`` (close without answering) or ``"overwrite"`` (another writer first)."""

    def handle(self):
        while True:
            first = self.rfile.peek(1)[:1]
            if not first:
                return
            if first == b"\x16":  # a TLS ClientHello (the client's probe): answer as a plain-HTTP server does
                self.wfile.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                return
            line = self.rfile.readline().decode()
            if not line.strip():
                return
            method, path, _version = line.split(" ", 2)
            headers = []
            while True:
                header = self.rfile.readline().decode()
                if header in ("\r\n", "\n", ""):
                    break
                name, value = header.split(":", 1)
                headers.append((name.strip(), value.strip()))
            length = int(dict((k.lower(), v) for k, v in headers).get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            status, reason, answer_headers, answer = self.forward(method, path, headers, body)
            self.server.seen.append(f"{method} {path}")
            tag_put = method == "PUT" and "/manifests/" in path and "sha256:" not in path and status == 201
            if tag_put and self.server.on_tag_put == "drop":
                self.request.shutdown(socket.SHUT_RDWR)  # stored upstream; the answer never arrives
                return
            if tag_put and self.server.on_tag_put == "overwrite":
                other = json.loads(body)
                other["manifests"] = other["manifests"][:1]
                other_body = json.dumps(other).encode()
                content_type = dict((k.lower(), v) for k, v in headers)["content-type"]
                self.forward("PUT", path, [("Content-Type", content_type)], other_body)
                self.server.other.append(compute_digest(other_body))
            self.wfile.write(f"HTTP/1.1 {status} {reason}\r\n".encode())
            for name, value in answer_headers:
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.wfile.write(f"{name}: {value}\r\n".encode())
            self.wfile.write(f"Content-Length: {len(answer)}\r\n\r\n".encode())
            if method != "HEAD":
                self.wfile.write(answer)
            self.wfile.flush()

    def forward(self, method, path, headers, body):
        conn = http.client.HTTPConnection(*self.server.upstream, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            names = {name.lower() for name, _value in headers}
            for name, value in headers:
                conn.putheader(name, value)
            if "host" not in names:
                conn.putheader("Host", f"{self.server.server_address[0]}:{self.server.server_address[1]}")
            if "content-length" not in names:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            return resp.status, resp.reason, resp.getheaders(), resp.read()
        finally:
            conn.close()


@pytest.fixture
def relay(testenv):
    host, port = testenv["registry"].rsplit(":", 1)
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Relay)
    server.daemon_threads = True
    server.upstream = (host, int(port))
    server.on_tag_put = ""
    server.seen = []
    server.other = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def repository(testenv):
    name = f"fleet-test/writers-{RUN_ID}-{uuid.uuid4().hex[:4]}"
    yield name
    purge_repository(RegistryClient(testenv["registry"]), name)


def index_args(relay, repository: str) -> dict:
    address = f"127.0.0.1:{relay.server_address[1]}"
    images = [f"{address}/library/busybox:1.35-amd64", f"{address}/library/busybox:1.35-armel"]
    return {"name": f"{address}/{repository}:v1", "images": images}


def test_a_lost_answer_to_the_index_put_is_decided_by_the_tag(testenv, relay, repository):
    """Issue 26: the answer to the final PUT was lost after the registry stored it; the task failed with "cannot
    reach the registry" and changed: false although the tag had moved. The tag is read back: it holds this index,
    so the task succeeded and changed it."""
    relay.on_tag_put = "drop"
    result = run_module("fleet.multiarch.manifest", index_args(relay, repository))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    holds = RegistryClient(testenv["registry"]).head_manifest(repository, "v1")["digest"]
    assert result["digest"] == holds
    assert f"PUT /v2/{repository}/manifests/v1" in relay.seen and f"HEAD /v2/{repository}/manifests/v1" in relay.seen
    assert not result.get("warnings")


def test_another_writer_of_the_tag_is_reported(testenv, relay, repository):
    """Issue 26: of two writers of one tag, the loser reported a digest the tag does not hold, with no warning. The
    tag is read back after the PUT: the result says what it holds, and a warning names the other writer's index."""
    relay.on_tag_put = "overwrite"
    result = run_module("fleet.multiarch.manifest", index_args(relay, repository))
    assert not result.get("failed"), result.get("msg")
    holds = RegistryClient(testenv["registry"]).head_manifest(repository, "v1")["digest"]
    assert relay.other == [holds]
    assert result["changed"] is True and result["digest"] != holds  # what this task pushed, not the other's
    assert result["tag_digest"] == holds
    assert any("another writer moved" in w and holds in w for w in result.get("warnings", [])), result
