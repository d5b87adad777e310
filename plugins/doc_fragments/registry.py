# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Registry authentication and TLS options, shared by every module that talks to a registry."""

    DOCUMENTATION = r"""
requirements:
  - requests (the Python HTTP library; Debian C(python3-requests)), for the registry API
options:
  username:
    description:
      - User name for the registry the module works on (the one of the reference it reads or writes), for HTTP Basic
        authentication or the Bearer token server.
      - When O(username) and O(password) are not given, credentials come from the Docker config
        (C(auths.<registry>) with C(auth), C(username) and C(password), or C(identitytoken)), else the registry is used
        anonymously. Credential helpers (C(credsStore), C(credHelpers)) are not run.
      - Registries other than that one (for example those of source images) always take their credentials from the
        Docker config.
    type: str
  password:
    description:
      - Password or access token for O(username). Give both or neither.
    type: str
  docker_config:
    description:
      - The Docker client configuration (C(config.json)) or its directory.
      - Defaults to C($DOCKER_CONFIG/config.json), else C(~/.docker/config.json) of the user the module runs as.
    type: path
  validate_certs:
    description:
      - Verify the registry's TLS certificate. Turn off only for a registry you trust on a network you trust.
    type: bool
    default: true
  ca_cert:
    description:
      - A PEM file with the CA certificate(s) that signed the registry's (and its token server's) certificate.
      - Without it the system's CA store is used (or C(REQUESTS_CA_BUNDLE), C(CURL_CA_BUNDLE), or OpenSSL's
        C(SSL_CERT_FILE) from the environment).
    type: path
  insecure_registries:
    description:
      - Registry hosts (C(host:port)) that may be reached over plain HTTP when they do not speak TLS.
      - As with Docker, C(localhost), C(127.0.0.0/8) and C(::1) are always allowed. HTTPS is tried first and plain
        HTTP is used only when the registry does not answer TLS.
    type: list
    elements: str
    default: []
  timeout:
    description:
      - Seconds that one request to the registry may take as a whole, from connecting to the last byte of the
        answer; a registry that sends its answer slower than that fails the task (not retried). Connection errors
        and HTTP 5xx are retried three times with a doubling backoff (0.5, 1, 2 seconds).
    type: int
    default: 30
notes:
  - The module's own registry requests go straight to the OCI distribution API and the Docker Registry HTTP API v2.
  - The registry HTTP is the C(requests) library (a session per registry, keep-alive connections); it is needed
    in the Python that runs the module (Debian C(python3-requests)).
  - Proxies come from the environment of the module (C(HTTPS_PROXY), C(HTTP_PROXY), C(ALL_PROXY), C(NO_PROXY), either
    case), for example through the task's C(environment). A proxy is given as C(http://[user:password@]host:port);
    HTTPS goes through it with C(CONNECT). The proxy is chosen for each host, so a blob download that the registry
    redirects to object storage follows the proxy (or C(NO_PROXY)) of the storage's host.
  - A proxy that cannot be reached is named in the error, with the variable it came from.
"""
