#!/usr/bin/python
# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: daemon_json
short_description: Merge settings into the Docker engine's daemon.json, keeping the keys it already has
version_added: 0.1.0
description:
  - Reads the engine's configuration file (C(daemon.json)), merges O(settings) over it recursively (objects are
    merged key by key, every other value, lists included, is replaced) and writes the result when it differs.
    Keys the file has and O(settings) does not name are kept, so settings made by hand or by another tool stay.
  - Compares the content, not the text - a file that already holds the merged settings is left alone whatever
    its formatting, so an engine restart notified by this task happens only when a setting changed.
  - The file is written as JSON with sorted keys and an indent of two spaces, through a temporary file renamed
    over the old one, so the engine never reads half a file. A new file gets mode C(0644); an existing file
    keeps its owner and mode. The directory is created (C(0755)) when it is missing. When O(path) is a
    symbolic link, the file it points to is written and the link is kept.
  - A file that is not a JSON object is never overwritten - the task fails and says where it cannot be read.
  - Settings the engine would refuse are never written (O(validate)).
  - The engine reads C(daemon.json) only when it starts; restart it (a handler) when the task reports a change.
    The roles M(fleet.multiarch.build_host) and M(fleet.multiarch.device) do that.
author:
  - fleet.multiarch contributors (@fleet-multiarch)
options:
  path:
    description:
      - The engine's configuration file.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description:
      - The settings to merge over the file's, under their C(daemon.json) names (C(log-driver), C(log-opts),
        C(registry-mirrors), ...), as in the examples.
      - An empty object changes nothing, but still creates a missing file as C({}).
    type: dict
    required: true
  backup:
    description:
      - Keep a copy of the file as it was, with a timestamp in its name, when it is changed.
    type: bool
    default: false
  validate:
    description:
      - Have the engine check the merged configuration before the file is written, so that a misspelt key
        (C(log-drivr)), a value of the wrong type (a number for C(registry-mirrors)) or a value the engine refuses
        (C(loud) for C(log-level)) fails the task with the engine's own message and leaves the file as it was,
        instead of an engine that does not start after the restart this change notifies.
      - Engines with C(dockerd --validate) (Docker 23 and newer) run it. Older engines (Debian 12's 20.10)
        load the configuration in a start as the unprivileged user C(nobody) (through C(setpriv)), which checks
        it and stops at the engine's root check before it creates anything.
      - Runs only when the file would change, in check mode too. Without a C(dockerd) on the host the file is
        written unchecked, with a warning.
    type: bool
    default: true
  dockerd:
    description:
      - The engine binary that checks the configuration (O(validate)); by default C(dockerd) on C(PATH) or in
        C(/usr/bin), C(/usr/sbin), C(/usr/local/bin).
    type: path
attributes:
  check_mode:
    support: full
    description: Reports whether the file would change and writes nothing.
  diff_mode:
    support: full
    description: Shows the file's text before and after.
  idempotent:
    support: full
    description: Compares the merged content with the file's; a second run changes nothing.
  platform:
    platforms: posix
    support: full
    description: Any host with a Docker engine configured by C(daemon.json) (Linux).
seealso:
  - name: The daemon configuration file (Docker documentation)
    description: Every setting C(daemon.json) can hold.
    link: https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file
"""

EXAMPLES = r"""
- name: Rotate container logs and use a local registry mirror
  fleet.multiarch.daemon_json:
    settings:
      log-driver: local
      log-opts:
        max-size: 10m
      registry-mirrors:
        - http://mirror.example.com:5000
  notify: Restart Docker engine

- name: Configure an engine whose daemon.json lives elsewhere, keeping a copy of the old file
  fleet.multiarch.daemon_json:
    path: /etc/docker-ci/daemon.json
    settings:
      features:
        containerd-snapshotter: true
    backup: true
"""

RETURN = r"""
path:
  description: The configuration file.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
config:
  description: The configuration the file holds after the task (in check mode, what it would hold).
  returned: always
  type: dict
  sample: {"log-driver": "local", "log-opts": {"max-size": "10m"}}
backup_file:
  description: The copy of the file before it was changed.
  returned: when O(backup=true) and the file was changed
  type: str
  sample: /etc/docker/daemon.json.12345.2026-11-29@12:00:00~
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.multiarch.plugins.module_utils._daemon_json import DaemonJsonError, DaemonJsonManager
from ansible_collections.fleet.multiarch.plugins.module_utils._module import run_manager

ARGUMENT_SPEC = {
    "path": {"type": "path", "default": "/etc/docker/daemon.json"},
    "settings": {"type": "dict", "required": True},
    "backup": {"type": "bool", "default": False},
    "validate": {"type": "bool", "default": True},
    "dockerd": {"type": "path"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_manager(module, lambda: DaemonJsonManager(module), (DaemonJsonError,))


if __name__ == "__main__":
    main()
