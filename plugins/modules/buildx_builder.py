#!/usr/bin/python
# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: buildx_builder
short_description: Manage docker buildx builder instances and their nodes
version_added: 0.1.0
description:
  - Creates, changes and removes builder instances the way C(docker buildx create), C(create --append),
    C(create --leave), C(rm) and C(use) do, and reports each node's status and platforms like
    C(docker buildx inspect).
  - A builder can have several nodes, each a BuildKit daemon on its own machine with the platforms it builds
    natively. Adding a real arm64 machine (a Raspberry Pi 5, an ARM server) as a node makes buildx send
    arm64 builds there instead of emulating them with QEMU.
  - Idempotent - the stored builder (C($DOCKER_CONFIG/buildx/instances/NAME), the file buildx itself reads)
    is compared with what was asked. A missing node is appended, a node that differs is replaced (C(--leave)
    then C(--append)), a node that was not asked for leaves; the builder is recreated only when its driver
    changes or its only node differs.
  - With O(driver=docker) the builder is a docker context - buildx creates one docker-driver builder per
    context by itself and allows no other. The module then checks that the context O(name) exists and, with
    O(use=true), makes it current.
  - The docker-container driver runs BuildKit from an image (C(moby/buildkit:buildx-stable-1) by default) on
    each node's engine. Creating and inspecting the builder needs no image; O(bootstrap=true) pulls it, and
    when it cannot be pulled the module fails naming the image. Set O(driver_opts) C(image) to a copy in a
    registry the engines can reach.
author:
  - fleet.multiarch contributors (@fleet-multiarch)
extends_documentation_fragment:
  - fleet.multiarch.docker_cli
options:
  name:
    description:
      - Name of the builder. With O(driver=docker), the name of the docker context.
    type: str
    required: true
  state:
    description:
      - V(present) creates or updates the builder, V(absent) removes it (C(docker buildx rm)).
    type: str
    choices: [present, absent]
    default: present
  driver:
    description:
      - The buildx driver. V(docker) uses the engine's own BuildKit through the docker context O(name).
    type: str
    choices: [docker-container, remote, kubernetes, docker]
    default: docker-container
  endpoint:
    description:
      - Endpoint of a single-node builder - a docker context name or an address (C(unix://), C(tcp://),
        C(ssh://user@host)). Use O(nodes) for several nodes.
      - When neither O(endpoint) nor O(nodes) is given, buildx uses the engine of O(docker_host), else the current
        docker context, and the endpoint is not compared.
    type: str
  platforms:
    description:
      - Platforms fixed for the node of a single-node builder (C(--platform)), e.g. C(linux/arm64).
      - Any spelling the collection knows is accepted (C(aarch64), C(armhf)); they are normalised.
    type: list
    elements: str
  nodes:
    description:
      - The nodes of the builder, in order. Nodes of the builder that are not listed are removed.
      - The first node decides where builds go for platforms no node claims.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Node name; defaults to the builder name followed by the node's index (C(mybuilder0)), as buildx
            names nodes.
        type: str
      endpoint:
        description:
          - A docker context name or an address (C(unix://), C(tcp://host:port), C(ssh://user@host)).
        type: str
        required: true
      platforms:
        description:
          - The platforms this node builds natively, e.g. C([linux/arm64]) for a Raspberry Pi 5.
        type: list
        elements: str
      driver_opts:
        description:
          - Driver options of this node, merged over O(driver_opts).
        type: dict
  driver_opts:
    description:
      - Driver options for every node (C(--driver-opt key=value)), e.g. C(image), C(network), C(cacert),
        C(namespace). Values are converted to strings.
    type: dict
  buildkitd_config:
    description:
      - Content of the BuildKit daemon configuration (C(buildkitd.toml)), for example registry mirrors and
        insecure registries. Compared by meaning (buildx rewrites the TOML it stores); on targets with Python
        older than 3.11 and without the C(tomli) package the comparison is textual.
    type: str
  buildkitd_flags:
    description:
      - BuildKit daemon flags, e.g. C(--debug --allow-insecure-entitlement security.insecure).
    type: str
  use:
    description:
      - Make this the current builder (C(docker buildx use)). With O(driver=docker) this switches the docker
        CLI's current context (C(docker context use)), as buildx requires.
    type: bool
    default: false
  bootstrap:
    description:
      - Start the builder's nodes (C(docker buildx inspect --bootstrap)) and fail when a node cannot start.
      - Not done in check mode.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports the commands it would run and the builder it would leave; changes nothing.
  diff_mode:
    support: full
    description: Shows the stored builder configuration before and after.
  idempotent:
    support: full
    description: Compares the stored builder with the options; a second run changes nothing.
  platform:
    platforms: posix
    support: full
    description: Linux and other POSIX hosts with the docker CLI and its buildx plugin.
notes:
  - Builders belong to the docker configuration directory (O(docker_config)), so they are per user.
seealso:
  - module: fleet.multiarch.buildx_builder_info
  - module: fleet.multiarch.buildx_plugin
  - name: docker buildx create
    description: The command this module drives.
    link: https://docs.docker.com/reference/cli/docker/buildx/create/
"""

EXAMPLES = r"""
- name: A builder on this host's engine, with a BuildKit image from the local registry
  fleet.multiarch.buildx_builder:
    name: multiarch
    driver: docker-container
    driver_opts:
      image: registry.example.com/moby/buildkit:buildx-stable-1
      network: host
    buildkitd_config: |
      [registry."registry.example.com"]
        mirrors = ["mirror.example.com"]
      [registry."10.0.0.5:5000"]
        http = true
        insecure = true
    use: true
    bootstrap: true

- name: Build arm64 natively on a Raspberry Pi 5 and arm/v7 on a Pi 3; amd64 stays local
  fleet.multiarch.buildx_builder:
    name: fleet
    driver: docker-container
    nodes:
      - name: local
        endpoint: default
        platforms: [linux/amd64, linux/386]
      - name: pi5
        endpoint: ssh://builder@pi5.example.com
        platforms: [linux/arm64]
      - name: pi3
        endpoint: ssh://builder@pi3.example.com
        platforms: [linux/arm/v7, linux/arm/v6]
    use: true

- name: BuildKit daemons that already run (remote driver, TLS)
  fleet.multiarch.buildx_builder:
    name: farm
    driver: remote
    driver_opts:
      cacert: /etc/buildkit/ca.pem
      cert: /etc/buildkit/client.pem
      key: /etc/buildkit/client-key.pem
    nodes:
      - endpoint: tcp://arm-server.example.com:1234
        platforms: [linux/arm64]

- name: Build with the engine behind the docker context "lab" (docker driver)
  fleet.multiarch.buildx_builder:
    name: lab
    driver: docker
    use: true

- name: Remove a builder
  fleet.multiarch.buildx_builder:
    name: fleet
    state: absent
"""

RETURN = r"""
name:
  description: The builder name.
  returned: always
  type: str
  sample: fleet
driver:
  description: The builder's driver.
  returned: always
  type: str
  sample: docker-container
current:
  description: Whether this is the current builder (after the change).
  returned: always
  type: bool
commands:
  description: The docker commands run (in check mode, those that would run).
  returned: always
  type: list
  elements: str
  sample: ["docker buildx create --name fleet --append --node pi5 --driver docker-container --platform linux/arm64 -- ssh://builder@pi5"]
nodes:
  description:
    - The builder's nodes as C(docker buildx inspect) reports them. In check mode, the nodes that would exist,
      with an empty status for new ones. Empty when O(state=absent).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Node name.
      type: str
      sample: pi5
    endpoint:
      description: Docker context or address of the node.
      type: str
      sample: ssh://builder@pi5.example.com
    status:
      description: V(running), V(inactive), V(stopped), V(error) ... as buildx reports it.
      type: str
      sample: inactive
    platforms:
      description: The platforms the node reports (a running node reports what it can build, emulation included;
        an inactive one only its fixed platforms).
      type: list
      elements: str
      sample: [linux/arm64]
    fixed_platforms:
      description: The platforms set for the node with C(--platform).
      type: list
      elements: str
    buildkit_version:
      description: BuildKit version of a running node.
      type: str
      sample: v0.13.1
    driver_opts:
      description: Driver options of the node.
      type: dict
    buildkitd_flags:
      description: BuildKit daemon flags of the node.
      type: list
      elements: str
    error:
      description: The error buildx reports for the node, if any.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx
from ansible_collections.fleet.multiarch.plugins.module_utils._buildx_builder import BuilderManager
from ansible_collections.fleet.multiarch.plugins.module_utils._module import run_manager

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "driver": {"type": "str", "choices": list(bx.DRIVERS), "default": "docker-container"},
    "endpoint": {"type": "str"},
    "platforms": {"type": "list", "elements": "str"},
    "nodes": {
        "type": "list",
        "elements": "dict",
        "options": {
            "name": {"type": "str"},
            "endpoint": {"type": "str", "required": True},
            "platforms": {"type": "list", "elements": "str"},
            "driver_opts": {"type": "dict"},
        },
    },
    "driver_opts": {"type": "dict"},
    "buildkitd_config": {"type": "str"},
    "buildkitd_flags": {"type": "str"},
    "use": {"type": "bool", "default": False},
    "bootstrap": {"type": "bool", "default": False},
    **bx.DOCKER_CLI_ARGS,
}


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("nodes", "endpoint"), ("nodes", "platforms")],
        supports_check_mode=True,
    )
    run_manager(module, lambda: BuilderManager(module, bx.DockerCLI.from_module(module)), (bx.BuildxError,))


if __name__ == "__main__":
    main()
