# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""Installing the docker buildx CLI plugin (the ``buildx_plugin`` module): release URLs, checksums, the file.

:class:`PluginInstaller` works out the source and the expected digest from the options, downloads (through
``ansible.module_utils.urls.fetch_url``) or copies the binary next to its destination, checks it, and moves it in
place atomically. The rest is pure and unit-tested on captured text.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import tempfile

from ansible.module_utils.urls import fetch_url

from ansible_collections.fleet.multiarch.plugins.module_utils._buildx import BuildxError, parse_version
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import PlatformError, platform_from_machine

PLUGIN_NAME = "docker-buildx"
SYSTEM_PLUGIN_DIR = "/usr/local/lib/docker/cli-plugins"
CHUNK = 1 << 16
RELEASE_URL = "https://github.com/docker/buildx/releases/download/v{version}/buildx-v{version}.linux-{arch}"
RELEASE_CHECKSUMS_URL = "https://github.com/docker/buildx/releases/download/v{version}/checksums.txt"
# Architectures buildx publishes linux release binaries for (OCI arch[/variant] -> asset suffix).
RELEASE_ARCHES = {
    "linux/amd64": "amd64",
    "linux/arm64": "arm64",
    "linux/arm/v7": "arm-v7",
    "linux/arm/v6": "arm-v6",
    "linux/riscv64": "riscv64",
    "linux/ppc64le": "ppc64le",
    "linux/s390x": "s390x",
}


def release_arch(machine: str) -> str:
    """The release asset suffix for a kernel machine: ``x86_64`` -> ``amd64``, ``armv7l`` -> ``arm-v7``."""
    try:
        oci = platform_from_machine(machine).oci
    except PlatformError as exc:
        raise BuildxError(f"{exc}; set url (or src) to a docker-buildx binary for this host") from exc
    if oci not in RELEASE_ARCHES:
        raise BuildxError(
            f"buildx publishes no linux release binary for {machine} ({oci}); release binaries exist for"
            f" {', '.join(sorted(RELEASE_ARCHES))}: set url or src to a binary built for this host"
        )
    return RELEASE_ARCHES[oci]


def render_url(template: str, version: str, arch: str) -> str:
    """Fill ``{version}`` and ``{arch}`` in a URL template (a leading ``v`` in version is dropped)."""
    version = version[1:] if version.startswith("v") else version
    try:
        return template.format(version=version, arch=arch)
    except (KeyError, IndexError, ValueError) as exc:
        raise BuildxError(
            f"invalid URL template {template!r} ({exc}): only {{version}} and {{arch}} can be filled in;"
            " write literal braces as {{ and }}"
        ) from exc


def parse_checksum(value: str) -> str:
    """``sha256:<64 hex>`` -> the lowercase hex digest."""
    match = re.fullmatch(r"\s*sha256:([0-9a-fA-F]{64})\s*", value or "")
    if not match:
        raise BuildxError(f"invalid checksum {value!r}: write sha256:<64 hex digits>, as printed by `sha256sum FILE`")
    return match.group(1).lower()


_SYMBOLIC_MODE = re.compile(r"^[ugoa]*[-+=](?:[rwxXst]*|[ugo])(?:[-+=](?:[rwxXst]*|[ugo]))*$")


def parse_mode(value) -> str:
    """Check the plugin file's ``mode`` before anything is touched; returns it as Ansible's file modules take it.

    Octal (``0755``, ``755``, ``0o755`` or an int, as YAML reads an unquoted ``0755``) must let the owner
    execute the file: the docker CLI runs plugins, and a non-executable one is silently not found. Symbolic
    modes (``u=rwx,go=rx``) are checked for their form; they apply to the file's current mode.
    """
    text = str(value).strip()
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif re.fullmatch(r"(?:0o)?[0-7]{1,4}", text):
        number = int(text[2:] if text.startswith("0o") else text, 8)
    elif text and all(_SYMBOLIC_MODE.match(part) for part in text.split(",")):
        return text
    else:
        raise BuildxError(
            f"invalid mode {value!r}: write an octal mode in quotes such as '0755', or a symbolic one such as"
            " 'u=rwx,go=rx'; nothing was installed"
        )
    if not 0 <= number <= 0o7777:
        raise BuildxError(f"invalid mode {value!r}: an octal mode is at most 07777; nothing was installed")
    if not number & 0o100:
        raise BuildxError(
            f"mode {number:04o} does not let the owner execute the plugin, so the docker CLI would not run it:"
            " give the owner x, for example '0755'; nothing was installed"
        )
    return f"{number:04o}"


def parse_checksums(text: str) -> dict:
    """A ``sha256sum`` style file (``<hex> *name`` or ``<hex>  name`` per line) -> {name: hex}."""
    out = {}
    for line in text.splitlines():
        match = re.match(r"^([0-9a-fA-F]{64})\s+\*?(\S.*?)\s*$", line)
        if match:
            out[os.path.basename(match.group(2))] = match.group(1).lower()
    return out


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
        raise BuildxError(f"owner {name!r} is not a user on this host: create the user first") from exc
    return os.path.join(home, ".docker", "cli-plugins"), owner


class PluginInstaller:
    """Works out the source and expected digest, then installs or removes the plugin file."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.params["mode"] = parse_mode(self.params["mode"])  # every option checked before anything is touched
        src = self.params["src"]
        if src and self.params["state"] == "present" and not os.path.isfile(src):
            raise BuildxError(f"src {src} does not exist or is not a file: give the path of a docker-buildx binary")
        directory, self.owner = plugin_dir_for(self.params["scope"], self.params["owner"], self.params["plugin_dir"])
        self.path = os.path.join(directory, PLUGIN_NAME)
        self.result = {"changed": False, "path": self.path, "sha256": "", "version": "", "url": ""}
        self.diff = {"before": {}, "after": {}}

    # sources ---------------------------------------------------------------------------------------

    def source(self):
        """(url or None, checksum URL or None, expected hex or None) from the options, after the safety rules."""
        p = self.params
        expected = parse_checksum(p["checksum"]) if p["checksum"] else None
        if p["src"]:
            if p["url"] or p["checksum_url"]:
                raise BuildxError("src installs a local file: do not set url or checksum_url with it")
            return None, None, expected
        arch = release_arch(os.uname().machine)
        url = render_url(p["url"] or RELEASE_URL, p["version"], arch)
        checksum_url = p["checksum_url"]
        if not p["url"] and not checksum_url and expected is None:
            checksum_url = RELEASE_CHECKSUMS_URL
        if checksum_url:
            checksum_url = render_url(checksum_url, p["version"], arch)
        if expected is None and not checksum_url and not p["skip_checksum"]:
            raise BuildxError(
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
            raise BuildxError(
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
            raise BuildxError(f"the download of {url} broke off after {received} bytes: {exc}") from exc
        if expected_length is not None and str(received) != str(expected_length).strip():
            raise BuildxError(
                f"the download of {url} is truncated: {received} of {expected_length} bytes; nothing was installed"
            )
        return b"".join(chunks)

    def expected_from(self, checksum_url: str, url: str) -> str:
        checksums = parse_checksums(self.fetch(checksum_url).decode("utf-8", "replace"))
        name = os.path.basename(url.split("?", 1)[0])
        if name not in checksums:
            raise BuildxError(
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
                raise BuildxError(
                    f"the downloaded file does not run as docker-buildx on this host ({(err or out).strip()[:200]});"
                    " check that url points at the binary for this architecture; nothing was installed"
                )
            return ""
        try:
            return parse_version(out)["version"]
        except BuildxError:
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
                raise BuildxError(
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
