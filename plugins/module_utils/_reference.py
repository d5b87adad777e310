# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""Image references (``registry/repository:tag@digest``, the distribution spec's grammar, ASCII tags), content
digests and their check, and the registry client's error type. Pure functions, unit-tested."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass

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


def json_object(body: bytes, who: str, kind: str = "an object") -> dict:
    """``body`` parsed as a JSON object; else a RegistryError saying what ``who`` (the answering server) returned."""
    try:
        data = json.loads(body)
    except ValueError:
        raise RegistryError(f"{who} returned a body that is not JSON") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{who} returned JSON that is not {kind}")
    return data


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


def _sep(ref: str) -> str:
    return "@" if _DIGEST_RE.match(ref) else ":"
