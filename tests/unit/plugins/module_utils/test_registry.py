"""Unit tests for _registry: references, challenges, credentials, errors, and the client's HTTP behaviour.

The client tests replay responses captured from the real registries of the test environment
(tests/unit/fixtures/registry) through a stub session; the integration tests run the same code
against the registries themselves.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import http.client
import http.server
import io
import json
import socket
import threading
from pathlib import Path
from typing import ClassVar

import pytest
from urllib3.exceptions import ProtocolError

from ansible_collections.fleet.multiarch.plugins.module_utils import _reference, _registry_auth, _registry_http
from ansible_collections.fleet.multiarch.plugins.module_utils import _registry as reg

FIXTURES = Path(__file__).resolve().parents[3] / "unit" / "fixtures" / "registry"
INDEX_DIGEST = "sha256:11e88decc3b61ce4db44b1747e24483110fd1b29724a7d4a33b68b1a8258d089"
REALM = "https://127.0.0.1:5445/token"
REPO = "fleet-test/manifest-smoke"
ARMHF_DIGEST = "sha256:94e942f6f246a243e197df13475bcaaf020c192ba38d5922c714dbe663c12553"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_headers(name: str) -> dict:
    """Headers of a captured ``curl -D`` file (status line dropped)."""
    out = {}
    for line in (FIXTURES / name).read_text().splitlines()[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            out[key.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("127.0.0.1:5000/library/busybox", "127.0.0.1:5000", "library/busybox", "latest", ""),
        ("127.0.0.1:5000/library/busybox:1.35-armhf", "127.0.0.1:5000", "library/busybox", "1.35-armhf", ""),
        ("localhost/app", "localhost", "app", "latest", ""),
        ("localhost:5000/a/b/c:v1.0_rc-1", "localhost:5000", "a/b/c", "v1.0_rc-1", ""),
        (f"127.0.0.1:5000/library/busybox@{INDEX_DIGEST}", "127.0.0.1:5000", "library/busybox", "", INDEX_DIGEST),
        (f"127.0.0.1:5000/x/y:tag@{INDEX_DIGEST}", "127.0.0.1:5000", "x/y", "tag", INDEX_DIGEST),
        ("[::1]:5000/fleet__x/a.b-c", "[::1]:5000", "fleet__x/a.b-c", "latest", ""),
        ("192.0.2.10/team/app:1", "192.0.2.10", "team/app", "1", ""),
    ],
)
def test_parse_reference(text, registry, repository, tag, digest):
    ref = _reference.parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.ref == (digest or tag)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("busybox", "has no registry host"),
        ("library/busybox:latest", "write the registry explicitly, e.g. '127.0.0.1:5000/library/busybox:latest'"),
        ("127.0.0.1:5000/Library/busybox", "invalid repository"),
        ("127.0.0.1:5000/busybox:-bad", "invalid tag"),
        ("127.0.0.1:5000/busybox@sha256:abc", "invalid digest"),
        ("127.0.0.1:5000/a//b", "invalid repository"),
        ("", "invalid image reference"),
        (None, "invalid image reference"),
    ],
)
def test_parse_reference_refuses(text, message):
    with pytest.raises(_reference.ImageReferenceError, match=None) as info:
        _reference.parse_reference(text)
    assert message in str(info.value)


def test_reference_str_round_trip():
    text = f"127.0.0.1:5000/x/y:tag@{INDEX_DIGEST}"
    assert str(_reference.parse_reference(text)) == text
    assert str(_reference.parse_reference(text).with_digest(ARMHF_DIGEST)) == f"127.0.0.1:5000/x/y@{ARMHF_DIGEST}"


@pytest.mark.parametrize(
    ("registry", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("localhost:5443", True),
        ("localhost", True),
        ("[::1]:5000", True),
        ("198.51.100.7:5000", False),
        ("192.0.2.10", False),
    ],
)
def test_is_loopback(registry, loopback):
    assert _reference.is_loopback(registry) is loopback


# --------------------------------------------------------------------------- WWW-Authenticate and scopes


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # captured from the TLS + basic-auth registry (127.0.0.1:5443)
        (
            fixture_headers("tls-challenge.headers")["www-authenticate"],
            [("basic", {"realm": "fleet-multiarch-testenv"})],
        ),
        (
            'Bearer realm="https://127.0.0.1:5445/token",service="fleet-testenv",'
            'scope="repository:fleet-test/manifest-smoke:pull,push"',
            [
                (
                    "bearer",
                    {
                        "realm": REALM,
                        "service": "fleet-testenv",
                        "scope": "repository:fleet-test/manifest-smoke:pull,push",
                    },
                )
            ],
        ),
        (
            'Bearer realm="https://127.0.0.1:5445/token",service="x",'
            'scope="repository:a:pull repository:b:pull",error="insufficient_scope"',
            [
                (
                    "bearer",
                    {
                        "realm": REALM,
                        "service": "x",
                        "scope": "repository:a:pull repository:b:pull",
                        "error": "insufficient_scope",
                    },
                )
            ],
        ),
        (
            "bearer  realm = https://127.0.0.1/t , service=reg",
            [("bearer", {"realm": "https://127.0.0.1/t", "service": "reg"})],
        ),
        ('Basic realm="a \\"quoted\\" realm"', [("basic", {"realm": 'a "quoted" realm'})]),
        (
            'Basic realm="x", Bearer realm="https://127.0.0.1/t"',
            [("basic", {"realm": "x"}), ("bearer", {"realm": "https://127.0.0.1/t"})],
        ),
        ("Basic", [("basic", {})]),
        ("", []),
    ],
)
def test_parse_www_authenticate(header, expected):
    assert _registry_auth.parse_www_authenticate(header) == expected


@pytest.mark.parametrize("header", ['Basic realm="unclosed', 'realm="no scheme"', "Basic realm=x, @@"])
def test_parse_www_authenticate_refuses(header):
    with pytest.raises(_reference.RegistryError, match="WWW-Authenticate"):
        _registry_auth.parse_www_authenticate(header)


def test_scopes_merge_and_cover():
    merged = _registry_auth.merge_scopes(["repository:a:pull", "repository:b:pull", "repository:a:push"])
    assert merged == ("repository:a:pull,push", "repository:b:pull")
    assert _registry_auth.scopes_cover(merged, ("repository:a:pull",))
    assert _registry_auth.scopes_cover(merged, ("repository:a:pull,push", "repository:b:pull"))
    assert not _registry_auth.scopes_cover(merged, ("repository:b:push",))
    assert not _registry_auth.scopes_cover(merged, ("repository:c:pull",))
    assert _registry_auth.scopes_cover(("repository:a:*",), ("repository:a:pull,push,delete",))
    assert _registry_auth.repository_scope("x/y", ["push", "pull"]) == "repository:x/y:pull,push"


# --------------------------------------------------------------------------- credentials


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("auths", "registry", "expected"),
    [
        ({"127.0.0.1:5443": {"auth": _auth("fleet", "s3cr:et")}}, "127.0.0.1:5443", ("fleet", "s3cr:et", "")),
        ({"https://127.0.0.1:5443": {"auth": _auth("fleet", "pw")}}, "127.0.0.1:5443", ("fleet", "pw", "")),
        ({"https://127.0.0.1:5443/v1/": {"auth": _auth("fleet", "pw")}}, "127.0.0.1:5443", ("fleet", "pw", "")),
        ({"http://localhost:5000": {"username": "u", "password": "p"}}, "localhost:5000", ("u", "p", "")),
        ({"127.0.0.1:5443": {"auth": _auth("u", ""), "identitytoken": "tok"}}, "127.0.0.1:5443", ("u", "", "tok")),
        ({"127.0.0.1:5443": {"auth": _auth("fleet", "pw")}}, "127.0.0.1:5000", None),
        ({"127.0.0.1:5443": {}}, "127.0.0.1:5443", None),
        ({}, "127.0.0.1:5443", None),
    ],
)
def test_credentials_from_docker_config(auths, registry, expected):
    creds = _registry_auth.credentials_from_docker_config({"auths": auths}, registry)
    if expected is None:
        assert creds is None
    else:
        assert (creds.username, creds.password, creds.identity_token) == expected


@pytest.mark.parametrize("auth", ["!!!not-base64", base64.b64encode(b"no-colon").decode()])
def test_credentials_bad_auth_entry(auth):
    with pytest.raises(_reference.RegistryError, match="run docker login again") as info:
        _registry_auth.credentials_from_docker_config({"auths": {"127.0.0.1:5443": {"auth": auth}}}, "127.0.0.1:5443")
    assert "no-colon" not in str(info.value)


def test_credentials_repr_hides_secrets():
    creds = _registry_auth.Credentials("fleet", "hunter2", "tok")
    assert "hunter2" not in repr(creds)
    assert "tok'" not in repr(creds)


def test_docker_config_path(tmp_path):
    assert _registry_auth.docker_config_path(None, {"DOCKER_CONFIG": str(tmp_path)}) == str(tmp_path / "config.json")
    assert _registry_auth.docker_config_path(str(tmp_path / "c.json"), {}) == str(tmp_path / "c.json")
    assert _registry_auth.docker_config_path(None, {}).endswith("/.docker/config.json")


def test_load_docker_config(tmp_path):
    assert _registry_auth.load_docker_config(str(tmp_path / "missing.json")) == {}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(_reference.RegistryError, match="cannot read the Docker config"):
        _registry_auth.load_docker_config(str(bad))


def test_client_pool_credentials(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"127.0.0.1:5443": {"auth": _auth("cfg", "cfgpw")}}}))
    params = {"docker_config": str(tmp_path), "username": "opt", "password": "optpw"}
    pool = reg.ClientPool(params, "127.0.0.1:5000")
    assert pool.credentials("127.0.0.1:5000").username == "opt"  # the options belong to the primary registry
    assert pool.credentials("127.0.0.1:5443").username == "cfg"  # others come from the Docker config
    assert not pool.credentials("localhost:5001")
    with pytest.raises(_reference.RegistryError, match="together"):
        reg.ClientPool({"username": "x"}, "127.0.0.1:5000").credentials("127.0.0.1:5000")


# --------------------------------------------------------------------------- errors, media types, digests


@pytest.mark.parametrize(
    ("status", "body", "authenticated", "expected"),
    [
        (
            404,
            fixture_bytes("manifest-unknown.json"),
            "",
            "not found on 127.0.0.1:5000 (MANIFEST_UNKNOWN: manifest unknown)",
        ),
        (401, fixture_bytes("unauthorized.json"), "", "refused the request anonymously"),
        (401, fixture_bytes("unauthorized.json"), "fleet", "as fleet (UNAUTHORIZED: authentication required); check"),
        (
            403,
            b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}',
            "",
            "denied access",
        ),
        (
            405,
            b'{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}',
            "",
            "storage.delete.enabled",
        ),
        (400, fixture_bytes("delete-by-tag.json"), "", "HTTP 400 (DIGEST_INVALID: provided digest"),
        (502, b"<html>bad gateway</html>", "", "answered HTTP 502 (HTTP 502)"),
    ],
)
def test_describe_failure(status, body, authenticated, expected):
    assert expected in reg.describe_failure(status, body, "doing it", "127.0.0.1:5000", authenticated)


def test_captured_index_digest_matches_header():
    body = fixture_bytes("busybox-index.json")
    headers = fixture_headers("busybox-index.headers")
    assert _reference.compute_digest(body) == headers["Docker-Content-Digest"] == INDEX_DIGEST
    assert _reference.verify_digest(body, INDEX_DIGEST, "x") == INDEX_DIGEST
    with pytest.raises(_reference.DigestMismatch, match="not used"):
        _reference.verify_digest(body + b" ", INDEX_DIGEST, "x")
    assert _reference.compute_digest(b"", "sha512").startswith("sha512:cf83e1357eef")
    with pytest.raises(_reference.RegistryError, match="unsupported digest algorithm"):
        _reference.compute_digest(b"", "md5")


@pytest.mark.parametrize(
    ("data", "content_type", "expected"),
    [
        (json.loads(fixture_bytes("busybox-index.json")), "", reg.DOCKER_LIST),
        (json.loads(fixture_bytes("busybox-armhf-manifest.json")), "", reg.DOCKER_MANIFEST),
        ({"schemaVersion": 2, "manifests": []}, "", reg.OCI_INDEX),
        ({"schemaVersion": 2, "config": {}, "layers": []}, "", reg.OCI_MANIFEST),
        ({"schemaVersion": 2, "manifests": []}, reg.OCI_INDEX + "; charset=utf-8", reg.OCI_INDEX),
    ],
)
def test_manifest_media_type(data, content_type, expected):
    assert reg.manifest_media_type(data, content_type) == expected


def test_schema1_refused():
    with pytest.raises(_reference.RegistryError, match="schema 1"):
        reg.manifest_media_type({"schemaVersion": 1, "name": "x"}, "")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"token":"abc","expires_in":300}', ("abc", 300)),
        (b'{"access_token":"xyz"}', ("xyz", 60)),
        (b'{"token":"abc","expires_in":"soon"}', ("abc", 60)),
    ],
)
def test_parse_token_response(body, expected):
    assert _registry_auth.parse_token_response(body, REALM) == expected


@pytest.mark.parametrize("body", [b"<html>", b"[]", b'{"token": ""}'])
def test_parse_token_response_refuses(body):
    with pytest.raises(_reference.RegistryError, match="token server"):
        _registry_auth.parse_token_response(body, REALM)


# --------------------------------------------------------------------------- the client over a stub session


def response(status: int, body: bytes = b"", headers: dict | None = None, url: str = "") -> _registry_http.Response:
    message = http.client.HTTPMessage()
    for key, value in (headers or {}).items():
        message[key] = value
    return _registry_http.Response(status, message, body, url)


class StubSession:
    """Plays back a script of responses (or exceptions) and records every request."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = []

    def request(self, method, url, headers=None, **kwargs):
        self.calls.append({"method": method, "url": url, "headers": dict(headers or {}), **kwargs})
        if not self.script:
            raise AssertionError(f"unexpected request {method} {url}")
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        sink = kwargs.get("sink")
        if sink is not None and 200 <= item.status_code < 300:  # as the transport does: the body goes to the file
            sink.seek(0)
            sink.truncate()
            sink.write(item.content)
            return _registry_http.Response(item.status_code, item.headers, b"", item.url)
        return item

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)

    def post(self, url, **kwargs):
        return self.request("POST", url, **kwargs)


def client(script, registry="127.0.0.1:5443", **kwargs):
    sleeps = []
    session = StubSession(script)
    kwargs.setdefault("probe", lambda host, port, timeout: None)  # no sockets in unit tests
    cli = reg.RegistryClient(registry, session=session, sleep=sleeps.append, **kwargs)
    return cli, session, sleeps


def index_response(body=None):
    headers = fixture_headers("busybox-index.headers")
    return response(200, fixture_bytes("busybox-index.json") if body is None else body, headers)


def test_get_manifest_verifies_digest_by_tag_and_by_digest():
    cli, session, _sleeps = client([index_response(), index_response()])
    got = cli.get_manifest("library/busybox", "latest")
    assert (got.digest, got.media_type, got.is_index, got.size) == (INDEX_DIGEST, reg.DOCKER_LIST, True, 1291)
    assert session.calls[0]["headers"]["Accept"] == reg.MANIFEST_ACCEPT
    assert session.calls[0]["url"] == "https://127.0.0.1:5443/v2/library/busybox/manifests/latest"
    assert cli.get_manifest("library/busybox", INDEX_DIGEST).digest == INDEX_DIGEST


@pytest.mark.parametrize("ref", ["latest", INDEX_DIGEST])
def test_get_manifest_refuses_tampered_content(ref):
    tampered = fixture_bytes("busybox-index.json").replace(b"arm64", b"amd64")
    cli, _session, _sleeps = client([index_response(tampered)])
    with pytest.raises(_reference.DigestMismatch, match=INDEX_DIGEST):
        cli.get_manifest("library/busybox", ref)


def test_get_blob_verifies_digest():
    body = fixture_bytes("busybox-armhf-config.json")
    digest = _reference.compute_digest(body)
    cli, _session, _sleeps = client([response(200, body), response(200, body[:-1])])
    assert cli.get_blob("library/busybox", digest) == body
    with pytest.raises(_reference.DigestMismatch):
        cli.get_blob("library/busybox", digest)


def test_download_blob_writes_the_file_and_verifies_it(tmp_path):
    body = fixture_bytes("busybox-armhf-config.json")
    digest = _reference.compute_digest(body)
    cli, session, _sleeps = client([response(200, body), response(200, body[:-1])])
    with (tmp_path / "blob").open("w+b") as sink:
        sink.write(b"stale bytes, longer than nothing")
        cli.download_blob("library/busybox", digest, sink)
        sink.seek(0)
        assert sink.read() == body
        assert _reference.compute_digest(sink) == digest  # a file is hashed from its start
        with pytest.raises(_reference.DigestMismatch, match=digest):
            cli.download_blob("library/busybox", digest, sink)
    assert session.calls[0]["sink"] is not None and session.calls[0]["url"].endswith(f"/blobs/{digest}")


def test_retries_5xx_and_connection_errors_with_backoff():
    cli, session, sleeps = client(
        [
            response(503),
            _registry_http.ConnectError("ConnectionResetError: [Errno 104] Connection reset by peer"),
            response(502),
            index_response(),
        ]
    )
    # the first answer fixed the scheme (HTTPS), so a later connection error is retried, not a fallback
    assert cli.get_manifest("library/busybox", "latest").digest == INDEX_DIGEST
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(session.calls) == 4
    assert all(call["timeout"] == _registry_http.DEFAULT_TIMEOUT for call in session.calls)


def test_retry_after_is_honoured():
    cli, _session, sleeps = client([response(429, headers={"Retry-After": "3"}), index_response()])
    cli.get_manifest("library/busybox", "latest")
    assert sleeps == [3.0]


def test_gives_up_after_retries():
    # 192.0.2.10 (a documentation address) is not loopback, so no plain-HTTP attempt; the stub sends nothing.
    cli, session, sleeps = client(
        [_registry_http.ConnectError("TimeoutError: timed out")] * 4, registry="192.0.2.10:5000"
    )
    with pytest.raises(_reference.RegistryError, match=r"cannot reach 192\.0\.2\.10:5000 after 4 attempts"):
        cli.get_manifest("library/busybox", "latest")
    assert len(session.calls) == 4 and len(sleeps) == 3


def test_5xx_after_retries_is_an_error():
    cli, _session, _sleeps = client([response(500)] * 4)
    with pytest.raises(_reference.RegistryError, match="answered HTTP 500") as info:
        cli.get_manifest("library/busybox", "latest")
    assert info.value.status == 500


def test_404_is_not_retried():
    cli, session, sleeps = client([response(404, fixture_bytes("manifest-unknown.json"))])
    with pytest.raises(_reference.RegistryError, match="MANIFEST_UNKNOWN") as info:
        cli.get_manifest("library/busybox", "no-such-tag")
    assert (info.value.status, info.value.codes, len(session.calls), sleeps) == (404, ("MANIFEST_UNKNOWN",), 1, [])


def test_head_manifest_missing_and_present():
    headers = fixture_headers("busybox-index.headers")
    cli, session, _sleeps = client([response(404), response(200, b"", headers)])
    assert cli.head_manifest("library/busybox", "nope") is None
    assert cli.head_manifest("library/busybox", "latest") == {
        "digest": INDEX_DIGEST,
        "media_type": reg.DOCKER_LIST,
        "size": 1291,
    }
    assert [c["method"] for c in session.calls] == ["HEAD", "HEAD"]


def basic_challenge():
    return response(401, fixture_bytes("unauthorized.json"), fixture_headers("tls-challenge.headers"))


def test_basic_challenge_then_preemptive_auth():
    creds = _registry_auth.Credentials("fleet", "pw")
    cli, session, _sleeps = client([basic_challenge(), index_response(), index_response()], credentials=creds)
    cli.get_manifest("library/busybox", "latest")
    cli.get_manifest("library/busybox", "latest")
    expected = "Basic " + _auth("fleet", "pw")
    assert "Authorization" not in session.calls[0]["headers"]
    assert session.calls[1]["headers"]["Authorization"] == expected
    assert session.calls[2]["headers"]["Authorization"] == expected  # no second challenge round trip


def test_basic_challenge_without_credentials():
    cli, _session, _sleeps = client([basic_challenge()])
    with pytest.raises(_reference.RegistryError, match="give username and password") as info:
        cli.get_manifest("library/busybox", "latest")
    assert info.value.status == 401


def test_basic_wrong_password_names_user_not_password():
    creds = _registry_auth.Credentials("fleet", "wrong-secret")
    cli, _session, _sleeps = client([basic_challenge(), basic_challenge()], credentials=creds)
    with pytest.raises(_reference.RegistryError, match="as fleet") as info:
        cli.get_manifest("library/busybox", "latest")
    assert "wrong-secret" not in str(info.value)


def bearer_challenge():
    """Captured from the token registry: scope repository:fleet-test/manifest-smoke:pull."""
    return response(401, fixture_bytes("bearer-unauthorized.json"), fixture_headers("bearer-challenge.headers"))


def token(value: str, expires_in: int = 300) -> _registry_http.Response:
    data = json.loads(fixture_bytes("token-response.json"))
    data.update(token=value, access_token=value, expires_in=expires_in)
    return response(200, json.dumps(data).encode())


def test_captured_bearer_challenge():
    header = fixture_headers("bearer-challenge.headers")["www-authenticate"]
    assert _registry_auth.parse_www_authenticate(header) == [
        ("bearer", {"realm": REALM, "service": "fleet-testenv-registry", "scope": f"repository:{REPO}:pull"})
    ]
    assert _registry_auth.parse_token_response(fixture_bytes("token-response.json"), REALM) == ("<redacted JWT>", 300)


def test_bearer_flow_fetches_scoped_token_and_reuses_it():
    creds = _registry_auth.Credentials("fleet", "pw")
    script = [
        bearer_challenge(),
        token("T1"),
        index_response(),
        index_response(),  # same scope: the cached token
        token("T2"),  # pull,push on the same repository needs a new token
        response(201, b"", {"Docker-Content-Digest": INDEX_DIGEST}),
        response(200, b"", {"Docker-Content-Digest": INDEX_DIGEST}),  # the tag read back
    ]
    cli, session, _sleeps = client(script, credentials=creds)
    cli.get_manifest(REPO, "latest")
    cli.get_manifest(REPO, "latest")
    cli.put_manifest(REPO, "v1", fixture_bytes("busybox-index.json"), reg.DOCKER_LIST)
    token_call = session.calls[1]
    assert token_call["url"] == REALM
    assert token_call["params"] == [
        ("service", "fleet-testenv-registry"),
        ("scope", "repository:fleet-test/manifest-smoke:pull"),
    ]
    assert token_call["auth"] == ("fleet", "pw")
    assert session.calls[2]["headers"]["Authorization"] == "Bearer T1"
    assert session.calls[3]["headers"]["Authorization"] == "Bearer T1"
    assert session.calls[4]["params"] == [
        ("service", "fleet-testenv-registry"),
        ("scope", "repository:fleet-test/manifest-smoke:pull,push"),
    ]
    assert session.calls[5]["headers"]["Authorization"] == "Bearer T2"
    assert session.calls[5]["headers"]["Content-Type"] == reg.DOCKER_LIST


def test_bearer_token_expiry_refetches():
    now = [1000.0]
    script = [
        bearer_challenge(),
        token("T1", 60),
        index_response(),
        token("T2", 60),
        index_response(),
    ]
    session = StubSession(script)
    cli = reg.RegistryClient(
        "127.0.0.1:5443", session=session, sleep=lambda s: None, clock=lambda: now[0], probe=lambda *a: None
    )
    cli.get_manifest(REPO, "latest")
    now[0] += 120
    cli.get_manifest(REPO, "latest")
    assert session.calls[4]["headers"]["Authorization"] == "Bearer T2"
    assert "auth" in session.calls[3] and session.calls[3]["auth"] is None  # anonymous token request


def test_bearer_mount_asks_for_both_repositories():
    script = [
        bearer_challenge(),
        token("T"),
        response(201, b"", {"Location": "/v2/fleet-test/manifest-smoke/blobs/sha256:x"}),
    ]
    cli, session, _sleeps = client(script)
    assert cli.mount_blob(REPO, ARMHF_DIGEST, "library/busybox") == ""
    scopes = [v for k, v in session.calls[1]["params"] if k == "scope"]
    assert scopes == ["repository:fleet-test/manifest-smoke:pull,push", "repository:library/busybox:pull"]
    assert session.calls[2]["params"] == {"mount": ARMHF_DIGEST, "from": "library/busybox"}


def test_bearer_identity_token_uses_oauth2_refresh_grant():
    creds = _registry_auth.Credentials("", "", "refresh-me")
    cli, session, _sleeps = client(
        [bearer_challenge(), response(200, b'{"access_token":"A"}'), index_response()], credentials=creds
    )
    cli.get_manifest(REPO, "latest")
    form = session.calls[1]["data"]
    assert session.calls[1]["method"] == "POST"
    assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "refresh-me"  # noqa: S105 - a test value
    assert session.calls[2]["headers"]["Authorization"] == "Bearer A"


def test_bearer_token_server_refuses():
    creds = _registry_auth.Credentials("fleet", "bad-pw")
    cli, _session, _sleeps = client([bearer_challenge(), response(401, b"")], credentials=creds)
    with pytest.raises(_reference.RegistryError, match="refused user 'fleet'") as info:
        cli.get_manifest(REPO, "latest")
    assert "bad-pw" not in str(info.value)


def test_unsupported_challenge():
    cli, _session, _sleeps = client([response(401, b"", {"WWW-Authenticate": 'Negotiate realm="x"'})])
    with pytest.raises(_reference.RegistryError, match="unsupported scheme"):
        cli.get_manifest(REPO, "latest")


def test_loopback_connection_refused_tries_plain_http_then_retries():
    refused = _registry_http.ConnectError("ConnectionRefusedError: [Errno 111] Connection refused")
    cli, session, sleeps = client([refused, refused, index_response()], registry="127.0.0.1:5000")
    cli.get_manifest("library/busybox", "latest")
    assert [c["url"].split(":")[0] for c in session.calls] == ["https", "http", "http"]
    assert sleeps == [0.5]


def test_loopback_falls_back_to_plain_http_once():
    wrong_version = _registry_http.TlsError("SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number")
    cli, session, sleeps = client([wrong_version, index_response(), index_response()], registry="127.0.0.1:5000")
    cli.get_manifest("library/busybox", "latest")
    cli.get_manifest("library/busybox", "latest")
    assert [c["url"].split(":")[0] for c in session.calls] == ["https", "http", "http"]
    assert sleeps == []


def test_certificate_error_never_falls_back():
    bad_cert = _registry_http.TlsError(
        "SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", True
    )
    cli, session, _sleeps = client([bad_cert], registry="127.0.0.1:5443")
    with pytest.raises(_reference.RegistryError, match="give ca_cert"):
        cli.get_manifest("library/busybox", "latest")
    assert len(session.calls) == 1


def test_secure_registry_never_uses_plain_http():
    wrong_version = _registry_http.TlsError("SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number")
    cli, _session, _sleeps = client([wrong_version], registry="192.0.2.10:5000")
    with pytest.raises(_reference.RegistryError, match="insecure_registries"):
        cli.get_manifest("library/busybox", "latest")


def test_insecure_option_allows_plain_http():
    wrong_version = _registry_http.TlsError("SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number")
    cli, session, _sleeps = client([wrong_version, index_response()], registry="192.0.2.10:5000", insecure=True)
    cli.get_manifest("library/busybox", "latest")
    assert session.calls[1]["url"].startswith("http://192.0.2.10:5000/v2/")


def test_tls_options_reach_the_transport(tmp_path):
    ca = str(tmp_path / "ca.crt")
    cli, session, _sleeps = client([index_response()], ca_cert=ca)
    cli.get_manifest("library/busybox", "latest")
    assert session.calls[0]["verify"] == ca
    cli, session, _sleeps = client([index_response()], validate_certs=False, ca_cert=ca)
    cli.get_manifest("library/busybox", "latest")
    assert session.calls[0]["verify"] is False


def test_put_manifest_checks_stored_digest():
    body = fixture_bytes("busybox-index.json")
    cli, _session, _sleeps = client([response(201, b"", {"Docker-Content-Digest": ARMHF_DIGEST})])
    with pytest.raises(_reference.DigestMismatch, match="stored digest"):
        cli.put_manifest(REPO, "v1", body, reg.DOCKER_LIST)


def test_put_manifest_reads_the_tag_back():
    """Issue 26: another writer of the tag may move it right after the PUT; the tag read back says so."""
    body = fixture_bytes("busybox-index.json")
    cli, session, _sleeps = client(
        [
            response(201, b"", {"Docker-Content-Digest": INDEX_DIGEST}),
            response(200, b"", {"Docker-Content-Digest": ARMHF_DIGEST}),
        ]
    )
    pushed = cli.put_manifest(REPO, "v1", body, reg.DOCKER_LIST)
    assert (pushed.digest, pushed.holds, pushed.replaced) == (INDEX_DIGEST, ARMHF_DIGEST, True)
    assert f"holds {ARMHF_DIGEST}, not the {INDEX_DIGEST}" in pushed.warning(f"{REPO}:v1")
    assert [c["method"] for c in session.calls] == ["PUT", "HEAD"]
    # by digest: nothing to read back
    cli, session, _sleeps = client([response(201, b"", {"Docker-Content-Digest": INDEX_DIGEST})])
    assert not cli.put_manifest(REPO, INDEX_DIGEST, body, reg.DOCKER_LIST).replaced
    assert len(session.calls) == 1


def test_a_lost_answer_to_a_put_is_decided_by_the_tag():
    """Issue 26: the PUT's answer is lost but the registry stored it: success. Held by another: the error says so."""
    body = fixture_bytes("busybox-index.json")
    cut = _registry_http.ConnectError("RemoteDisconnected: Remote end closed connection without response")
    holds_ours = response(200, b"", {"Docker-Content-Digest": INDEX_DIGEST})
    cli, session, _sleeps = client([cut] * 4 + [holds_ours], registry="192.0.2.10:5443")
    pushed = cli.put_manifest(REPO, "v1", body, reg.DOCKER_LIST)
    assert (pushed.digest, pushed.replaced) == (INDEX_DIGEST, False)
    holds_other = response(200, b"", {"Docker-Content-Digest": ARMHF_DIGEST})
    cli, session, _sleeps = client([cut] * 4 + [holds_other], registry="192.0.2.10:5443")
    with pytest.raises(
        _reference.RegistryError, match=f"cannot reach .* afterwards the tag holds {ARMHF_DIGEST}, not the pushed"
    ):
        cli.put_manifest(REPO, "v1", body, reg.DOCKER_LIST)
    cli, session, _sleeps = client([response(403)])  # refused: nothing stored, nothing read back
    with pytest.raises(_reference.RegistryError, match="denied"):
        cli.put_manifest(REPO, "v1", body, reg.DOCKER_LIST)
    assert len(session.calls) == 1


def test_mount_falls_back_to_upload_session():
    body = fixture_bytes("busybox-armhf-config.json")
    digest = _reference.compute_digest(body)
    script = [
        response(202, b"", {"Location": "/v2/fleet-test/manifest-smoke/blobs/uploads/uuid?_state=abc"}),
        response(201, b"", {"Docker-Content-Digest": digest}),
    ]
    cli, session, _sleeps = client(script)
    upload = cli.mount_blob(REPO, digest, "other/repo")
    assert upload == "https://127.0.0.1:5443/v2/fleet-test/manifest-smoke/blobs/uploads/uuid?_state=abc"
    cli.upload_blob(REPO, digest, body, upload)
    put = session.calls[1]
    assert (put["method"], put["url"], put["params"], put["data"]) == ("PUT", upload, {"digest": digest}, body)


def test_upload_refuses_wrong_content():
    cli, session, _sleeps = client([])
    with pytest.raises(_reference.DigestMismatch):
        cli.upload_blob(REPO, ARMHF_DIGEST, b"other bytes")
    assert session.calls == []


def test_list_tags_follows_pagination():
    script = [
        response(200, b'{"name":"a","tags":["v1","v2"]}', {"Link": '</v2/a/tags/list?last=v2&n=2>; rel="next"'}),
        response(200, b'{"name":"a","tags":["v3"]}'),
    ]
    cli, session, _sleeps = client(script)
    assert cli.list_tags("a") == ["v1", "v2", "v3"]
    assert session.calls[1]["url"] == "https://127.0.0.1:5443/v2/a/tags/list?last=v2&n=2"


@pytest.mark.parametrize(("answer", "scheme"), [(True, "https"), (False, "http")])
def test_probe_decides_the_scheme_of_an_insecure_registry(answer, scheme):
    probes = []

    def probe(host, port, timeout):
        probes.append((host, port))
        return answer

    cli, session, _sleeps = client([index_response(), index_response()], registry="127.0.0.1:5000", probe=probe)
    cli.get_manifest("library/busybox", "latest")
    cli.get_manifest("library/busybox", "latest")
    assert [c["url"].split(":")[0] for c in session.calls] == [scheme, scheme]
    assert probes == [("127.0.0.1", 5000)]  # once per client


def test_secure_registry_is_not_probed():
    cli, session, _sleeps = client(
        [index_response()], registry="192.0.2.10:5000", probe=lambda *a: pytest.fail("probed")
    )
    cli.get_manifest("library/busybox", "latest")
    assert session.calls[0]["url"].startswith("https://")


@pytest.mark.parametrize(
    ("registry", "expected"),
    [("127.0.0.1:5000", ("127.0.0.1", 5000)), ("[::1]:5443", ("::1", 5443)), ("localhost", ("localhost", 443))],
)
def test_split_host_port(registry, expected):
    assert _registry_http.split_host_port(registry) == expected


def proxy_environment(monkeypatch, **variables):
    """Exactly these proxy variables in the environment (the lower-case names win, so both cases are set)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        for variant in (name, name.lower()):
            if name in variables:
                monkeypatch.setenv(variant, variables[name])
            else:
                monkeypatch.delenv(variant, raising=False)


def test_the_environment_is_read_once_per_client_and_honoured(monkeypatch, recorder):
    """Proxies, NO_PROXY and the CA bundle come from the environment, as requests and curl read them, once per
    client (the proxies once per origin). The proxy is a loopback server that answers every request itself."""
    proxy, seen = recorder({"http://10.8.8.8:5000/v2/": (200, {}, b"{}")})
    proxy_environment(monkeypatch, HTTP_PROXY=f"http://{proxy}", NO_PROXY="10.9.9.9")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/bundle-from-env.pem")
    far = reg.RegistryClient("10.8.8.8:5000", insecure=True, probe=lambda *a: False)
    assert far.verify == "/etc/ssl/certs/bundle-from-env.pem"
    assert far.request("GET", "", what="ping").content == b"{}"
    assert far.request("GET", "", what="ping again").content == b"{}"
    assert [(r["method"], r["path"], r["version"]) for r in seen] == [
        ("GET", "http://10.8.8.8:5000/v2/", "HTTP/1.1")
    ] * 2
    assert _registry_http.proxy_source("http://10.8.8.8:5000/v2/x") == (f"http://{proxy}", "http_proxy")
    assert _registry_http.proxy_source("http://10.9.9.9:5000/v2/") == ("", "")
    assert reg.RegistryClient("10.8.8.8:5000", ca_cert="/ca.pem").verify == "/ca.pem"
    assert reg.RegistryClient("10.8.8.8:5000", validate_certs=False).verify is False


# --------------------------------------------------------------------------- the transport


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('</v2/a/tags/list?last=v2&n=2>; rel="next"', "/v2/a/tags/list?last=v2&n=2"),
        (
            '<https://r.example.com/v2/a/tags/list?n=2&last=b>; type="x"; rel=next',
            "https://r.example.com/v2/a/tags/list?n=2&last=b",
        ),
        ('</first>; rel="prev", </second>; rel="next"', "/second"),
        ('</only>; rel="prev"', ""),
        ("", ""),
        ("garbage; rel=next", ""),
    ],
)
def test_parse_link_next(header, expected):
    assert reg.parse_link_next(header) == expected


@pytest.mark.parametrize(
    ("environ", "url", "expected"),
    [
        ({}, "https://r.example.com/", {}),
        ({"HTTPS_PROXY": "http://p:3128"}, "https://r.example.com/", {"https": "http://p:3128"}),
        # the lower-case name wins, as curl and requests have it
        (
            {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"},
            "https://r.example.com/",
            {"https": "http://lower:2"},
        ),
        ({"ALL_PROXY": "http://p:3128", "HTTP_PROXY": ""}, "https://r.example.com/", {"all": "http://p:3128"}),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "example.com"}, "https://r.example.com/", {}),
        ({"HTTPS_PROXY": "http://p:3128", "no_proxy": "r.example.com:5000"}, "https://r.example.com:5000/", {}),
        (
            {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "other.example.com"},
            "https://r.example.com/",
            {"https": "http://p:3128"},
        ),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "*"}, "https://r.example.com/", {}),
    ],
)
def test_environ_proxies(environ, url, expected):
    assert _registry_http.environ_proxies(url, environ) == expected


@pytest.mark.parametrize(
    ("environ", "url", "expected"),
    [
        (
            {"HTTPS_PROXY": "http://u:secret@p.example.com:3128"},
            "https://r.example.com/",
            ("http://p.example.com:3128", "HTTPS_PROXY"),
        ),
        ({"https_proxy": "p:3128", "HTTPS_PROXY": "q:1"}, "https://r.example.com/", ("http://p:3128", "https_proxy")),
        ({"ALL_PROXY": "http://p:3128"}, "http://r.example.com/", ("http://p:3128", "ALL_PROXY")),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "r.example.com"}, "https://r.example.com/", ("", "")),
        ({}, "https://r.example.com/", ("", "")),
    ],
)
def test_proxy_source_names_the_proxy_and_its_variable_without_credentials(environ, url, expected):
    assert _registry_http.proxy_source(url, environ=environ) == expected


class Recorder(http.server.BaseHTTPRequestHandler):
    """A loopback HTTP/1.1 server that records each request (with the client's port) and answers from a table:
    path -> (status, headers, body). ``close_after`` closes the connection after each answer without saying so,
    as a server does whose keep-alive timeout ran out. ``drop_reused`` answers the first request of each connection
    and closes the connection on the next one without a word: the moment a keep-alive timeout runs out just as the
    client reuses the connection (the request is recorded with ``dropped``)."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list] = []
    answers: ClassVar[dict] = {}
    close_after = False
    drop_reused = False
    served = 0

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        dropped = self.drop_reused and self.served > 0
        self.served += 1
        self.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "version": self.request_version,
                "port": self.client_address[1],
                "headers": dict(self.headers),
                "body": body,
                "dropped": dropped,
            }
        )
        if dropped:
            self.close_connection = True
            return
        status, headers, payload = self.answers.get(self.path.split("?", 1)[0], (404, {}, b""))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.close_connection = self.close_after

    do_GET = do_HEAD = do_PUT = do_POST = answer

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    started = []

    def start(answers, close_after=False, drop_reused=False):
        handler = type(
            "Handler",
            (Recorder,),
            {"seen": [], "answers": answers, "close_after": close_after, "drop_reused": drop_reused},
        )
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return f"127.0.0.1:{server.server_port}", handler.seen

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def test_transport_keeps_the_connection_alive(recorder):
    address, seen = recorder({"/v2/": (200, {"Docker-Distribution-Api-Version": "registry/2.0"}, b"{}")})
    transport = _registry_http.Transport()
    answers = [transport.request(m, f"http://{address}/v2/", timeout=5) for m in ("GET", "HEAD", "GET")]
    assert [(a.status_code, a.content) for a in answers] == [(200, b"{}"), (200, b""), (200, b"{}")]
    assert answers[0].headers.get("docker-distribution-api-version") == "registry/2.0"  # any case
    assert len({s["port"] for s in seen}) == 1  # one connection for the three
    assert seen[0]["headers"]["User-Agent"] == _registry_http.USER_AGENT


def test_transport_reconnects_when_the_server_closed_an_idle_connection(recorder):
    address, seen = recorder({"/v2/": (200, {}, b"{}")}, close_after=True)
    transport = _registry_http.Transport()
    for method in ("GET", "PUT", "POST", "GET"):
        assert transport.request(method, f"http://{address}/v2/", data=b"x", timeout=5).status_code == 200
    assert [s["method"] for s in seen] == ["GET", "PUT", "POST", "GET"]  # each once, nothing sent twice
    assert len({s["port"] for s in seen}) == 4


def test_transport_resends_a_request_the_server_closed_its_connection_on(recorder, tmp_path):
    """The keep-alive race: the server closes an idle connection just as the next request goes out on it, and the
    request gets no answer at all. It is sent once more on a new connection, whatever its method, a file body
    from its start (before, one such request in a dozen failed a unit test under load: RemoteDisconnected)."""
    address, seen = recorder({"/v2/": (200, {}, b"{}")}, drop_reused=True)
    transport = _registry_http.Transport()
    with (tmp_path / "body").open("w+b") as body:
        body.write(b"layer bytes")
        for method, data in (("GET", None), ("PUT", body), ("POST", b"form"), ("GET", None)):
            headers = {"Content-Length": "11"} if data is body else None
            answer = transport.request(method, f"http://{address}/v2/", data=data, headers=headers, timeout=5)
            assert answer.status_code == 200
    answered = [s for s in seen if not s["dropped"]]
    assert [s["method"] for s in answered] == ["GET", "PUT", "POST", "GET"]
    assert [s["method"] for s in seen if s["dropped"]] == ["PUT", "POST", "GET"]  # each reuse cut, then resent
    assert answered[1]["body"] == b"layer bytes"


def test_transport_does_not_resend_a_request_that_timed_out(monkeypatch):
    """Only a connection closed under a request is resent: a timeout is not (it bounds the whole request), nor an
    error the server answered."""
    closed = ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    timed_out = ProtocolError("Connection aborted.", TimeoutError("timed out"))
    assert _registry_http._stale_connection(closed)
    assert not _registry_http._stale_connection(timed_out)
    policy = _registry_http.Transport().session.get_adapter("http://x/").max_retries
    with pytest.raises(ProtocolError):
        policy.increment("PUT", "/v2/", error=timed_out)
    assert policy.increment("PUT", "/v2/", error=closed).total == 0  # one resend, then none


def test_transport_chooses_the_proxy_again_after_a_redirect(monkeypatch, recorder):
    """A registry in NO_PROXY that sends a blob to object storage outside: the storage is reached through the
    proxy, as requests and curl do (10.8.8.8 exists only behind the loopback proxy)."""
    proxy, proxy_seen = recorder({"http://10.8.8.8:9000/blob": (200, {}, b"layer")})
    registry, registry_seen = recorder({"/v2/a/blobs/x": (307, {"Location": "http://10.8.8.8:9000/blob"}, b"")})
    proxy_environment(monkeypatch, HTTP_PROXY=f"http://{proxy}", NO_PROXY="127.0.0.1")
    blob = _registry_http.Transport().request("GET", f"http://{registry}/v2/a/blobs/x", timeout=5)
    assert (blob.status_code, blob.content) == (200, b"layer")
    assert [r["path"] for r in registry_seen] == ["/v2/a/blobs/x"]  # direct
    assert [r["path"] for r in proxy_seen] == ["http://10.8.8.8:9000/blob"]


def test_transport_sends_a_file_and_writes_an_answer_into_a_sink(recorder, tmp_path):
    """Blobs go through files a chunk at a time: a file body is sent from its start (whatever its position), a 2xx
    body replaces what the sink held, and an error's body stays in the answer for the message."""
    payload = bytes(range(256)) * (3 * _reference.CHUNK // 256) + b"tail"
    address, seen = recorder(
        {"/upload": (201, {}, b""), "/blob": (200, {}, payload), "/missing": (404, {}, b'{"errors": []}')}
    )
    transport = _registry_http.Transport()
    with (tmp_path / "body").open("w+b") as body:
        body.write(payload)  # left at its end
        headers = {"Content-Length": str(len(payload))}
        assert (
            transport.request("PUT", f"http://{address}/upload", data=body, headers=headers, timeout=5).status_code
            == 201
        )
    assert seen[0]["body"] == payload
    with (tmp_path / "sink").open("w+b") as sink:
        sink.write(b"stale" * 10**6)
        blob = transport.request("GET", f"http://{address}/blob", sink=sink, timeout=5)
        assert (blob.status_code, blob.content) == (200, b"")
        sink.seek(0)
        assert sink.read() == payload
        missing = transport.request("GET", f"http://{address}/missing", sink=sink, timeout=5)
        assert (missing.status_code, missing.content) == (404, b'{"errors": []}')
        sink.seek(0)
        assert sink.read() == payload


class FullDisk(io.BytesIO):
    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_not_a_connection_problem(recorder):
    """A blob that cannot be written to its file fails at once and says what to do, instead of being retried and
    reported as an unreachable registry."""
    body = b"layer" * 1000
    digest = _reference.compute_digest(body)
    address, seen = recorder({f"/v2/a/blobs/{digest}": (200, {}, body)})
    cli = reg.RegistryClient(address, probe=lambda *a: False, sleep=lambda seconds: pytest.fail("retried"))
    with pytest.raises(_registry_http.SpoolError, match=r"No space left on device; .* TMPDIR"):
        cli.download_blob("a", digest, FullDisk())
    assert len(seen) == 1


def test_transport_follows_redirects_and_keeps_credentials_at_home(recorder):
    storage, storage_seen = recorder({"/blob": (200, {}, b"layer")})
    registry, registry_seen = recorder(
        {
            "/v2/a/blobs/x": (307, {"Location": f"http://{storage}/blob?sig=1"}, b""),
            "/v2/a/manifests/old": (301, {"Location": "/v2/a/manifests/new"}, b""),
            "/v2/a/manifests/new": (200, {}, b"{}"),
        }
    )
    transport = _registry_http.Transport()
    headers = {"Authorization": "Bearer secret"}
    blob = transport.request("GET", f"http://{registry}/v2/a/blobs/x", headers=headers, timeout=5)
    assert (blob.status_code, blob.content, blob.url) == (200, b"layer", f"http://{storage}/blob?sig=1")
    assert "Authorization" not in storage_seen[0]["headers"]
    moved = transport.request("GET", f"http://{registry}/v2/a/manifests/old", headers=headers, timeout=5)
    assert moved.content == b"{}"
    assert registry_seen[-1]["headers"]["Authorization"] == "Bearer secret"  # same origin


def test_transport_gives_up_on_a_redirect_loop(recorder):
    address, seen = recorder({"/loop": (302, {"Location": "/loop"}, b"")})
    with pytest.raises(_registry_http.ConnectError, match="more than 10 redirects"):
        _registry_http.Transport().request("GET", f"http://{address}/loop", timeout=5)
    assert len(seen) == 11


def test_transport_form_query_and_basic_credentials(recorder):
    address, seen = recorder({"/token": (200, {}, b'{"token": "t"}')})
    transport = _registry_http.Transport()
    transport.request(
        "GET", f"http://{address}/token", params=[("service", "s"), ("scope", "a b")], auth=("u", "p:w"), timeout=5
    )
    transport.request(
        "POST", f"http://{address}/token", data={"grant_type": "refresh_token", "scope": "x y"}, timeout=5
    )
    assert seen[0]["path"] == "/token?service=s&scope=a+b"
    assert base64.b64decode(seen[0]["headers"]["Authorization"].split(" ", 1)[1]) == b"u:p:w"
    assert seen[1]["body"] == b"grant_type=refresh_token&scope=x+y"
    assert seen[1]["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def test_transport_errors():
    with socket_closed_port() as port:
        with pytest.raises(_registry_http.ConnectError, match="ConnectionRefusedError"):
            _registry_http.Transport().request("GET", f"http://127.0.0.1:{port}/v2/", timeout=5)
    with pytest.raises(_registry_http.ConnectError, match="not an http"):
        _registry_http.Transport().request("GET", "ftp://127.0.0.1/v2/", timeout=5)
    with socket_closed_port() as port:
        with pytest.raises(_registry_http.ProxyError, match="ConnectionRefusedError") as info:
            _registry_http.Transport().request(
                "GET", "https://127.0.0.1:1/v2/", proxies={"https": f"http://u:pw@127.0.0.1:{port}"}
            )
    assert (info.value.proxy, info.value.source) == (f"http://127.0.0.1:{port}", "proxies")
    with pytest.raises(_registry_http.TlsError, match="cannot load the CA certificates") as info:
        _registry_http.Transport().request("GET", "https://127.0.0.1:1/v2/", verify="/nonexistent/ca.pem")
    assert info.value.certificate


@contextlib.contextmanager
def socket_closed_port():
    """A loopback port where nothing listens (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.parametrize("tag", ["été", "v1.0-ß", "٣", "-x", ".x", "x" * 129])
def test_tags_outside_the_distribution_grammar_are_refused(tag):
    """Tags are ASCII ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}); Python's \\w alone took any Unicode letter."""
    with pytest.raises(_reference.ImageReferenceError, match="invalid tag"):
        _reference.parse_reference(f"127.0.0.1:5000/app:{tag}")
