#!/usr/bin/python
# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: manifest_info
short_description: Inspect an image reference in a registry, and find the digest a platform pulls
version_added: 0.1.0
description:
  - Reads what a reference points to, straight from the registry API (no Docker engine or CLI is needed); the
    media type, digest, whether it is an index, and each entry's platform, digest and size. For a single image the
    platform comes from its config.
  - With O(platform), returns the single digest a host of that platform pulls, by containerd's matching rules
    (C(arm64) and C(arm64/v8) are one platform; an C(arm/v7) host may run C(arm/v6) and C(arm/v5) images and prefers
    the highest; other variants match exactly; no other architecture is chosen).
  - With O(require_platforms), a platform that no entry serves is a failure, and so is an O(name) that does not
    exist (the gate of a release, or the check before a rollout).
  - Changes nothing.
author:
  - fleet.multiarch contributors (@fleet-multiarch)
extends_documentation_fragment:
  - fleet.multiarch.info_module
  - fleet.multiarch.registry
  - fleet.multiarch.require_platforms
options:
  name:
    description:
      - The reference to inspect, with its registry host (C(127.0.0.1:5000/fleet/app:1.0) or C(...@sha256:...)).
    type: str
    required: true
  platform:
    description:
      - A host platform (any spelling, for example C(linux/arm/v7), C(aarch64), C(armhf)); the result
        RV(platform_digest) is the digest such a host pulls.
    type: str
attributes:
  platform:
    platforms: posix
    support: full
    description: Runs wherever Python with C(requests) runs; no Docker engine or CLI is needed.
seealso:
  - module: fleet.multiarch.manifest
"""

EXAMPLES = r"""
- name: What does the release tag hold?
  fleet.multiarch.manifest_info:
    name: 127.0.0.1:5000/fleet/app:1.0
  register: release

- name: The release gate - an image of each built platform is listed
  fleet.multiarch.manifest_info:
    name: 127.0.0.1:5000/fleet/app:1.0
    require_platforms: [linux/amd64, linux/arm64, linux/arm/v7]

- name: Before the rollout, every device platform finds an image it runs (an arm/v7 Pi may take the arm/v6 one)
  fleet.multiarch.manifest_info:
    name: 127.0.0.1:5000/fleet/app:1.0
    require_platforms: [linux/arm64, linux/arm/v7, linux/arm/v6]
    require_match: compatible

- name: The digest this device runs
  fleet.multiarch.manifest_info:
    name: 127.0.0.1:5000/fleet/app:1.0
    platform: "{{ ansible_facts.architecture }}"
  register: mine

- name: Pin the device to it
  ansible.builtin.debug:
    msg: "127.0.0.1:5000/fleet/app@{{ mine.platform_digest }}"
"""

RETURN = r"""
extends_documentation_fragment:
  - fleet.multiarch.index_entries
exists:
  description: Whether O(name) exists in the registry.
  returned: always
  type: bool
  sample: true
name:
  description: The reference inspected (with the default tag C(latest) made explicit).
  returned: always
  type: str
  sample: 127.0.0.1:5000/fleet/app:1.0
digest:
  description: Digest of the manifest or index, verified against its content.
  returned: when exists
  type: str
  sample: sha256:11e88decc3b61ce4db44b1747e24483110fd1b29724a7d4a33b68b1a8258d089
media_type:
  description: Media type of the manifest or index.
  returned: when exists
  type: str
  sample: application/vnd.docker.distribution.manifest.list.v2+json
is_index:
  description: Whether O(name) is an image index (manifest list).
  returned: when exists
  type: bool
size:
  description: Size in bytes of the manifest or index.
  returned: when exists
  type: int
entries:
  description:
    - The entries of the index, in order; for a single image, one entry describing it.
  returned: when exists
platforms:
  description: The normalised platforms of the entries, attestations left out.
  returned: when exists
  type: list
  elements: str
  sample: [linux/amd64, linux/arm64, linux/arm/v7]
annotations:
  description: Annotations of the index or manifest.
  returned: when exists
  type: dict
platform_digest:
  description: The digest a host of O(platform) pulls; null when no entry serves it.
  returned: when O(platform) is given
  type: str
  sample: sha256:94e942f6f246a243e197df13475bcaaf020c192ba38d5922c714dbe663c12553
platform_match:
  description: The platform of the entry chosen for O(platform) (may be a lower variant, for example C(linux/arm/v6)).
  returned: when O(platform) is given
  type: str
manifest:
  description: The manifest or index itself, as JSON.
  returned: when exists
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.multiarch.plugins.module_utils._manifest import (
    INDEX_ERRORS,
    inspect,
    require_argument_spec,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._module import run_task
from ansible_collections.fleet.multiarch.plugins.module_utils._reference import parse_reference
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import ClientPool, registry_argument_spec


def main():
    argument_spec = {
        "name": {"type": "str", "required": True},
        "platform": {"type": "str"},
        **require_argument_spec(),
    }
    argument_spec.update(registry_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_together=[("username", "password")],
        supports_check_mode=True,
    )

    params = module.params

    def work():
        ref = parse_reference(params["name"])
        client = ClientPool(params, ref.registry).get(ref.registry)
        found = inspect(client, ref, params["platform"], params["require_platforms"], params["require_match"])
        return {"changed": False, **found}

    run_task(module, work, INDEX_ERRORS, name=params["name"])


if __name__ == "__main__":
    main()
