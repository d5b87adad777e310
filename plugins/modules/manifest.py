#!/usr/bin/python
# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: manifest
short_description: Create or remove a multi-platform image index (manifest list) in a registry
version_added: 0.1.0
description:
  - Joins per-platform images into one image index (OCI image index or Docker manifest list) at O(name),
    straight against the registry API. No Docker engine or CLI is needed.
  - The platform of each image is read from its config unless given; sources that are indexes themselves are
    flattened into their platform entries. Two sources for the same platform are an error.
  - Sources in another repository (or another registry) are copied into the repository of O(name) first; blobs
    are mounted across repositories of the same registry, else copied through a temporary file (in C(TMPDIR), so a
    layer need not fit in memory), and every manifest and blob is checked by digest.
    The tag moves only with the single, final PUT of the index, after everything it references is in place.
  - Idempotent. When the index at O(name) already has the same content (media type, entries, annotations),
    nothing is pushed.
  - With O(require_platforms), a platform the joined index would not serve fails the task before anything is
    pushed.
author:
  - fleet.multiarch contributors (@fleet-multiarch)
extends_documentation_fragment:
  - fleet.multiarch.registry
  - fleet.multiarch.require_platforms
options:
  name:
    description:
      - The index to create or remove, with its registry host and a tag, for example
        C(127.0.0.1:5000/fleet/app:1.0). A reference without a registry host is refused.
      - With O(state=absent) a digest (C(...@sha256:...)) is also accepted.
    type: str
    required: true
  images:
    description:
      - The source images, each a reference string (C(127.0.0.1:5000/fleet/app:1.0-arm64)) or a dict with
        C(reference) and optional C(platform) (any spelling, for example C(linux/arm/v7); overrides the platform
        read from the image config), C(os_version) (written as C(os.version)) and C(annotations) (descriptor
        annotations, string to string; OCI only).
      - A source that is itself an index contributes all its platform entries; C(platform) and C(annotations)
        cannot be given for it.
      - Required with O(state=present).
    type: list
    elements: raw
  annotations:
    description:
      - Annotations of the index itself (string to string). They need O(media_type=oci).
    type: dict
  media_type:
    description:
      - C(oci) writes an OCI image index, C(docker) a Docker manifest list.
      - By default a Docker manifest list when every entry is a Docker v2 manifest without annotations, else an
        OCI image index.
    type: str
    choices: [oci, docker]
  state:
    description:
      - V(present) creates or updates the index; V(absent) removes what O(name) points to.
      - Registries that cannot delete a tag alone (distribution 2.x) delete the manifest by digest; the module then
        refuses when other tags of the repository point to the same digest, and names them.
    type: str
    choices: [present, absent]
    default: present
  attestations:
    description:
      - What to do with the attestation manifests (platform C(unknown/unknown)) of sources that are indexes.
      - V(keep) keeps those whose image is kept; V(drop) removes them, for old clients that fail on them.
    type: str
    choices: [keep, drop]
    default: keep
attributes:
  check_mode:
    support: full
    description: Reads the sources and the current index, reports C(changed) and the diff, pushes nothing.
  diff_mode:
    support: full
    description: Shows digest, media type and the platforms with their digests, before and after.
  idempotent:
    support: full
    description: Pushes nothing when the index at O(name) already has the same content.
  platform:
    platforms: posix
    support: full
    description: Runs wherever Python with C(requests) runs; no Docker engine or CLI is needed.
seealso:
  - module: fleet.multiarch.manifest_info
"""

EXAMPLES = r"""
- name: One name for three per-platform images
  fleet.multiarch.manifest:
    name: 127.0.0.1:5000/fleet/app:1.0
    images:
      - 127.0.0.1:5000/fleet/app:1.0-amd64
      - 127.0.0.1:5000/fleet/app:1.0-arm64
      - 127.0.0.1:5000/fleet/app:1.0-armhf
    require_platforms: [linux/amd64, linux/arm64, linux/arm/v7]

- name: An image whose config says the wrong platform, with an annotation, as an OCI index
  fleet.multiarch.manifest:
    name: 127.0.0.1:5443/fleet/app:1.0
    media_type: oci
    annotations:
      org.opencontainers.image.version: "1.0"
    images:
      - reference: 127.0.0.1:5443/fleet/app-builds:armv6-1.0
        platform: linux/arm/v6
        annotations:
          org.opencontainers.image.description: built for the Raspberry Pi Zero
      - 127.0.0.1:5443/fleet/app-builds:multi-1.0
    attestations: drop
    username: fleet
    password: "{{ registry_password }}"
    ca_cert: /etc/docker/certs.d/127.0.0.1:5443/ca.crt

- name: Remove the index
  fleet.multiarch.manifest:
    name: 127.0.0.1:5000/fleet/app:1.0
    state: absent
"""

RETURN = r"""
extends_documentation_fragment:
  - fleet.multiarch.index_entries
name:
  description: The reference of the index.
  returned: always
  type: str
  sample: 127.0.0.1:5000/fleet/app:1.0
digest:
  description:
    - Digest of the index this task put at O(name) (what would be pushed, in check mode); empty when absent.
    - When another writer moved the tag right after this task's push, it is still this task's index, and
      RV(tag_digest) and a warning say what the tag holds.
  returned: always
  type: str
  sample: sha256:9a1c94f2d0f0e1d5bbd4e7fd1f27cd8c5c85d5bcafcd2ecde52eca0d8a2b03b4
tag_digest:
  description: What O(name) holds after the push when another writer moved it right after this task's push.
  returned: when another writer replaced the tag
  type: str
media_type:
  description: Media type of the index; empty when absent.
  returned: always
  type: str
  sample: application/vnd.docker.distribution.manifest.list.v2+json
entries:
  description: The entries of the index, in order.
  returned: always
copied:
  description: Manifests that were (or in check mode would be) copied into the repository of O(name).
  returned: always
  type: list
  elements: str
  sample: [sha256:1bce700380b74b43454dd1fbd2aee520a83bf5fbc8e5cc7810246cc1f63956b1]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.multiarch.plugins.module_utils._manifest import (
    INDEX_ERRORS,
    ManifestManager,
    require_argument_spec,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._module import run_task
from ansible_collections.fleet.multiarch.plugins.module_utils._reference import parse_reference
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import ClientPool, registry_argument_spec


def main():
    argument_spec = {
        "name": {"type": "str", "required": True},
        "images": {"type": "list", "elements": "raw"},
        "annotations": {"type": "dict"},
        "media_type": {"type": "str", "choices": ["oci", "docker"]},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        **require_argument_spec(),
        "attestations": {"type": "str", "choices": ["keep", "drop"], "default": "keep"},
    }
    argument_spec.update(registry_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ("images",))],
        required_together=[("username", "password")],
        supports_check_mode=True,
    )

    def work():
        target = parse_reference(module.params["name"])
        pool = ClientPool(module.params, target.registry)
        return ManifestManager(pool, module.params, check_mode=module.check_mode, diff=module._diff).run()

    run_task(module, work, INDEX_ERRORS, name=module.params["name"])


if __name__ == "__main__":
    main()
