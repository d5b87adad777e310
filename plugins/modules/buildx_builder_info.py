#!/usr/bin/python
# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: buildx_builder_info
short_description: List docker buildx builders, their nodes, drivers, status and platforms
version_added: 0.1.0
description:
  - Reports what C(docker buildx ls) and C(docker buildx inspect) show, as data - every builder (or the ones
    named), its driver, whether it is current, and each node's endpoint, status and platforms.
  - Uses C(docker buildx ls --format json) where buildx supports it (0.13 and later), else C(docker buildx ls)
    and C(docker buildx inspect) per builder.
  - Changes nothing. Does not start builders; an inactive node reports only its fixed platforms.
author:
  - fleet.multiarch contributors (@fleet-multiarch)
extends_documentation_fragment:
  - fleet.multiarch.docker_cli
  - fleet.multiarch.info_module
options:
  names:
    description:
      - Only report these builders. Names that do not exist are listed in RV(missing).
    type: list
    elements: str
attributes:
  platform:
    platforms: posix
    support: full
    description: Linux and other POSIX hosts with the docker CLI and its buildx plugin.
seealso:
  - module: fleet.multiarch.buildx_builder
"""

EXAMPLES = r"""
- name: Which builders exist and what can they build?
  fleet.multiarch.buildx_builder_info:
  register: buildx

- name: Fail when the fleet builder has no running arm64 node
  ansible.builtin.assert:
    that: >-
      buildx.builders | selectattr('name', 'equalto', 'fleet') | map(attribute='nodes') | flatten
      | selectattr('status', 'equalto', 'running') | map(attribute='platforms') | flatten
      | select('equalto', 'linux/arm64') | list | length > 0
"""

RETURN = r"""
current:
  description: The name of the current builder.
  returned: always
  type: str
  sample: default
buildx_version:
  description: The version of the buildx plugin.
  returned: always
  type: str
  sample: 0.13.1
builders:
  description: The builders, in the order buildx lists them.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Builder name.
      type: str
      sample: fleet
    driver:
      description: Driver (V(docker), V(docker-container), V(remote), V(kubernetes)).
      type: str
      sample: docker-container
    current:
      description: Whether this is the current builder.
      type: bool
    last_activity:
      description: When the builder was last used, as buildx prints it.
      type: str
    nodes:
      description: The nodes, as M(fleet.multiarch.buildx_builder) returns them.
      type: list
      elements: dict
      contains:
        name:
          description: Node name.
          type: str
        endpoint:
          description: Docker context or address.
          type: str
        status:
          description: Status (V(running), V(inactive), ...).
          type: str
        platforms:
          description: Platforms the node reports.
          type: list
          elements: str
        fixed_platforms:
          description: Platforms set with C(--platform) (for inactive nodes, all that is known).
          type: list
          elements: str
        buildkit_version:
          description: BuildKit version of a running node.
          type: str
        driver_opts:
          description: Driver options.
          type: dict
        buildkitd_flags:
          description: BuildKit daemon flags.
          type: list
          elements: str
        error:
          description: Error reported for the node.
          type: str
missing:
  description: Names given in O(names) that are not builders.
  returned: always
  type: list
  elements: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx

ARGUMENT_SPEC = {"names": {"type": "list", "elements": "str"}, **bx.DOCKER_CLI_ARGS}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        cli = bx.DockerCLI.from_module(module)
        version = cli.version()["version"]
        current = cli.current_builder()
        builders, missing = bx.select_builders(cli.list_builders(), module.params["names"], current)
    except bx.BuildxError as exc:
        module.fail_json(msg=str(exc), **exc.to_result())
    except Exception as exc:  # report anything unexpected with its traceback
        module.fail_json(msg=f"unexpected error: {exc}", exception=traceback.format_exc())
    module.exit_json(changed=False, buildx_version=version, current=current, builders=builders, missing=missing)


if __name__ == "__main__":
    main()
