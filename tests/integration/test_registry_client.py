"""The registry client's own HTTP transport against the real TLS registries of the test environment.

The plain-HTTP paths (keep-alive, redirects, a forward proxy, a server that closes idle connections) are
unit-tested on loopback servers; here the TLS ones run against the real registries: verification with the
test CA and without it, and HTTPS through a ``CONNECT`` proxy (a small relay in this file, with proxy
credentials) to the Basic-auth registry and to the Bearer registry and its token server. And a layer copied
from the plain registry to the TLS one goes through a file: the process' memory does not grow with it.
"""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import socketserver
import threading
import time
import uuid
from pathlib import Path

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils._reference import RegistryError, compute_digest
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import RegistryClient
from ansible_collections.fleet.multiarch.plugins.module_utils._registry_auth import Credentials

from .helpers import VENV_BIN, run, run_module

PROXY_USER, PROXY_PASSWORD = "proxy-user", "proxy:secret"


class ConnectRelay(socketserver.BaseRequestHandler):
    """Answers ``CONNECT host:port`` with 200 and relays bytes both ways; records each CONNECT."""

    seen: list

    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        method, target, _version = lines[0].split(" ")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        self.server.seen.append((method, target, headers.get("Proxy-Authorization", "")))
        if method != "CONNECT":
            self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host, port = target.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            ends = [self.request, upstream]
            while True:
                readable, _w, _x = select.select(ends, [], [], 10)
                if not readable:
                    return
                for end in readable:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is self.request else self.request).sendall(data)


@pytest.fixture
def direct(monkeypatch):
    """No proxy from the environment: the registries are reached directly."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def connect_proxy(direct, monkeypatch):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), ConnectRelay)
    server.daemon_threads = True
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HTTPS_PROXY", f"http://{PROXY_USER}:proxy%3Asecret@127.0.0.1:{server.server_address[1]}")
    yield server.seen
    server.shutdown()
    server.server_close()


def registry_conf(testenv: dict, which: str) -> tuple:
    conf = testenv[which]
    return conf, Credentials(conf["username"], Path(conf["password_file"]).read_text().strip())


def proxy_authorization() -> str:
    return "Basic " + base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()


def test_basic_auth_registry_through_a_connect_proxy(testenv, connect_proxy):
    conf, creds = registry_conf(testenv, "registry_tls")
    client = RegistryClient(conf["address"], credentials=creds, ca_cert=conf["ca_file"])
    repository = f"fleet-test/proxy-{uuid.uuid4().hex[:8]}"
    for _round in range(3):
        assert client.list_tags(repository) == []
        assert client.head_manifest(repository, "latest") is None
    # challenge + 6 requests, all through one tunnel kept alive, with the proxy's credentials
    assert connect_proxy == [("CONNECT", conf["address"], proxy_authorization())]


def test_bearer_registry_and_its_token_server_through_a_connect_proxy(testenv, connect_proxy):
    conf, creds = registry_conf(testenv, "registry_token")
    client = RegistryClient(conf["address"], credentials=creds, ca_cert=conf["ca_file"])
    assert client.head_manifest(f"fleet-test/proxy-{uuid.uuid4().hex[:8]}", "latest") is None
    targets = {target for _method, target, _auth in connect_proxy}
    assert targets == {conf["address"], conf["realm"].split("/")[2]}


def test_tls_verification(testenv, direct):
    conf, creds = registry_conf(testenv, "registry_tls")
    repository = f"fleet-test/tls-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RegistryError, match=r"certificate verify failed.*give ca_cert"):
        RegistryClient(conf["address"], credentials=creds).list_tags(repository)
    assert RegistryClient(conf["address"], credentials=creds, validate_certs=False).list_tags(repository) == []
    assert RegistryClient(conf["address"], credentials=creds, ca_cert=conf["ca_file"]).list_tags(repository) == []


# In a fresh interpreter: the peak resident memory (KiB) before and after copy_blob moves the blob.
COPY_SCRIPT = """
import json, resource, sys
from ansible_collections.fleet.multiarch.plugins.module_utils._registry_auth import Credentials
from ansible_collections.fleet.multiarch.plugins.module_utils._blobcopy import copy_blob
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import RegistryClient
a = json.loads(sys.argv[1])
src = RegistryClient(a["src"])
dst = RegistryClient(a["dst"], credentials=Credentials(a["user"], a["password"]), ca_cert=a["ca"])
src.blob_exists(a["repo"], a["digest"]), dst.blob_exists(a["repo"], a["digest"])  # imports, TLS, tokens: not the copy
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
copy_blob(src, a["repo"], dst, a["repo"], a["digest"])
print(json.dumps([before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))
"""


def test_a_layer_crosses_registries_through_a_file_not_memory(testenv, tmp_path, direct):
    """A 64 MiB layer, uploaded from a file to the plain registry, then copied to the TLS registry by copy_blob (what
    manifest and image_build do across registries): the copy's peak memory grows by less than 16 MiB."""
    conf, creds = registry_conf(testenv, "registry_tls")
    layer = tmp_path / "layer"
    with layer.open("wb") as out:
        for _chunk in range(64):
            out.write(os.urandom(1 << 20))
    repository = f"fleet-test/big-{uuid.uuid4().hex[:8]}"
    src = RegistryClient(testenv["registry"])
    dst = RegistryClient(conf["address"], credentials=creds, ca_cert=conf["ca_file"])
    with layer.open("rb") as blob:
        digest = compute_digest(blob)
        src.upload_blob(repository, digest, blob)
    try:
        assert src.blob_exists(repository, digest) and not dst.blob_exists(repository, digest)
        args = {"src": testenv["registry"], "dst": conf["address"], "user": creds.username}
        args.update(password=creds.password, ca=conf["ca_file"], repo=repository, digest=digest)
        proc = run([str(VENV_BIN / "python"), "-c", COPY_SCRIPT, json.dumps(args)], timeout=300)
        before, after = json.loads(proc.stdout)
        assert dst.blob_exists(repository, digest)
        assert after - before < 16 * 1024, (before, after)  # KiB
    finally:
        for client in (src, dst):
            client.request(
                "DELETE", f"{repository}/blobs/{digest}", scopes=(f"repository:{repository}:*",), expect=(202, 404)
            )


class Trickle(socketserver.BaseRequestHandler):
    """A registry that announces a 40-byte manifest and sends it one byte per second (for 20 s at most). A TLS
    handshake is answered like a plain-HTTP server does, so the client's probe picks HTTP at once."""

    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            if chunk.startswith(b"\x16"):  # a TLS ClientHello
                self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                return
            head += chunk
        self.server.seen.append(head.split(b"\r\n", 1)[0].decode())
        self.request.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: 40\r\n\r\n"
        )
        try:
            for _second in range(20):
                self.request.sendall(b" ")
                time.sleep(1)
        except OSError:
            return  # the client hung up


@pytest.fixture
def trickling_registry():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", server.seen
    server.shutdown()
    server.server_close()


def test_timeout_bounds_the_whole_answer(trickling_registry, direct):
    """Issue 26: a body sent one byte per second kept manifest_info with timeout 2 busy for 25 s (each read was
    within the timeout). The deadline covers the body: the task fails after about 2 s, naming the timeout and the
    registry, and a slow answer is not retried."""
    address, seen = trickling_registry
    started = time.monotonic()
    result = run_module("fleet.multiarch.manifest_info", {"name": f"{address}/fleet-test/slow:latest", "timeout": 2})
    elapsed = time.monotonic() - started
    assert result.get("failed") and result["changed"] is False, result
    assert f"{address} did not answer within the timeout" in result["msg"], result["msg"]
    assert "timeout of 2 s" in result["msg"] and "raise timeout" in result["msg"]
    assert seen == ["GET /v2/fleet-test/slow/manifests/latest HTTP/1.1"]  # once: not retried
    assert elapsed < 8, elapsed  # about 2 s of the request, plus Ansible's start-up


def test_a_proxy_that_is_down_is_named(testenv, direct):
    """Issue 26: a proxy that is down was reported as the registry being unreachable. The message names the proxy
    (without its credentials), the variable it came from and the registry."""
    conf, _creds = registry_conf(testenv, "registry_tls")
    with socket.socket() as closed:  # bound, never listening: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        env = {"HTTPS_PROXY": f"http://user:hush@127.0.0.1:{port}", "NO_PROXY": "", "no_proxy": ""}
        args = {"name": f"{conf['address']}/fleet-test/proxy-down:latest", "ca_cert": conf["ca_file"]}
        result = run_module("fleet.multiarch.manifest_info", args, env=env)
    assert result.get("failed") and result["changed"] is False, result
    msg = result["msg"]
    assert f"cannot reach the proxy http://127.0.0.1:{port} (from HTTPS_PROXY) for {conf['address']}" in msg, msg
    assert "Connection refused" in msg and "NO_PROXY" in msg and "hush" not in msg
