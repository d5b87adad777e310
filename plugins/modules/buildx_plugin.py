#!/usr/bin/python
# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: buildx_plugin
short_description: Install the docker buildx CLI plugin from its release binary, verified and atomically
version_added: 0.1.0
description:
  - Does what the Docker documentation tells users to do by hand - download the buildx release binary into a
    C(cli-plugins) directory as C(docker-buildx) - but verifies its sha256 first and moves it into place
    atomically, so a wrong checksum, an unreachable server or a truncated download leaves the installed plugin
    untouched.
  - The binary is downloaded to a temporary file next to the destination, verified against the checksum,
    run once (C(docker-buildx version)) to prove it is a working buildx for this host, then renamed over the
    destination.
  - Idempotent by content - nothing is downloaded when the installed file already has the expected sha256.
  - Without O(url) and O(src), installs the official release asset of O(version) for the host's
    architecture and verifies it against that release's C(checksums.txt).
author:
  - fleet.multiarch contributors (@fleet-multiarch)
options:
  state:
    description:
      - V(present) installs the plugin (replacing a different one), V(absent) removes the file.
    type: str
    choices: [present, absent]
    default: present
  version:
    description:
      - The buildx release to install from the default O(url) and O(checksum_url) templates.
      - Also filled into custom O(url)/O(checksum_url) templates as C({version}).
    type: str
    default: 0.13.1
  url:
    description:
      - Where to download the binary, for mirrors and air-gapped sites. C({version}) and C({arch}) are
        filled in (C(arch) is the release name for the host - C(amd64), C(arm64), C(arm-v7), C(arm-v6),
        C(riscv64), C(ppc64le), C(s390x)).
      - Defaults to the official release asset
        C(https://github.com/docker/buildx/releases/download/v{version}/buildx-v{version}.linux-{arch}).
      - A custom URL needs O(checksum) or O(checksum_url), unless O(skip_checksum=true).
    type: str
  src:
    description:
      - Install a binary that is already on the managed host instead of downloading one.
      - Verified against O(checksum) when given.
    type: path
  checksum:
    description:
      - The expected digest of the binary, written C(sha256:<64 hex digits>).
    type: str
  checksum_url:
    description:
      - A C(sha256sum)-style checksums file (like the release's C(checksums.txt)); the line for the file name
        of the download URL is used. C({version}) and C({arch}) are filled in.
      - Defaults to the release's C(checksums.txt) when O(url) is not set.
    type: str
  skip_checksum:
    description:
      - Install from a custom O(url) without any checksum. The binary is still run once before it replaces
        the installed plugin, but nothing proves it is the file you meant. Prefer O(checksum).
    type: bool
    default: false
  scope:
    description:
      - V(system) installs into C(/usr/local/lib/docker/cli-plugins), used by every user of the host.
      - V(user) installs into C(~/.docker/cli-plugins) of O(owner).
      - Ignored when O(plugin_dir) is set.
    type: str
    choices: [system, user]
    default: system
  owner:
    description:
      - With O(scope=user), whose C(~/.docker/cli-plugins) to install into; the directory and file are owned
        by this user. Defaults to the user the module runs as.
    type: str
  plugin_dir:
    description:
      - Install into this directory instead of the one O(scope) chooses, for example
        C($DOCKER_CONFIG/cli-plugins) of a CI job (the docker CLI looks there first).
    type: path
  mode:
    description:
      - Permissions of the installed file, octal (V('0755'), quoted so YAML keeps it a string) or symbolic
        (V(u=rwx,go=rx)).
      - An octal mode must let the owner execute the file (the docker CLI runs plugins); an invalid or
        non-executable mode fails the task before anything is downloaded or written.
    type: raw
    default: '0755'
  validate_certs:
    description:
      - Verify TLS certificates of O(url) and O(checksum_url).
    type: bool
    default: true
  timeout:
    description:
      - Timeout in seconds of each HTTP request.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Reports whether the plugin would be installed, replaced or removed, and changes nothing.
      When the expected checksum is not known in advance (O(skip_checksum=true)), the binary is downloaded
      to a temporary file to compare it.
  diff_mode:
    support: full
    description: Shows the path, sha256 and version before and after.
  idempotent:
    support: full
    description: Compares the sha256 of the installed file; a second run changes nothing.
  platform:
    platforms: posix
    support: full
    description: Linux hosts; the binary is chosen from the kernel's machine name.
notes:
  - Downloads use Ansible's URL handling, so C(http_proxy)/C(https_proxy) and O(validate_certs) apply.
  - The docker CLI looks for plugins in C($DOCKER_CONFIG/cli-plugins) (C(~/.docker/cli-plugins)) before the
    system directories, so a user-scope plugin hides the system one.
seealso:
  - module: fleet.multiarch.buildx_builder
  - name: Install buildx manually (Docker documentation)
    description: The steps this module automates.
    link: https://github.com/docker/buildx#manual-download
"""

EXAMPLES = r"""
- name: Install the pinned buildx release for this host, verified against the release checksums
  fleet.multiarch.buildx_plugin:

- name: Install from an internal mirror (air-gapped site)
  fleet.multiarch.buildx_plugin:
    version: 0.13.1
    url: https://mirror.example.com/buildx/v{version}/buildx-v{version}.linux-{arch}
    checksum_url: https://mirror.example.com/buildx/v{version}/checksums.txt

- name: Install a binary already copied to the host, for one user only
  fleet.multiarch.buildx_plugin:
    src: /opt/artifacts/docker-buildx
    checksum: sha256:b336dab261394bbb1f8a63f6c46085234892fe1fc299e2e203ea91a102d441bf
    scope: user
    owner: ci

- name: Remove the system-wide plugin
  fleet.multiarch.buildx_plugin:
    state: absent
"""

RETURN = r"""
path:
  description: The plugin file.
  returned: always
  type: str
  sample: /usr/local/lib/docker/cli-plugins/docker-buildx
sha256:
  description: The sha256 of the installed file (empty when absent).
  returned: always
  type: str
  sample: b336dab261394bbb1f8a63f6c46085234892fe1fc299e2e203ea91a102d441bf
version:
  description: The version the installed plugin reports (C(docker-buildx version)); empty when absent or in check
    mode before the first install.
  returned: always
  type: str
  sample: 0.13.1
url:
  description: The URL the binary was (or would be) downloaded from; empty with O(src) or O(state=absent).
  returned: always
  type: str
  sample: https://github.com/docker/buildx/releases/download/v0.13.1/buildx-v0.13.1.linux-amd64
"""

import hashlib
import os
import pwd
import shutil
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import fetch_url

from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx

PLUGIN_NAME = "docker-buildx"
SYSTEM_PLUGIN_DIR = "/usr/local/lib/docker/cli-plugins"
CHUNK = 1 << 16

ARGUMENT_SPEC = {
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "version": {"type": "str", "default": "0.13.1"},
    "url": {"type": "str"},
    "src": {"type": "path"},
    "checksum": {"type": "str"},
    "checksum_url": {"type": "str"},
    "skip_checksum": {"type": "bool", "default": False},
    "scope": {"type": "str", "choices": ["system", "user"], "default": "system"},
    "owner": {"type": "str"},
    "plugin_dir": {"type": "path"},
    "mode": {"type": "raw", "default": "0755"},
    "validate_certs": {"type": "bool", "default": True},
    "timeout": {"type": "int", "default": 60},
}


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def plugin_dir_for(scope: str, owner, plugin_dir):
    """(directory, owner name or None) for the options."""
    if plugin_dir:
        return plugin_dir, owner
    if scope == "system":
        return SYSTEM_PLUGIN_DIR, owner
    name = owner or pwd.getpwuid(os.geteuid()).pw_name
    try:
        home = pwd.getpwnam(name).pw_dir
    except KeyError as exc:
        raise bx.BuildxError(f"owner {name!r} is not a user on this host: create the user first") from exc
    return os.path.join(home, ".docker", "cli-plugins"), owner


class PluginInstaller:
    """Works out the source and expected digest, then installs or removes the plugin file."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.params["mode"] = bx.parse_mode(self.params["mode"])  # every option checked before anything is touched
        src = self.params["src"]
        if src and self.params["state"] == "present" and not os.path.isfile(src):
            raise bx.BuildxError(f"src {src} does not exist or is not a file: give the path of a docker-buildx binary")
        directory, self.owner = plugin_dir_for(self.params["scope"], self.params["owner"], self.params["plugin_dir"])
        self.path = os.path.join(directory, PLUGIN_NAME)
        self.result = {"changed": False, "path": self.path, "sha256": "", "version": "", "url": ""}
        self.diff = {"before": {}, "after": {}}

    # sources ---------------------------------------------------------------------------------------

    def source(self):
        """(url or None, checksum URL or None, expected hex or None) from the options, after the safety rules."""
        p = self.params
        expected = bx.parse_checksum(p["checksum"]) if p["checksum"] else None
        if p["src"]:
            if p["url"] or p["checksum_url"]:
                raise bx.BuildxError("src installs a local file: do not set url or checksum_url with it")
            return None, None, expected
        arch = bx.release_arch(os.uname().machine)
        url = bx.render_url(p["url"] or bx.RELEASE_URL, p["version"], arch)
        checksum_url = p["checksum_url"]
        if not p["url"] and not checksum_url and expected is None:
            checksum_url = bx.RELEASE_CHECKSUMS_URL
        if checksum_url:
            checksum_url = bx.render_url(checksum_url, p["version"], arch)
        if expected is None and not checksum_url and not p["skip_checksum"]:
            raise bx.BuildxError(
                f"refusing to install from {url} without a checksum: set checksum (sha256:...) or checksum_url"
                " (a sha256sum-style file such as the release's checksums.txt); set skip_checksum: true only"
                " if you accept an unverified binary"
            )
        return url, checksum_url, expected

    def fetch(self, url: str, dest=None) -> bytes:
        """GET url; into the open file dest (streamed) or returned as bytes. Raises BuildxError."""
        response, info = fetch_url(self.module, url, timeout=self.params["timeout"])
        status = info.get("status", -1)
        if response is None or status != 200:
            raise bx.BuildxError(
                f"cannot download {url}: {info.get('msg', 'no response')} (HTTP status {status});"
                " check the URL, the network or proxy settings, or install from a mirror with url"
            )
        expected_length = info.get("content-length")
        received = 0
        chunks = []
        try:
            for block in iter(lambda: response.read(CHUNK), b""):
                received += len(block)
                if dest is None:
                    chunks.append(block)
                else:
                    dest.write(block)
        except Exception as exc:  # http.client.IncompleteRead, socket errors, timeouts
            raise bx.BuildxError(f"the download of {url} broke off after {received} bytes: {exc}") from exc
        if expected_length is not None and str(received) != str(expected_length).strip():
            raise bx.BuildxError(
                f"the download of {url} is truncated: {received} of {expected_length} bytes; nothing was installed"
            )
        return b"".join(chunks)

    def expected_from(self, checksum_url: str, url: str) -> str:
        checksums = bx.parse_checksums(self.fetch(checksum_url).decode("utf-8", "replace"))
        name = os.path.basename(url.split("?", 1)[0])
        if name not in checksums:
            raise bx.BuildxError(
                f"{checksum_url} has no checksum for {name} (it lists {', '.join(sorted(checksums)) or 'nothing'});"
                " check version and url, or set checksum"
            )
        return checksums[name]

    # state -----------------------------------------------------------------------------------------

    def installed(self):
        if os.path.isfile(self.path):
            return {"path": self.path, "sha256": sha256_file(self.path), "version": self.binary_version(self.path)}
        return {}

    def binary_version(self, path: str, strict=False) -> str:
        try:
            rc, out, err = self.module.run_command([path, "version"], handle_exceptions=False)
        except OSError as exc:  # not an executable for this host (wrong architecture, truncated, not ELF)
            rc, out, err = 126, "", str(exc)
        if rc != 0:
            if strict:
                raise bx.BuildxError(
                    f"the downloaded file does not run as docker-buildx on this host ({(err or out).strip()[:200]});"
                    " check that url points at the binary for this architecture; nothing was installed"
                )
            return ""
        try:
            return bx.parse_version(out)["version"]
        except bx.BuildxError:
            if strict:
                raise
            return ""

    def run(self):
        before = self.installed()
        self.diff["before"] = before
        if self.params["state"] == "absent":
            return self.remove(before)
        url, checksum_url, expected = self.source()
        self.result["url"] = url or ""
        if expected is None and checksum_url:
            expected = self.expected_from(checksum_url, url)
        if expected is not None and before.get("sha256") == expected:
            self.result.update(sha256=expected, version=before["version"])
            self.diff["after"] = before
            self.result["changed"] = self.fix_attributes(before) or self.result["changed"]
            return
        if self.module.check_mode and expected is not None:  # no need to download to know the outcome
            after = {"path": self.path, "sha256": expected, "version": ""}
            self.result.update(changed=True, sha256=expected)
            self.diff["after"] = after
            return
        directory = os.path.dirname(self.path)
        self.ensure_dir(directory)
        # next to the destination so the final rename is atomic; in check mode in the system temp directory
        tmp_parent = directory if os.path.isdir(directory) and not self.module.check_mode else None
        fd, tmp = tempfile.mkstemp(prefix=".docker-buildx-", dir=tmp_parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                if url:
                    self.fetch(url, dest=handle)
                else:
                    with open(self.params["src"], "rb") as src:
                        shutil.copyfileobj(src, handle)
            actual = sha256_file(tmp)
            if expected is not None and actual != expected:
                raise bx.BuildxError(
                    f"checksum mismatch for {url or self.params['src']}: expected sha256:{expected}, got"
                    f" sha256:{actual}; nothing was installed and {self.path} is unchanged"
                )
            self.result["sha256"] = actual
            if before.get("sha256") == actual:  # unverified source with the same content
                self.result["version"] = before["version"]
                self.diff["after"] = before
                self.result["changed"] = self.fix_attributes(before)
                return
            os.chmod(tmp, 0o700)
            version = self.binary_version(tmp, strict=True)
            self.result.update(changed=True, version=version)
            self.diff["after"] = {"path": self.path, "sha256": actual, "version": version}
            if self.module.check_mode:
                return
            self.module.atomic_move(tmp, self.path)
            tmp = None
            self.fix_attributes({"path": self.path})
        finally:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)

    def ensure_dir(self, directory: str):
        if os.path.isdir(directory) or self.module.check_mode:
            return
        os.makedirs(directory, mode=0o755)
        if self.params["scope"] == "user" and not self.params["plugin_dir"]:
            # ~/.docker and ~/.docker/cli-plugins belong to the owner
            for path in (os.path.dirname(directory), directory):
                self.module.set_owner_if_different(path, self.owner, False)

    def fix_attributes(self, state: dict) -> bool:
        if not state:
            return False
        changed = self.module.set_mode_if_different(self.path, self.params["mode"], False)
        if self.owner:
            changed = self.module.set_owner_if_different(self.path, self.owner, changed)
        return changed

    def remove(self, before: dict):
        self.diff["after"] = {}
        if not before:
            return
        self.result["changed"] = True
        if not self.module.check_mode:
            os.unlink(self.path)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("src", "url"), ("src", "checksum_url"), ("checksum", "checksum_url")],
        supports_check_mode=True,
    )
    installer = None
    try:
        installer = PluginInstaller(module)
        installer.run()
    except bx.BuildxError as exc:
        extra = installer.result if installer else {}
        module.fail_json(msg=str(exc), **extra)
    except Exception as exc:  # report anything unexpected with its traceback
        extra = installer.result if installer else {}
        module.fail_json(msg=f"unexpected error: {exc}", exception=traceback.format_exc(), **extra)
    module.exit_json(diff=installer.diff, **installer.result)


if __name__ == "__main__":
    main()
