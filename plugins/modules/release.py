#!/usr/bin/python
# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release
short_description: Build, verify and publish a multi-platform release under an immutable tag, then move the moving tags
version_added: 0.2.0
description:
  - One release in one task, in an order that never points users at an unverified image.
  - B(Plan.) The immutable tag is O(tag), or else chosen from the build context; its git commit (12 hex digits) when
    the checkout is clean, C(<commit>-dirty-<fingerprint>) with uncommitted or untracked files in the context,
    C(fp-<fingerprint>) outside git (12 hex digits of the M(fleet.multiarch.image_build) fingerprint). An immutable
    tag that already holds a build of other inputs is refused, before anything is built, unless O(tag_overwrite).
  - B(Build.) M(fleet.multiarch.image_build)'s code builds O(platforms) and publishes the index under the immutable
    tag only; nothing is built when the tag already carries the fingerprint of these inputs.
  - B(Gate.) The index is read back by its digest; it must serve every platform of O(require_platforms) (containerd's
    matching, as M(fleet.multiarch.manifest_info)) and list exactly the images that were built. A failing gate fails
    the task, and the moving tags stay where they were.
  - B(Promote.) Only then each of O(moving_tags) that does not hold the index yet gets the index's own bytes (the
    same digest).
  - B(Record.) The release record (schema 1, see C(docs/release.md)) is returned as RV(record) and, by the action
    plugin, written on the controller to O(record_path), only when the release differs from the one the file
    records (its C(created) is kept while the release stays the same).
  - B(On the controller.) When the task runs on the controller itself (connection C(local), without C(become) to
    another user, a task C(environment) or C(async)), the action plugin runs the same code in the controller's own
    process and answers an unchanged release (and, in check mode, any release) without starting a module
    (RV(answered_by=controller)); whenever something is to be built or moved, the module runs as usual.
author:
  - fleet.multiarch contributors (@fleet-multiarch)
extends_documentation_fragment:
  - fleet.multiarch.build
  - fleet.multiarch.docker_cli
  - fleet.multiarch.registry
options:
  username:
    description:
      - User name for the registry of O(repository), for the module's own requests (reading, the index, the moving
        tags). buildx pushes with the Docker CLI's credentials (C(docker login)).
      - When O(username) and O(password) are not given, credentials come from the Docker config.
    type: str
  repository:
    description:
      - The image repository with its registry host and without a tag, for example C(127.0.0.1:5000/fleet/demo-app).
    type: str
    required: true
  name:
    description:
      - The application's name in the release record. Empty means the last component of O(repository).
    type: str
    default: ""
  context:
    description:
      - The build context directory on the build host (the host that runs the module); its git state chooses the
        immutable tag.
    type: path
    required: true
  platforms:
    description:
      - The platforms to build, in any spelling the collection knows (C(linux/arm/v7), C(armhf), C(aarch64)).
    type: list
    elements: str
    required: false
    default: [linux/amd64, linux/arm64, linux/arm/v7]
  tag:
    description:
      - The immutable tag of this release. Empty chooses one from the context's git state (see the description).
    type: str
    default: ""
  tag_overwrite:
    description:
      - Replace the build under the immutable tag when it was built from other inputs (a base image moved without a
        new commit, for example). Without it the task refuses, because an immutable tag that changes breaks whoever
        pinned it.
    type: bool
    default: false
  moving_tags:
    description:
      - Tags pointed at the verified index after the gate, for example C(latest) and a version.
    type: list
    elements: str
    default: [latest]
  require_platforms:
    description:
      - The gate. Host platforms the published index must serve (containerd's matching); typically the platforms
        of the devices. Empty means O(platforms).
    type: list
    elements: str
    default: []
  record_path:
    description:
      - The release record file on the controller (JSON), read and written by the action plugin, never on the build
        host. A relative path is relative to the directory C(ansible-playbook) runs in.
      - Not given, the record is only returned (RV(record)).
    type: path
notes:
  - A failure after the build (the gate, a registry that goes away) leaves the moving tags and the record where they
    were, and the index under the immutable tag only; the next run builds nothing new and completes the release. A
    registry that fails during the promotion itself can leave some moving tags moved; the next run moves the rest.
  - The registry password (O(password)) is never logged and never written to the record.
attributes:
  action:
    support: full
    description: Reads and writes the record on the controller; answers an unchanged release there when it runs there.
  check_mode:
    support: full
    description: Plans, and when the immutable tag holds the build, gates and compares the moving tags; writes nothing.
  diff_mode:
    support: full
    description: Shows the record file before and after.
  idempotent:
    support: full
    description: A release with nothing changed builds nothing, moves nothing and leaves the record file alone.
  platform:
    platforms: posix
    support: full
    description: Runs on the build host, where the docker CLI with buildx is installed.
seealso:
  - module: fleet.multiarch.image_build
  - module: fleet.multiarch.manifest_info
  - module: fleet.multiarch.manifest
"""

EXAMPLES = r"""
- name: Release the app for three platforms, moving latest and the version
  fleet.multiarch.release:
    context: /srv/app
    repository: 127.0.0.1:5000/fleet/app
    platforms: [linux/amd64, linux/arm64, linux/arm/v7]
    build_args:
      APP_VERSION: 1.2.0
    moving_tags: [latest, 1.2.0]
    require_platforms: [linux/arm64, linux/arm/v7, linux/arm/v6]
    record_path: "{{ inventory_dir }}/releases/app.json"
  register: app_release

- name: Devices deploy the index by its digest
  ansible.builtin.debug:
    msg: "{{ app_release.record.repository }}@{{ app_release.record.index_digest }}"
"""

RETURN = r"""
changed:
  description: Whether the registry (a build, a moving tag) or the record file changed (in check mode, would).
  returned: always
  type: bool
built:
  description: Whether images were built (false when the immutable tag held the build, and in check mode).
  returned: always
  type: bool
tag:
  description: The immutable tag of the release.
  returned: always
  type: str
  sample: 864b2547a679
digest:
  description: The index digest; empty in check mode when the build would run first.
  returned: always
  type: str
moved_tags:
  description: The moving tags that were (in check mode, would be) pointed at the index by this task.
  returned: always
  type: list
  elements: str
tag_digests:
  description: Moving tag -> what it holds, for a tag another writer moved right after this task's push.
  returned: when another writer replaced a moving tag
  type: dict
record:
  description:
    - The release record (see C(docs/release.md)); C(changed) in it is this run's. Empty in check mode when the
      build would run first.
  returned: always
  type: dict
record_changed:
  description: Whether the record file was (in check mode, would be) written.
  returned: always
  type: bool
record_path:
  description: The absolute path of the record file on the controller; empty without O(record_path).
  returned: always
  type: str
build:
  description: The result of the build step, with the keys of M(fleet.multiarch.image_build)'s result.
  returned: always
  type: dict
summary:
  description: The release as lines of a table (the release, the index and its moving tags, platform, digest, size).
  returned: always
  type: list
  elements: str
answered_by:
  description: V(controller) when the action plugin answered in the controller's process, else V(module).
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.multiarch.plugins.module_utils._image_build import REQUIRED_TOGETHER
from ansible_collections.fleet.multiarch.plugins.module_utils._module import unexpected
from ansible_collections.fleet.multiarch.plugins.module_utils._release import release_argument_spec, run_release


def main():
    module = AnsibleModule(
        argument_spec=release_argument_spec(),
        required_together=REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    try:
        result = run_release(module)  # a failure foreseen comes back as a result with failed and msg
    except Exception as exc:  # report anything unexpected with its traceback
        unexpected(module, exc)
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
