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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.multiarch.plugins.module_utils._buildx import BuildxError
from ansible_collections.fleet.multiarch.plugins.module_utils._buildx_plugin import PluginInstaller
from ansible_collections.fleet.multiarch.plugins.module_utils._module import run_manager

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


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("src", "url"), ("src", "checksum_url"), ("checksum", "checksum_url")],
        supports_check_mode=True,
    )
    run_manager(module, lambda: PluginInstaller(module), (BuildxError,))


if __name__ == "__main__":
    main()
