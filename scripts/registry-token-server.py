"""A token server for the test environment's Bearer-token registry (scripts/testenv.sh).

It implements the issuing side of the distribution token specification
(https://distribution.github.io/distribution/spec/auth/token/ and .../oauth/): a client that the
registry answered with `401 WWW-Authenticate: Bearer realm=...,service=...,scope=...` asks
`GET <realm>?service=...&scope=...` with HTTP basic credentials (or POSTs an OAuth2 password grant)
and receives a JWT signed with the key whose certificate is the registry's `rootcertbundle`.

Only what the registry verifies is implemented: RS256 signature, `x5c` header, iss/aud/exp/nbf and
the `access` claim. The one user in the password file gets pull, push and delete on every repository
it asks for; anonymous requests get a token with no access (so anonymous pulls fail with 401).

usage: registry-token-server.py ADDR PORT CERT KEY SIGNING_CERT SIGNING_KEY ISSUER USER PASSWORD_FILE
"""

from __future__ import annotations

import base64
import hmac
import json
import ssl
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

TOKEN_SECONDS = 300


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_scopes(scopes: list[str]) -> list[dict]:
    """`repository:team/app:pull,push` -> [{"type": "repository", "name": "team/app", "actions": [...]}]."""
    access = []
    for scope in scopes:
        for item in scope.split(" "):
            parts = item.split(":")
            if len(parts) < 3:
                continue
            kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
    return access


class TokenIssuer:
    def __init__(self, signing_cert: str, signing_key: str, issuer: str, user: str, password: str):
        with open(signing_key, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(signing_cert, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.issuer = issuer
        self.user = user
        self.password = password

    def authenticate(self, user: str | None, password: str | None) -> str | None:
        """The account name for good credentials, "" for anonymous, None for bad credentials."""
        if user is None:
            return ""
        if user == self.user and hmac.compare_digest(password or "", self.password):
            return user
        return None

    def issue(self, account: str, service: str, scopes: list[str]) -> dict:
        now = int(time.time())
        access = parse_scopes(scopes) if account else []
        if account:
            allowed = {"pull", "push", "delete", "*"}
            for entry in access:
                entry["actions"] = [a for a in entry["actions"] if a in allowed]
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        claims = {
            "iss": self.issuer,
            "sub": account,
            "aud": service,
            "exp": now + TOKEN_SECONDS,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = f"{signing_input}.{b64url(signature)}"
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return {"token": token, "access_token": token, "expires_in": TOKEN_SECONDS, "issued_at": issued}


def make_handler(issuer: TokenIssuer):
    class Handler(BaseHTTPRequestHandler):
        server_version = "fleet-testenv-token/1"

        def _reply(self, status: int, body: dict, extra: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _basic(self) -> tuple[str | None, str | None]:
            value = self.headers.get("Authorization", "")
            if not value.lower().startswith("basic "):
                return None, None
            try:
                user, password = base64.b64decode(value[6:]).decode().split(":", 1)
            except ValueError:
                return "", None
            return user, password

        def _issue(self, user, password, service, scopes) -> None:
            account = issuer.authenticate(user, password)
            if account is None:
                self._reply(
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                    {"WWW-Authenticate": 'Basic realm="fleet-testenv-token"'},
                )
                return
            self._reply(200, issuer.issue(account, service, scopes))

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path != "/token":
                self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
                return
            query = parse_qs(url.query)
            user, password = self._basic()
            self._issue(user, password, query.get("service", [""])[0], query.get("scope", []))

        def do_POST(self):  # the OAuth2 password grant, as `docker login` may send it
            if urlsplit(self.path).path != "/token":
                self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": self.path}]})
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            if form.get("grant_type", [""])[0] != "password":
                self._reply(400, {"error": "unsupported_grant_type"})
                return
            scopes = form.get("scope", [])
            self._issue(
                form.get("username", [None])[0], form.get("password", [None])[0], form.get("service", [""])[0], scopes
            )

        def log_message(self, fmt, *args):
            sys.stderr.write(f"{self.log_date_time_string()} {fmt % args}\n")

    return Handler


def main() -> None:
    addr, port, cert, key, signing_cert, signing_key, iss, user, password_file = sys.argv[1:10]
    with open(password_file) as f:
        password = f.read().strip()
    server = ThreadingHTTPServer(
        (addr, int(port)), make_handler(TokenIssuer(signing_cert, signing_key, iss, user, password))
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
