# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""The collection's registry client (OCI distribution spec, Docker Registry HTTP API v2) and its module glue.

:class:`RegistryClient` is the one code that talks to registries: authentication on challenge (anonymous, Basic,
the Bearer token flow), the plain-HTTP fallback for insecure registries, retries with backoff, the media types and
Accept headers, a digest check on every manifest and blob read, and the read-back of a tag after its PUT.
Its neighbours: references and digests in ``_reference``, challenges and credentials in ``_registry_auth``, the HTTP
transport on ``requests`` in ``_registry_http``, blob copies in ``_blobcopy``. :class:`ClientPool` builds one
client per registry from the modules' shared options. Safe to share between threads.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin

from ansible_collections.fleet.multiarch.plugins.module_utils._reference import (
    _DIGEST_RE,
    DigestMismatch,
    RegistryError,
    _sep,
    compute_digest,
    is_loopback,
    json_object,
    verify_digest,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._registry_auth import (
    Credentials,
    credentials_from_docker_config,
    docker_config_path,
    load_docker_config,
    merge_scopes,
    parse_token_response,
    parse_www_authenticate,
    repository_scope,
    scopes_cover,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._registry_http import (
    DEFAULT_TIMEOUT,
    ConnectError,
    DeadlineError,
    ProxyError,
    TlsError,
    Transport,
    TransportError,
    environ_ca_bundle,
    speaks_tls,
    split_host_port,
)

# Media types (OCI image spec v1 and Docker image manifest v2 schema 2).
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
MANIFEST_TYPES = INDEX_TYPES + IMAGE_TYPES
# Indexes first: a registry that stores an index returns it instead of choosing a platform for us.
MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)
RETRY_STATUSES = (429, 500, 502, 503, 504)
DEFAULT_RETRIES = 3
BACKOFF_SECONDS = 0.5  # first wait; doubles on each retry


def error_codes(body: bytes) -> list:
    """``[(code, message), ...]`` from a registry error body ``{"errors": [...]}``; [] otherwise."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return []
    return [(str(e.get("code", "")), str(e.get("message", ""))) for e in errors if isinstance(e, dict)]


def describe_failure(status: int, body: bytes, what: str, registry: str, authenticated: str = "") -> str:
    """A message for a failed request: what was asked, what the registry said, and what to do."""
    codes = error_codes(body)
    said = "; ".join(f"{c}: {m}" if m else c for c, m in codes) or f"HTTP {status}"
    if status == 401:
        who = f" as {authenticated}" if authenticated else " anonymously"
        hint = (
            "check the username and password"
            if authenticated
            else "give username and password, or log in with docker login (the Docker config is read)"
        )
        return f"{what}: {registry} refused the request{who} ({said}); {hint}"
    if status == 403:
        return f"{what}: {registry} denied access ({said}); the account lacks permission for this repository"
    if status == 404:
        return f"{what}: not found on {registry} ({said}); check the repository, tag or digest"
    if status == 405:
        return (
            f"{what}: {registry} does not allow this operation ({said}); for deletes the registry must run"
            " with deletes enabled (distribution: storage.delete.enabled)"
        )
    return f"{what}: {registry} answered HTTP {status} ({said})"


def parse_link_next(header: str) -> str:
    """The URL of ``rel="next"`` in a ``Link`` header (tag list pagination), or ""."""
    for part in header.split(","):
        url, _sep, params = part.partition(";")
        url = url.strip()
        if not (url.startswith("<") and url.endswith(">")):
            continue
        rels = [p.strip().split("=", 1) for p in params.split(";") if "=" in p]
        if any(name.strip().lower() == "rel" and "next" in value.strip().strip('"').split() for name, value in rels):
            return url[1:-1]
    return ""


@dataclass
class Pushed:
    """A manifest PUT: ``digest`` of what was pushed, ``holds`` what its tag holds right after (the same digest
    unless another writer moved the tag since)."""

    digest: str
    holds: str

    @property
    def replaced(self) -> bool:
        return self.holds != self.digest

    def warning(self, reference: str) -> str:
        return (
            f"another writer moved {reference} right after this push: it holds {self.holds or 'nothing'}, not"
            f" the {self.digest} this task pushed; the result reports what this task pushed - run it again, or"
            " give each writer its own tag"
        )


@dataclass
class Fetched:
    """A manifest as read from the registry; ``digest`` is verified against ``body``."""

    media_type: str
    digest: str
    body: bytes
    data: dict

    @property
    def size(self) -> int:
        return len(self.body)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def manifest_media_type(data: dict, content_type: str) -> str:
    """The manifest's media type: its ``mediaType`` field, else the Content-Type, else inferred."""
    declared = data.get("mediaType") or ""
    header = (content_type or "").split(";", 1)[0].strip()
    media_type = declared or header
    if media_type not in MANIFEST_TYPES:
        if not declared and "manifests" in data:
            media_type = OCI_INDEX
        elif not declared and "config" in data and "layers" in data:
            media_type = OCI_MANIFEST
    if media_type in DOCKER_SCHEMA1 or data.get("schemaVersion") == 1:
        raise RegistryError(
            "the manifest is Docker schema 1, which is deprecated and not supported; rebuild or re-push the image"
        )
    return media_type


class RegistryClient:
    """HTTP to one registry: scheme, authentication, retries, media types, digest checks.

    ``credentials`` are used only when the registry challenges. ``insecure`` (or a loopback
    registry) allows falling back to plain HTTP when the registry does not speak TLS.
    """

    def __init__(
        self,
        registry: str,
        *,
        credentials: Credentials | None = None,
        validate_certs: bool = True,
        ca_cert: str | None = None,
        insecure: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        session=None,
        sleep=time.sleep,
        clock=time.monotonic,
        probe=None,
    ):
        self.registry = registry
        self.credentials = credentials or Credentials()
        self.verify = (ca_cert or environ_ca_bundle() or True) if validate_certs else False
        self.insecure = insecure or is_loopback(registry)
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.session = session if session is not None else Transport()
        self._sleep = sleep
        self._clock = clock
        self._probe = probe if probe is not None else speaks_tls
        self._lock = threading.Lock()
        self._scheme = "https"
        self._scheme_known = not self.insecure
        self._auth_scheme = ""  # "", "basic" or "bearer"
        self._bearer = {}  # realm, service
        self._tokens = []  # [(scopes tuple, token, expiry)]

    # ---- URLs and authentication

    def url(self, path: str) -> str:
        if not self._scheme_known:
            self._detect_scheme()
        return f"{self._scheme}://{self.registry}/v2/{path.lstrip('/')}"

    def _detect_scheme(self) -> None:
        """For an insecure registry: does it speak TLS? A bare handshake answers in a millisecond, before any
        request (and before the CA store is loaded)."""
        with self._lock:
            if self._scheme_known:
                return
            host, port = split_host_port(self.registry)
            answer = self._probe(host, port, min(self.timeout, 5))
            if answer is None:
                return  # unknown: the first request tries HTTPS and falls back to HTTP
            self._scheme = "https" if answer else "http"
            self._scheme_known = True

    @property
    def who(self) -> str:
        return self.credentials.username if self.credentials else ""

    def _auth_headers(self, scopes: tuple) -> dict:
        if self._auth_scheme == "basic":
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
        if self._auth_scheme == "bearer":
            return {"Authorization": "Bearer " + self._token(scopes)}
        return {}

    def _token(self, scopes: tuple) -> str:
        with self._lock:
            now = self._clock()
            self._tokens = [t for t in self._tokens if t[2] > now]
            for have, token, _expiry in self._tokens:
                if scopes_cover(have, scopes):
                    return token
            token, lifetime = self._fetch_token(scopes)
            # Renew a little early so a token does not expire between the check and the request.
            self._tokens.append((scopes, token, now + max(1, lifetime - 5)))
            return token

    def _fetch_token(self, scopes: tuple) -> tuple:
        realm = self._bearer.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(f"{self.registry} sent a Bearer challenge with an invalid realm {realm!r}")
        service = self._bearer.get("service", "")
        creds = self.credentials
        try:
            if creds.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": "fleet.multiarch",
                    "service": service,
                    "scope": " ".join(scopes),
                }
                resp = self.session.request("POST", realm, data=form, timeout=self.timeout, verify=self.verify)
            else:
                params = ([("service", service)] if service else []) + [("scope", s) for s in scopes]
                auth = (creds.username, creds.password) if creds else None
                resp = self.session.request(
                    "GET", realm, params=params, auth=auth, timeout=self.timeout, verify=self.verify
                )
        except TransportError as exc:
            raise RegistryError(f"cannot reach the token server {realm} of {self.registry}: {exc}") from None
        if resp.status_code in (401, 403):
            who = f"user {creds.username!r}" if creds.username else "anonymous access"
            raise RegistryError(
                f"the token server {realm} of {self.registry} refused {who} for {' '.join(scopes)}"
                f" (HTTP {resp.status_code}); check the username and password",
                status=resp.status_code,
            )
        if resp.status_code != 200:
            raise RegistryError(
                f"the token server {realm} of {self.registry} answered HTTP {resp.status_code}", resp.status_code
            )
        return parse_token_response(resp.content, realm)

    def _on_challenge(self, resp, scopes: tuple, what: str) -> None:
        challenges = parse_www_authenticate(resp.headers.get("WWW-Authenticate", ""))
        by_scheme = dict(challenges)
        with self._lock:
            if "bearer" in by_scheme:
                params = by_scheme["bearer"]
                self._bearer = {"realm": params.get("realm", ""), "service": params.get("service", "")}
                self._auth_scheme = "bearer"
                self._tokens = []
                extra = tuple(s for s in (params.get("scope") or "").split(" ") if s)
                if extra:
                    scopes_to_ask = merge_scopes(scopes + extra)
                else:
                    scopes_to_ask = scopes
            elif "basic" in by_scheme:
                if not self.credentials.username:
                    raise RegistryError(
                        describe_failure(401, resp.content, what, self.registry)
                        + f"; the registry asks for Basic authentication ({self._cred_hint()})",
                        status=401,
                    )
                self._auth_scheme = "basic"
                return
            else:
                raise RegistryError(
                    f"{what}: {self.registry} asked for authentication with an unsupported scheme"
                    f" ({', '.join(by_scheme) or 'no WWW-Authenticate header'}); Basic and Bearer are supported",
                    status=401,
                )
        if scopes_to_ask:
            self._token(scopes_to_ask)

    def _cred_hint(self) -> str:
        return "no credentials were given and the Docker config has none for this registry"

    # ---- the request loop

    def request(self, method: str, path: str, scopes: tuple = (), what: str = "", expect=(200,), **kwargs):
        """Send one request with auth, scheme fallback, retries; raise :class:`RegistryError` unless expected."""
        what = what or f"{method} {path}"
        headers = dict(kwargs.pop("headers", {}) or {})
        url = kwargs.pop("url", None)
        challenged = False
        attempt = 0
        first_error = None
        while True:
            target = url or self.url(path)
            try:
                resp = self.session.request(
                    method,
                    target,
                    headers={**headers, **self._auth_headers(scopes)},
                    timeout=self.timeout,
                    verify=self.verify,
                    **kwargs,
                )
            except TlsError as exc:
                # A certificate problem means the registry does speak TLS: never fall back to HTTP then.
                if not exc.certificate and self._try_plain_http(target, url):
                    first_error = exc
                    continue
                raise RegistryError(
                    f"{what}: TLS with {self.registry} failed: {exc}; give ca_cert with the registry's CA"
                    " (or validate_certs: false), or mark it in insecure_registries when it speaks plain HTTP"
                ) from None
            except DeadlineError as exc:
                # not retried: the registry answers, too slowly for the timeout the task gave
                raise RegistryError(
                    f"{what}: {self.registry} did not answer within the timeout: {exc}; raise timeout, or check the"
                    " registry's load and the network to it"
                ) from None
            except ProxyError as exc:
                if attempt < self.retries:
                    self._sleep(BACKOFF_SECONDS * (2**attempt))
                    attempt += 1
                    continue
                host = split_host_port(self.registry)[0]
                raise RegistryError(
                    f"{what}: cannot reach the proxy {exc.proxy} (from {exc.source}) for {self.registry} after"
                    f" {attempt + 1} attempts: {exc}; start the proxy or correct {exc.source}, or add {host} to"
                    " NO_PROXY when the registry is reached directly"
                ) from None
            except ConnectError as exc:
                if self._try_plain_http(target, url):
                    first_error = exc
                    continue
                if attempt < self.retries:
                    self._sleep(BACKOFF_SECONDS * (2**attempt))
                    attempt += 1
                    continue
                extra = f" (over HTTPS first: {first_error})" if first_error else ""
                raise RegistryError(
                    f"{what}: cannot reach {self.registry} after {attempt + 1} attempts: "
                    f"{exc}{extra}; check the address and that the registry runs"
                ) from None
            self._scheme_known = True
            if resp.status_code == 401 and not challenged and resp.headers.get("WWW-Authenticate"):
                challenged = True
                self._on_challenge(resp, scopes, what)
                continue
            if resp.status_code in RETRY_STATUSES and attempt < self.retries:
                self._sleep(self._retry_wait(resp, attempt))
                attempt += 1
                continue
            if resp.status_code not in expect:
                authenticated = self.who if self._auth_scheme else ""
                raise RegistryError(
                    describe_failure(resp.status_code, resp.content, what, self.registry, authenticated),
                    status=resp.status_code,
                    codes=tuple(c for c, _m in error_codes(resp.content)),
                )
            return resp

    def _try_plain_http(self, target: str, url: str | None) -> bool:
        """Switch to plain HTTP once, for an insecure registry whose scheme is not known yet."""
        with self._lock:
            if url is None and self.insecure and target.startswith("https://"):
                if self._scheme == "http":
                    return True  # another thread switched while this request was on its way
                if not self._scheme_known:
                    self._scheme = "http"
                    self._scheme_known = True
                    return True
        return False

    @staticmethod
    def _retry_wait(resp, attempt: int) -> float:
        wait = BACKOFF_SECONDS * (2**attempt)
        header = resp.headers.get("Retry-After", "")
        if header.isdigit():
            wait = min(float(header), 30.0)
        return wait

    # ---- manifests

    def get_manifest(self, repository: str, ref: str, accept: str = MANIFEST_ACCEPT) -> Fetched:
        """GET a manifest or index and verify its digest (against ``ref`` when it is one)."""
        what = f"reading manifest {self.registry}/{repository}{_sep(ref)}{ref}"
        resp = self.request(
            "GET",
            f"{repository}/manifests/{ref}",
            scopes=(repository_scope(repository, ["pull"]),),
            what=what,
            headers={"Accept": accept},
        )
        body = resp.content
        if _DIGEST_RE.match(ref):
            digest = verify_digest(body, ref, what)
        else:
            announced = resp.headers.get("Docker-Content-Digest", "")
            digest = compute_digest(body)
            if announced and _DIGEST_RE.match(announced):
                digest = verify_digest(body, announced, what)
        data = json_object(body, f"{what}: the registry", "a manifest object")
        media_type = manifest_media_type(data, resp.headers.get("Content-Type", ""))
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(f"{what}: unsupported manifest media type {media_type!r}")
        return Fetched(media_type, digest, body, data)

    def head_manifest(self, repository: str, ref: str) -> dict | None:
        """``{digest, media_type, size}`` of a manifest without its body; None when it does not exist.

        ``digest`` is empty when the registry does not announce one (then GET is needed).
        """
        resp = self.request(
            "HEAD",
            f"{repository}/manifests/{ref}",
            scopes=(repository_scope(repository, ["pull"]),),
            what=f"checking manifest {self.registry}/{repository}{_sep(ref)}{ref}",
            headers={"Accept": MANIFEST_ACCEPT},
            expect=(200, 404),
        )
        if resp.status_code == 404:
            return None
        digest = resp.headers.get("Docker-Content-Digest", "")
        return {
            "digest": digest if _DIGEST_RE.match(digest) else "",
            "media_type": resp.headers.get("Content-Type", "").split(";", 1)[0].strip(),
            "size": int(resp.headers.get("Content-Length") or 0),
        }

    def put_manifest(self, repository: str, ref: str, body: bytes, media_type: str) -> Pushed:
        """PUT a manifest, check the registry stored the same bytes, and for a tag read back what it holds.

        The one place where manifests are written (``manifest``, ``image_build``, the release). Another writer of
        the same tag may move it right after this PUT: :attr:`Pushed.holds` says what the tag holds then. When the
        answer to the PUT is lost (the connection cut, a 5xx after the registry stored it), the tag decides: if it
        holds this manifest the push succeeded; else the error says what it holds.
        """
        digest = compute_digest(body)
        what = f"pushing manifest {self.registry}/{repository}{_sep(ref)}{ref}"
        is_tag = not _DIGEST_RE.match(ref)
        try:
            resp = self.request(
                "PUT",
                f"{repository}/manifests/{ref}",
                scopes=(repository_scope(repository, ["pull", "push"]),),
                what=what,
                headers={"Content-Type": media_type},
                data=body,
                expect=(201, 200, 202),
            )
        except RegistryError as exc:
            if not is_tag or (exc.status is not None and exc.status < 500):
                raise  # refused: nothing was stored
            try:
                holds = self.tag_digest(repository, ref)
            except RegistryError:
                raise exc from None
            if holds == digest:
                return Pushed(digest, holds)  # stored; only the answer was lost
            raise RegistryError(
                f"{exc}; afterwards the tag holds {holds or 'nothing'}, not the pushed {digest}, so the push did not"
                " take effect or another writer replaced it",
                status=exc.status,
                codes=exc.codes,
            ) from None
        stored = resp.headers.get("Docker-Content-Digest", "")
        if stored and stored != digest:
            raise DigestMismatch(f"{what}: the registry stored digest {stored}, expected {digest}")
        return Pushed(digest, self.tag_digest(repository, ref) if is_tag else digest)

    def tag_digest(self, repository: str, tag: str) -> str:
        """The digest ``tag`` holds now, "" when it does not exist (HEAD, and GET when no digest is announced)."""
        head = self.head_manifest(repository, tag)
        if head is None:
            return ""
        return head["digest"] or self.get_manifest(repository, tag).digest

    def delete_manifest(self, repository: str, ref: str) -> None:
        self.request(
            "DELETE",
            f"{repository}/manifests/{ref}",
            scopes=(repository_scope(repository, ["pull", "push", "delete"]),),
            what=f"deleting {self.registry}/{repository}{_sep(ref)}{ref}",
            expect=(202, 200),
        )

    def list_tags(self, repository: str) -> list:
        """Every tag of ``repository`` (following ``Link`` pagination)."""
        tags = []
        path = f"{repository}/tags/list?n=1000"
        url = None
        while True:
            resp = self.request(
                "GET",
                path,
                url=url,
                scopes=(repository_scope(repository, ["pull"]),),
                what=f"listing the tags of {self.registry}/{repository}",
                expect=(200, 404),
            )
            if resp.status_code == 404:
                return tags
            try:
                page = json.loads(resp.content)
            except ValueError:
                what = f"listing the tags of {self.registry}/{repository}"
                raise RegistryError(f"{what}: the registry returned a body that is not JSON") from None
            tags.extend((page.get("tags") if isinstance(page, dict) else None) or [])
            link = parse_link_next(resp.headers.get("Link") or "")
            if not link:
                return tags
            url = urljoin(self.url(""), link)

    # ---- blobs

    def get_blob(self, repository: str, digest: str) -> bytes:
        """Blob ``digest``, checked against the digest, in memory: for configs (layers: :meth:`download_blob`)."""
        resp, what = self._read_blob(repository, digest)
        return _verified(resp.content, digest, what)

    def download_blob(self, repository: str, digest: str, sink) -> None:
        """Write blob ``digest`` into ``sink`` (a seekable binary file, overwritten) and check it against the digest;
        for layers, which need not fit in memory."""
        _resp, what = self._read_blob(repository, digest, sink)
        verify_digest(sink, digest, what)

    def _read_blob(self, repository: str, digest: str, sink=None) -> tuple:
        what = f"reading blob {digest} from {self.registry}/{repository}"
        scopes = (repository_scope(repository, ["pull"]),)
        return self.request("GET", f"{repository}/blobs/{digest}", scopes=scopes, what=what, sink=sink), what

    def blob_exists(self, repository: str, digest: str) -> bool:
        resp = self.request(
            "HEAD",
            f"{repository}/blobs/{digest}",
            scopes=(repository_scope(repository, ["pull"]),),
            what=f"checking blob {digest} in {self.registry}/{repository}",
            expect=(200, 404),
        )
        return resp.status_code == 200

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> str:
        """Cross-repository mount; return "" when mounted, else the upload URL the registry opened."""
        resp = self.request(
            "POST",
            f"{repository}/blobs/uploads/",
            scopes=merge_scopes(
                (repository_scope(repository, ["pull", "push"]), repository_scope(from_repository, ["pull"]))
            ),
            what=f"mounting blob {digest} from {from_repository} into {self.registry}/{repository}",
            params={"mount": digest, "from": from_repository},
            expect=(201, 202),
        )
        if resp.status_code == 201:
            return ""
        return self._location(resp)

    def upload_blob(self, repository: str, digest: str, data, upload_url: str = "") -> None:
        """Monolithic upload (POST then PUT with the digest) of bytes or a seekable binary file; the registry checks
        the digest too."""
        verify_digest(data, digest, f"uploading blob {digest}")
        size = len(data) if isinstance(data, (bytes, bytearray)) else data.seek(0, os.SEEK_END)
        scopes = (repository_scope(repository, ["pull", "push"]),)
        what = f"uploading blob {digest} to {self.registry}/{repository}"
        if not upload_url:
            resp = self.request("POST", f"{repository}/blobs/uploads/", scopes=scopes, what=what, expect=(202,))
            upload_url = self._location(resp)
        self.request(
            "PUT",
            "",
            url=upload_url,
            scopes=scopes,
            what=what,
            params={"digest": digest},
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            data=data,
            expect=(201, 204),
        )

    def _location(self, resp) -> str:
        location = resp.headers.get("Location", "")
        if not location:
            raise RegistryError(f"{self.registry} opened a blob upload without a Location header")
        return urljoin(self.url(""), location)


def _verified(data: bytes, digest: str, what: str) -> bytes:
    verify_digest(data, digest, what)
    return data


REGISTRY_ARGUMENT_SPEC = {
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "docker_config": {"type": "path"},
    "validate_certs": {"type": "bool", "default": True},
    "ca_cert": {"type": "path"},
    "insecure_registries": {"type": "list", "elements": "str", "default": []},
    "timeout": {"type": "int", "default": DEFAULT_TIMEOUT},
}


def registry_argument_spec() -> dict:
    """The registry options shared by the modules (documented in the ``registry`` doc fragment)."""
    return {key: dict(value) for key, value in REGISTRY_ARGUMENT_SPEC.items()}


class ClientPool:
    """One :class:`RegistryClient` per registry host, built from the module's registry options.

    ``username``/``password`` apply to the registry of ``primary`` only (the one the module acts on);
    every other registry gets credentials from the Docker config, or none.
    """

    def __init__(self, params: dict, primary: str, session_factory=None):
        self.params = params
        self.primary = primary
        self.session_factory = session_factory
        self._clients: dict = {}
        self._config = None
        self._lock = threading.Lock()
        insecure = params.get("insecure_registries") or []
        self.insecure = {h.strip().lower() for h in insecure if h and h.strip()}

    def credentials(self, registry: str) -> Credentials:
        params = self.params
        if registry == self.primary and (params.get("username") or params.get("password")):
            if not (params.get("username") and params.get("password")):
                raise RegistryError("username and password are given together, or neither")
            return Credentials(params["username"], params["password"], source="module options")
        if self._config is None:
            path = docker_config_path(params.get("docker_config"))
            self._config = (path, load_docker_config(path))
        path, config = self._config
        return credentials_from_docker_config(config, registry, source=path) or Credentials()

    def get(self, registry: str) -> RegistryClient:
        with self._lock:
            client = self._clients.get(registry)
            if client is None:
                client = RegistryClient(
                    registry,
                    credentials=self.credentials(registry),
                    validate_certs=self.params.get("validate_certs", True),
                    ca_cert=self.params.get("ca_cert"),
                    insecure=registry.lower() in self.insecure,
                    timeout=self.params.get("timeout") or DEFAULT_TIMEOUT,
                    session=self.session_factory() if self.session_factory else None,
                )
                self._clients[registry] = client
            return client
