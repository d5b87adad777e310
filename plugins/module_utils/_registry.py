# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""The collection's one place for registry HTTP (OCI distribution spec, Docker Registry HTTP API v2).

What lives here: image references, the ``WWW-Authenticate`` challenge (anonymous, Basic and the
Bearer token flow of the distribution token spec), credentials from module options or the user's
Docker ``config.json``, TLS and the plain-HTTP fallback for insecure registries, retries with
backoff, the media types and Accept headers, and a digest check on every manifest and blob read.

The parsing functions are pure and unit-tested; :class:`RegistryClient` is the only code that
talks HTTP, through :class:`Transport`, a ``requests.Session`` (keep-alive, proxies, TLS, redirects).
Both are safe to share between threads.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from ansible.module_utils.basic import missing_required_lib

try:
    import requests
    import urllib3
    from requests.adapters import HTTPAdapter

    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - depends on the target's Python
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = _exc

from ansible_collections.fleet.multiarch.plugins.module_utils._concurrent import parallel

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

USER_AGENT = "fleet.multiarch"
RETRY_STATUSES = (429, 500, 502, 503, 504)
DEFAULT_TIMEOUT = 30
DEFAULT_RETRIES = 3
BACKOFF_SECONDS = 0.5  # first wait; doubles on each retry
TOKEN_LIFETIME_DEFAULT = 60  # seconds, as the token spec says when expires_in is absent
CHUNK = 1 << 20  # bytes read or written at a time when a blob goes through a file

_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
# the distribution spec's tag grammar, ASCII only (Python's \w alone would take any Unicode letter)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST_RE = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?)(?::[0-9]+)?$")


class RegistryError(Exception):
    """A registry operation failed; the message says what and what to do. Never holds a credential."""

    def __init__(self, msg: str, status: int | None = None, codes: tuple = ()):
        super().__init__(msg)
        self.status = status
        self.codes = tuple(codes)


class ImageReferenceError(ValueError):
    """An image reference that cannot be parsed."""


class DigestMismatch(RegistryError):
    """Content whose digest is not the one asked for or announced."""


class SpoolError(RegistryError):
    """A blob could not be written to its temporary file (the disk is full, ``TMPDIR`` is not writable): not the
    registry's fault, so it is neither retried nor reported as a connection problem."""


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class Reference:
    """``registry/repository[:tag][@digest]``; the registry host is always explicit."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def ref(self) -> str:
        """What goes after ``/manifests/``: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, "", digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(text) -> Reference:
    """Parse ``host[:port]/path[:tag][@digest]``; a reference without a registry host is refused.

    Docker reads ``busybox`` as a Docker Hub reference; this collection names no public registry, so
    the host must be written (``127.0.0.1:5000/library/busybox``). A tag defaults to ``latest`` only
    when there is neither a tag nor a digest.
    """
    if not isinstance(text, str) or not text.strip():
        raise ImageReferenceError(f"invalid image reference {text!r}: expected host[:port]/repository[:tag][@digest]")
    raw = text.strip()
    digest = ""
    rest = raw
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise ImageReferenceError(
                f"invalid digest {digest!r} in image reference {raw!r}: expected sha256: and 64 lowercase hex digits"
            )
    if "/" not in rest:
        raise ImageReferenceError(
            f"image reference {raw!r} has no registry host: write it explicitly, e.g. '127.0.0.1:5000/{rest}'"
        )
    host, path = rest.split("/", 1)
    if not ("." in host or ":" in host or host == "localhost" or host.startswith("[")):
        raise ImageReferenceError(
            f"image reference {raw!r} has no registry host ({host!r} is a repository path component):"
            f" write the registry explicitly, e.g. '127.0.0.1:5000/{rest}'"
        )
    if not _HOST_RE.match(host):
        raise ImageReferenceError(f"invalid registry host {host!r} in image reference {raw!r}")
    tag = ""
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        if not _TAG_RE.match(tag):
            raise ImageReferenceError(
                f"invalid tag {tag!r} in image reference {raw!r}: up to 128 ASCII letters, digits, '_', '.', '-',"
                " not starting with '.' or '-' (the distribution spec's tag grammar)"
            )
    components = path.split("/")
    for comp in components:
        if not _PATH_COMPONENT_RE.match(comp):
            raise ImageReferenceError(
                f"invalid repository {path!r} in image reference {raw!r}: each path component is lowercase"
                " letters and digits, separated by '.', '_', '__' or '-'"
            )
    if not tag and not digest:
        tag = "latest"
    return Reference(host, path, tag, digest)


def is_loopback(registry: str) -> bool:
    """``localhost``, 127.0.0.0/8 and ::1: registries Docker treats as insecure without being told."""
    host = registry
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- digests


def compute_digest(data, algorithm: str = "sha256") -> str:
    """``algorithm:hex`` of ``data``: bytes, or a seekable binary file (read from its start)."""
    if algorithm not in ("sha256", "sha512"):
        raise RegistryError(f"unsupported digest algorithm {algorithm!r}: only sha256 and sha512 are supported")
    if isinstance(data, (bytes, bytearray)):
        return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    hasher = hashlib.new(algorithm)
    data.seek(0)
    for chunk in iter(lambda: data.read(CHUNK), b""):
        hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"


def verify_digest(data, expected: str, what: str) -> str:
    """Return ``expected`` when ``data`` (bytes or a seekable file) has that digest; raise :class:`DigestMismatch`
    otherwise."""
    algorithm = expected.split(":", 1)[0]
    actual = compute_digest(data, algorithm)
    if actual != expected:
        raise DigestMismatch(
            f"{what}: the registry returned content with digest {actual}, not {expected};"
            " the content is corrupt or was changed in transit, so it is not used"
        )
    return actual


# --------------------------------------------------------------------------- WWW-Authenticate

_TOKEN_CHARS = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def _read_value(text: str, pos: int) -> tuple:
    """A parameter value at ``pos`` (quoted with backslash escapes, or a bare token) and the end position."""
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    if pos < len(text) and text[pos] == '"':
        chars = []
        pos += 1
        while pos < len(text) and text[pos] != '"':
            if text[pos] == "\\" and pos + 1 < len(text):
                pos += 1
            chars.append(text[pos])
            pos += 1
        if pos >= len(text):
            raise RegistryError(f"cannot parse the registry's WWW-Authenticate header {text!r}: unclosed quote")
        return "".join(chars), pos + 1
    end = pos
    while end < len(text) and text[end] not in " \t,":
        end += 1
    return text[pos:end], end


def parse_www_authenticate(header: str) -> list:
    """Parse a ``WWW-Authenticate`` value into ``[(scheme, {param: value}), ...]`` (names lower-cased).

    Handles several challenges in one header, quoted values with escapes and unquoted tokens:
    ``Bearer realm="https://127.0.0.1:5001/auth",service="registry",scope="repository:a/b:pull,push"``.
    """
    text = header or ""
    challenges = []
    current = None
    pos = 0
    while pos < len(text):
        if text[pos] in " \t,":
            pos += 1
            continue
        match = _TOKEN_CHARS.match(text, pos)
        if not match:
            raise RegistryError(f"cannot parse the registry's WWW-Authenticate header at {text[pos:]!r}")
        word = match.group(0)
        pos = match.end()
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos >= len(text) or text[pos] != "=":
            current = (word.lower(), {})  # a bare word starts a new challenge: its scheme
            challenges.append(current)
            continue
        value, pos = _read_value(text, pos + 1)  # after the "="
        if current is None:
            raise RegistryError(f"cannot parse the registry's WWW-Authenticate header {text!r}: no scheme")
        current[1][word.lower()] = value
    return challenges


def parse_scope(scope: str) -> tuple:
    """``repository:a/b:pull,push`` -> ``("repository", "a/b", frozenset({"pull", "push"}))``."""
    parts = scope.split(":")
    if len(parts) < 3:
        raise RegistryError(f"cannot parse the token scope {scope!r}: expected type:name:actions")
    # A name may carry a port ("repository:127.0.0.1:5000/x:pull" is not valid, but be lenient).
    kind, actions = parts[0], parts[-1]
    name = ":".join(parts[1:-1])
    return kind, name, frozenset(a for a in actions.split(",") if a)


def repository_scope(repository: str, actions) -> str:
    return f"repository:{repository}:{','.join(sorted(set(actions), key=['pull', 'push', 'delete', '*'].index))}"


def merge_scopes(scopes) -> tuple:
    """Merge scope strings naming the same resource; return a sorted tuple (a stable cache key)."""
    merged: dict = {}
    for scope in scopes:
        kind, name, actions = parse_scope(scope)
        merged.setdefault((kind, name), set()).update(actions)
    order = ["pull", "push", "delete", "*"]
    out = []
    for (kind, name), actions in sorted(merged.items()):
        acts = sorted(actions, key=lambda a: order.index(a) if a in order else len(order))
        out.append(f"{kind}:{name}:{','.join(acts)}")
    return tuple(out)


def scopes_cover(have, want) -> bool:
    """True when the scopes ``have`` grant at least every action of ``want``."""
    granted: dict = {}
    for scope in have:
        kind, name, actions = parse_scope(scope)
        granted.setdefault((kind, name), set()).update(actions)
    for scope in want:
        kind, name, actions = parse_scope(scope)
        if not actions <= granted.get((kind, name), set()) and "*" not in granted.get((kind, name), set()):
            return False
    return True


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    """Credentials for one registry; ``repr`` never shows the secret."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    source: str = ""

    def __bool__(self) -> bool:
        return bool((self.username and self.password) or self.identity_token)


def docker_config_path(option: str | None = None, environ=None) -> str:
    """``option`` (a config.json or its directory), else ``$DOCKER_CONFIG/config.json``, else ``~/.docker``."""
    env = os.environ if environ is None else environ
    path = option or env.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    path = os.path.expanduser(path)
    if os.path.isdir(path) or not path.endswith(".json"):
        path = os.path.join(path, "config.json")
    return path


def _normalise_auth_key(key: str) -> str:
    text = key.strip()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.split("/", 1)[0].lower()


def credentials_from_docker_config(config: dict, registry: str, source: str = "docker config") -> Credentials | None:
    """Credentials for ``registry`` from a parsed Docker ``config.json`` (``auths.<host>``), or None.

    Keys may be a bare host (``127.0.0.1:5443``) or a URL (``https://127.0.0.1:5443/v1/``). An entry
    holds ``auth`` (base64 of ``user:password``), or ``username``/``password``, or ``identitytoken``.
    """
    auths = config.get("auths") or {}
    if not isinstance(auths, dict):
        raise RegistryError(f"{source}: 'auths' is not a mapping; fix the file or run docker login again")
    wanted = registry.lower()
    for key, entry in auths.items():
        if _normalise_auth_key(key) != wanted or not isinstance(entry, dict):
            continue
        username = entry.get("username") or ""
        password = entry.get("password") or ""
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(entry["auth"], validate=False).decode("utf-8")
            except (ValueError, UnicodeDecodeError) as exc:
                raise RegistryError(
                    f"{source}: the 'auth' entry for {registry} is not base64 of user:password"
                    f" ({exc.__class__.__name__}); run docker login again"
                ) from None
            if ":" not in decoded:
                raise RegistryError(
                    f"{source}: the 'auth' entry for {registry} has no ':' between user and password;"
                    " run docker login again"
                )
            username, password = decoded.split(":", 1)
        token = entry.get("identitytoken") or ""
        creds = Credentials(username, password, token, source=f"{source} (auths.{key})")
        if creds:
            return creds
    return None


def load_docker_config(path: str) -> dict:
    """The parsed ``config.json`` at ``path``; ``{}`` when the file does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read the Docker config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"the Docker config {path} is not a JSON object")
    return data


# --------------------------------------------------------------------------- errors


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


# --------------------------------------------------------------------------- HTTP transport


class TransportError(Exception):
    """No HTTP answer: the connection failed, timed out, or was cut (``ConnectError``), or TLS failed
    (``TlsError``)."""


class ConnectError(TransportError):
    """Cannot connect, the connection was cut, or no answer within the timeout."""


class DeadlineError(ConnectError):
    """The answer did not arrive whole within the request's timeout (a registry that trickles its body)."""


class ProxyError(ConnectError):
    """The proxy the environment names for the URL cannot be reached; ``proxy`` (without credentials) and
    ``source`` (the variable it came from) say which."""

    def __init__(self, msg: str, proxy: str, source: str):
        super().__init__(msg)
        self.proxy = proxy
        self.source = source


class TlsError(TransportError):
    """The TLS handshake failed; ``certificate`` when the peer's certificate was refused."""

    def __init__(self, msg: str, certificate: bool = False):
        super().__init__(msg)
        self.certificate = certificate


@dataclass
class Response:
    """One HTTP answer: ``headers`` is a case-insensitive mapping (``get`` ignores the case)."""

    status_code: int
    headers: object
    content: bytes
    url: str = ""


MAX_REDIRECTS = 10


def requests_missing() -> str:
    """The message when ``requests`` cannot be imported, with what to install."""
    return (
        missing_required_lib("requests")
        + " On Debian and Ubuntu install python3-requests; elsewhere pip install requests into the Python that"
        " runs the module."
    )


def system_ca_store():
    """The system's CA store as OpenSSL finds it (``SSL_CERT_FILE``/``SSL_CERT_DIR`` included), as ``docker`` and
    ``curl`` verify, rather than the ``certifi`` bundle that requests would use; True (requests' choice) if none."""
    paths = ssl.get_default_verify_paths()
    if paths.cafile and os.path.isfile(paths.cafile):
        return paths.cafile
    if paths.capath and os.path.isdir(paths.capath):
        return paths.capath
    return True


def _no_netrc(request):
    """The session's ``auth``: keeps requests from adding ``~/.netrc`` credentials; the client sends its own."""
    return request


class Transport:
    """HTTP for the registry client on a ``requests.Session``: connections kept alive per origin, proxies from the
    environment chosen for each URL (the target of a redirect too, ``http://`` and ``https://`` proxies, HTTPS through
    ``CONNECT``), TLS verified against the system's CA store or a given bundle, redirects (credentials stay with
    their origin), form and query parameters, Basic credentials for token servers, blobs sent from and written to
    files. ``timeout`` bounds the whole answer, its body included, not only each read. Safe to share between
    threads for the requests the client sends.
    """

    POOL_SIZE = 16

    def __init__(self, user_agent: str = USER_AGENT):
        if not HAS_REQUESTS:
            raise RegistryError(requests_missing())
        self.session = requests.Session()
        # identity: a blob's bytes are checked against its digest as the registry stored them
        self.session.headers.update({"User-Agent": user_agent, "Accept-Encoding": "identity"})
        self.session.max_redirects = MAX_REDIRECTS
        self.session.auth = _no_netrc
        adapter = HTTPAdapter(pool_connections=self.POOL_SIZE, pool_maxsize=self.POOL_SIZE)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict | None = None,
        data=None,
        params=None,
        auth: tuple | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        verify=True,
        proxies: dict | None = None,
        sink=None,
    ) -> Response:
        """Send one request, following redirects, and read its whole answer within ``timeout`` seconds.

        ``data``: bytes, a dict (sent as a form), or a seekable binary file sent from its start (give its
        ``Content-Length``). ``sink``: a seekable binary file that a 2xx answer's body is written to, from its start,
        instead of being kept in memory. ``proxies``: ``{scheme: proxy URL}``; by default the environment's for
        each URL.
        """
        deadline = time.monotonic() + timeout
        if verify is True:
            verify = system_ca_store()
        elif verify is False:
            # the task asked for no verification (validate_certs: false): no warning on every request
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        if hasattr(data, "seek"):
            data.seek(0)  # sent from its start (a retry sends it again)
        if isinstance(verify, str) and url.startswith("https://") and not os.path.exists(verify):
            # certificate: no fallback to plain HTTP for a CA file that is missing
            raise TlsError(f"cannot load the CA certificates {verify!r}: no such file", certificate=True)
        try:
            resp = self.session.request(
                method,
                url,
                headers=headers,
                data=data,
                params=params,
                auth=auth,
                timeout=timeout,
                verify=verify,
                proxies=proxies,
                stream=True,
            )
        except requests.exceptions.ProxyError as exc:
            proxy, source = proxy_source(url, proxies)
            raise ProxyError(_describe(exc), proxy, source) from None
        except requests.exceptions.SSLError as exc:
            cause = _root_cause(exc)
            certificate = isinstance(cause, ssl.SSLCertVerificationError) or "certificate verify failed" in str(exc)
            raise TlsError(_describe(exc), certificate) from None
        except requests.exceptions.TooManyRedirects:
            raise ConnectError(f"more than {MAX_REDIRECTS} redirects from {url}") from None
        except (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema, requests.exceptions.InvalidURL):
            raise ConnectError(f"cannot send a request to {url!r}: not an http(s) URL") from None
        except requests.exceptions.RequestException as exc:
            raise ConnectError(_describe(exc)) from None
        except OSError as exc:  # requests' own check of the CA bundle
            raise TlsError(f"cannot load the CA certificates {verify!r}: {exc}", certificate=True) from None
        with resp:
            content = _read_body(resp, sink, deadline, timeout)
        return Response(resp.status_code, resp.headers, content, resp.url)


class _Watchdog:
    """Shuts the answer's socket down at the deadline, so a body that trickles in ends there (a socket timeout
    bounds only each read)."""

    def __init__(self, resp, deadline: float):
        self.fired = False
        self._sock = _socket_of(resp)
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        if self._sock is not None:
            try:
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()


def _socket_of(resp):
    """The socket an answer of requests (urllib3 1.26 or 2) is read from, or None."""
    sock = getattr(getattr(resp.raw, "_connection", None), "sock", None)
    if sock is None:
        try:
            sock = resp.raw._fp.fp.raw._sock
        except AttributeError:
            return None
    return sock if isinstance(sock, socket.socket) else None


def _read_body(resp, sink, deadline: float, timeout: float) -> bytes:
    """The body of ``resp``; a 2xx body goes into ``sink`` instead (from its start, so a retry overwrites it).

    A read that fails is the connection's (:class:`ConnectError`, :class:`DeadlineError` past the deadline); a
    write that fails is the sink's (:class:`SpoolError`).
    """
    spool = sink is not None and 200 <= resp.status_code < 300
    if spool:
        try:
            sink.seek(0)
            sink.truncate()
        except OSError as exc:
            raise _spool_error(exc) from None
    watchdog = _Watchdog(resp, deadline)
    parts = []
    try:
        for chunk in resp.iter_content(CHUNK):
            if not spool:
                parts.append(chunk)
                continue
            try:
                sink.write(chunk)
            except OSError as exc:
                raise _spool_error(exc) from None
    except SpoolError:
        raise
    except Exception as exc:  # the read, cut by the watchdog or by the peer: requests', urllib3's or the socket's
        if watchdog.fired:
            raise _deadline_error(timeout) from None
        raise ConnectError(_describe(exc)) from None
    finally:
        watchdog.cancel()
    if watchdog.fired:
        raise _deadline_error(timeout)
    return b"".join(parts)


def _deadline_error(timeout: float) -> DeadlineError:
    return DeadlineError(f"the whole answer did not arrive within the timeout of {timeout:g} s")


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost error under requests' and urllib3's wrappers (``reason``, ``args[0]``, the chained cause)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        if inner is None:
            inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def _describe(exc: BaseException) -> str:
    """``ConnectionRefusedError: [Errno 111] Connection refused`` rather than requests' pool and object names."""
    cause = _root_cause(exc)
    text = str(cause)
    if ">: " in text:  # urllib3 prefixes its connection object: "<...HTTPConnection object at 0x...>: Failed to ..."
        text = text.split(">: ", 1)[1]
    return f"{cause.__class__.__name__}: {text}"


def proxy_source(url: str, proxies: dict | None = None, environ=None) -> tuple:
    """``(proxy URL without credentials, where it came from)`` for ``url``: the variable of the environment
    (``HTTPS_PROXY``, ``https_proxy``, ``ALL_PROXY``, ...) or ``proxies``; ``("", "")`` when none applies."""
    scheme = urlsplit(url).scheme
    if proxies:
        chosen, source = proxies.get(scheme) or proxies.get("all") or "", "proxies"
    else:
        env = os.environ if environ is None else environ
        chosen, source = "", ""
        if environ_proxies(url, env):
            for key in (f"{scheme}_proxy", "all_proxy"):
                for name in (key, key.upper()):
                    if env.get(name):
                        chosen, source = env[name], name
                        break
                if chosen:
                    break
    if not chosen:
        return "", ""
    if "://" not in chosen:
        chosen = "http://" + chosen
    parts = urlsplit(chosen)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else ""), source


def _spool_error(exc: OSError) -> SpoolError:
    return SpoolError(
        f"cannot write a blob to its temporary file in {tempfile.gettempdir()}: {exc}; free some space there or"
        " point TMPDIR to a directory with room for the largest layers copied at once"
    )


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


# --------------------------------------------------------------------------- the client


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
        try:
            data = json.loads(body)
        except ValueError:
            raise RegistryError(f"{what}: the registry returned a body that is not JSON") from None
        if not isinstance(data, dict):
            raise RegistryError(f"{what}: the registry returned JSON that is not a manifest object")
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


def copy_blob(src: RegistryClient, src_repo: str, dst: RegistryClient, dst_repo: str, digest: str) -> None:
    """Make blob ``digest`` of ``src/src_repo`` exist in ``dst/dst_repo``.

    Within one registry it is a cross-repository mount (no data moves; a blob the repository already
    has is a no-op); across registries it is uploaded unless it is already there, through a temporary file
    (``TMPDIR``), so a layer never has to fit in memory.
    """
    upload_url = ""
    if src.registry == dst.registry:
        upload_url = dst.mount_blob(dst_repo, digest, src_repo)
        if not upload_url:
            return
    elif dst.blob_exists(dst_repo, digest):
        return
    try:
        spool = tempfile.TemporaryFile()
    except OSError as exc:
        raise _spool_error(exc) from None
    with spool:
        src.download_blob(src_repo, digest, spool)
        dst.upload_blob(dst_repo, digest, spool, upload_url)


def copy_manifest_blobs(src: RegistryClient, src_repo: str, dst: RegistryClient, dst_repo: str, manifest: dict) -> None:
    """Copy the config and layers of an image manifest (its parsed JSON) into ``dst/dst_repo``, in parallel.

    Foreign layers (descriptors with ``urls``) stay where their URLs point.
    """
    digests = [
        blob["digest"]
        for blob in [manifest.get("config") or {}, *(manifest.get("layers") or [])]
        if blob.get("digest") and not blob.get("urls")
    ]
    parallel(lambda digest: copy_blob(src, src_repo, dst, dst_repo, digest), digests)


def environ_proxies(url: str, environ=None) -> dict:
    """The proxies the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``; the lower-case
    name wins) gives for ``url``: ``{scheme: proxy URL}``, empty when ``NO_PROXY`` covers its host."""
    env = os.environ if environ is None else environ
    found = {}
    for name, value in env.items():
        low = name.lower()
        if value and low.endswith("_proxy") and (low not in found or name == low):
            found[low] = value
    proxies = {name[: -len("_proxy")]: value for name, value in found.items()}
    if not proxies or urllib.request.proxy_bypass_environment(urlsplit(url).netloc.rsplit("@", 1)[-1], proxies):
        return {}
    proxies.pop("no", None)
    return proxies


def environ_ca_bundle() -> str:
    """A CA bundle from the environment (``REQUESTS_CA_BUNDLE``, then ``CURL_CA_BUNDLE``), as requests and curl
    read it; OpenSSL itself reads ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or ""


def split_host_port(registry: str) -> tuple:
    """``127.0.0.1:5000`` -> ("127.0.0.1", 5000); ``[::1]:5000`` -> ("::1", 5000); no port means 443."""
    if registry.startswith("["):
        host, _bracket, rest = registry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif registry.count(":") == 1:
        host, port = registry.split(":", 1)
    else:
        host, port = registry, ""
    return host, int(port) if port.isdigit() else 443


_PLAIN_HTTP_MARKERS = ("wrong version number", "record layer failure", "packet length too long", "unknown protocol")


def speaks_tls(host: str, port: int, timeout: float):
    """True when ``host:port`` completes a TLS handshake, False when it answers like plain HTTP, None if unknown.

    Only a probe to choose the scheme of an insecure registry: the certificate is not looked at here and
    nothing is sent over the connection; the real requests verify as configured.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only "does it speak TLS?"; the transport makes the verified connection
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host):
                return True
    except ssl.SSLError as exc:
        text = str(exc).lower()
        if any(marker in text for marker in _PLAIN_HTTP_MARKERS):
            return False
        return None
    except OSError:
        return None


def _sep(ref: str) -> str:
    return "@" if _DIGEST_RE.match(ref) else ":"


def _verified(data: bytes, digest: str, what: str) -> bytes:
    verify_digest(data, digest, what)
    return data


def parse_token_response(body: bytes, realm: str) -> tuple:
    """``(token, lifetime seconds)`` from a token server's JSON (``token`` or OAuth2 ``access_token``)."""
    try:
        data = json.loads(body)
    except ValueError:
        raise RegistryError(f"the token server {realm} returned a body that is not JSON") from None
    if not isinstance(data, dict):
        raise RegistryError(f"the token server {realm} returned JSON that is not an object")
    token = data.get("token") or data.get("access_token")
    if not token or not isinstance(token, str):
        raise RegistryError(f"the token server {realm} returned no token")
    try:
        lifetime = int(data.get("expires_in") or TOKEN_LIFETIME_DEFAULT)
    except (TypeError, ValueError):
        lifetime = TOKEN_LIFETIME_DEFAULT
    return token, max(lifetime, 1)


# --------------------------------------------------------------------------- module glue

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
