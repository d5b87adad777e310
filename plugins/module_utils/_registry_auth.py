# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""Registry authentication: the ``WWW-Authenticate`` challenge, token scopes, credentials from module options or the
Docker ``config.json``, and the token server's answer. Pure functions, unit-tested; the requests are the client's."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field

from ansible_collections.fleet.multiarch.plugins.module_utils._reference import (
    RegistryError,
    json_object,
)

TOKEN_LIFETIME_DEFAULT = 60  # seconds, as the token spec says when expires_in is absent
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


def parse_token_response(body: bytes, realm: str) -> tuple:
    """``(token, lifetime seconds)`` from a token server's JSON (``token`` or OAuth2 ``access_token``)."""
    data = json_object(body, f"the token server {realm}")
    token = data.get("token") or data.get("access_token")
    if not token or not isinstance(token, str):
        raise RegistryError(f"the token server {realm} returned no token")
    try:
        lifetime = int(data.get("expires_in") or TOKEN_LIFETIME_DEFAULT)
    except (TypeError, ValueError):
        lifetime = TOKEN_LIFETIME_DEFAULT
    return token, max(lifetime, 1)
