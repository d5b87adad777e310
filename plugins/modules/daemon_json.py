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

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = {
    "path": {"type": "path", "default": "/etc/docker/daemon.json"},
    "settings": {"type": "dict", "required": True},
    "backup": {"type": "bool", "default": False},
}


class DaemonJsonError(Exception):
    """The file cannot be read or written; the message says what to fix."""


def merged(current: dict, settings: dict) -> dict:
    """``settings`` over ``current``: objects merged key by key, any other value replaced (as Jinja's
    ``combine(recursive=True)`` does)."""
    result = dict(current)
    for key, value in settings.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def render(config: dict) -> str:
    """The file's text: sorted keys, two-space indent, a final newline (what ``to_nice_json(indent=2)`` writes)."""
    return json.dumps(config, indent=2, sort_keys=True, separators=(",", ": ")) + "\n"


def parse(text: str, path: str) -> dict:
    """The file's configuration; an empty file is ``{}``."""
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise DaemonJsonError(
            f"{path} is not valid JSON ({exc}); fix or remove it - the engine cannot start with it either."
            " Nothing was written"
        ) from None
    if not isinstance(config, dict):
        raise DaemonJsonError(
            f"{path} holds a JSON {type(config).__name__}, not an object; the engine needs an object of settings."
            " Nothing was written"
        )
    return config


def read(path: str) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise DaemonJsonError(f"cannot read {path}: {exc}") from None


def write(module: AnsibleModule, path: str, text: str, exists: bool) -> None:
    """``text`` into ``path`` through a temporary file in the same directory, renamed over it."""
    directory = os.path.dirname(path) or "."
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory)
            module.set_mode_if_different(directory, "0755", False)  # whatever the umask
        fd, tmp = tempfile.mkstemp(prefix=".daemon.json.", dir=directory)
    except OSError as exc:
        raise DaemonJsonError(f"cannot write in {directory}: {exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        module.atomic_move(tmp, path)  # keeps an existing file's owner, mode and SELinux context
        if not exists:
            module.set_mode_if_different(path, "0644", False)  # whatever the umask
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    path = module.params["path"]
    result = {"changed": False, "path": path}
    try:
        if os.path.isdir(path):
            raise DaemonJsonError(f"{path} is a directory; give the path of the daemon.json file")
        before_text = read(path)
        current = parse(before_text or "", path)
        config = merged(current, module.params["settings"])
        result["config"] = config
        if before_text is not None and config == current:
            module.exit_json(**result)
        after_text = render(config)
        result["changed"] = True
        diff = {
            "before_header": path,
            "after_header": path,
            "before": before_text if before_text is not None else "",
            "after": after_text,
        }
        if not module.check_mode:
            if module.params["backup"] and before_text is not None:
                result["backup_file"] = module.backup_local(path)
            # through a symbolic link to the file it points to, which keeps the link
            write(module, os.path.realpath(path), after_text, exists=before_text is not None)
    except DaemonJsonError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(diff=diff, **result)


if __name__ == "__main__":
    main()
