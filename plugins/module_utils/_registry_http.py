# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""The registry client's HTTP: :class:`Transport`, a ``requests.Session`` (keep-alive, proxies from the environment,
TLS, redirects), with a deadline on the whole answer, bodies spooled to files, and errors that tell a refused
proxy, a TLS failure and an unreachable host apart; the TLS probe that picks the scheme of an insecure registry."""

from __future__ import annotations

import os
import socket
import ssl
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from ansible.module_utils.basic import missing_required_lib

try:
    import requests
    import urllib3
    from requests.adapters import HTTPAdapter
    from urllib3.exceptions import ProtocolError
    from urllib3.util.retry import Retry

    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - depends on the target's Python
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = _exc
    Retry = object

from ansible_collections.fleet.multiarch.plugins.module_utils._reference import (
    CHUNK,
    RegistryError,
)

USER_AGENT = "fleet.multiarch"
DEFAULT_TIMEOUT = 30


class SpoolError(RegistryError):
    """A blob could not be written to its temporary file (the disk is full, ``TMPDIR`` is not writable): not the
    registry's fault, so it is neither retried nor reported as a connection problem."""


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
        + ". On Debian and Ubuntu install python3-requests; elsewhere pip install requests into the Python that"
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


# What a connection that the server had already closed gives the request sent on it: no answer at all.
_STALE_CONNECTION_ERRORS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def _stale_connection(error) -> bool:
    """Whether urllib3's ``error`` is a request cut before any answer: the server closed the kept-alive connection
    (its keep-alive timeout ran out) as the request went out on it."""
    if not isinstance(error, ProtocolError):
        return False
    cause = error.args[1] if len(error.args) > 1 else None
    return type(cause).__name__ == "RemoteDisconnected" or isinstance(cause, _STALE_CONNECTION_ERRORS)


class _ResendOnStaleConnection(Retry):
    """urllib3's retry policy of the transport: one resend of a request whose connection the server had closed
    (every method: the registry's PUTs are idempotent and a repeated POST only opens another upload), nothing else.
    A refused connection, a timeout or an error answer is not retried here: the registry client retries those with
    its backoff, and a timeout must bound the whole request."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if error is not None and isinstance(error, ProtocolError) and not _stale_connection(error):
            raise error
        return super().increment(method, url, response, error, _pool, _stacktrace)


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
        resend = _ResendOnStaleConnection(
            total=1,
            connect=0,
            read=1,
            redirect=0,
            status=0,
            other=0,
            allowed_methods=None,
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        adapter = HTTPAdapter(pool_connections=self.POOL_SIZE, pool_maxsize=self.POOL_SIZE, max_retries=resend)
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
