# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """What to build and with what: the options image_build and release share (one spec, _image_build.py's); the
    docker CLI's own options are the docker_cli fragment's."""

    DOCUMENTATION = r"""
options:
  context:
    description:
      - The build context directory on the host that runs the module.
    type: path
    required: true
  dockerfile:
    description:
      - The Dockerfile, relative to O(context) unless absolute.
    type: path
    default: Dockerfile
  platforms:
    description:
      - The platforms to build, in any spelling the collection knows (C(linux/arm/v7), C(armhf), C(aarch64)).
    type: list
    elements: str
    required: true
  build_args:
    description:
      - Build-time variables (C(--build-arg)). Part of the fingerprint; they are visible in the image history, so
        they are no place for credentials.
    type: dict
    default: {}
  target:
    description:
      - The stage to build (C(--target)); the last one when not given.
    type: str
  builder:
    description:
      - The buildx builder (or docker context) to build with; default the current builder.
    type: str
  platform_builders:
    description:
      - Platform -> builder or docker context that builds it (a native ARM node, for example). Platforms not
        listed use O(builder). Implies O(strategy=per_platform) under V(auto).
    type: dict
    default: {}
  strategy:
    description:
      - V(multi) runs one C(buildx build --platform a,b,c) (a builder that exports an index); V(per_platform) builds
        every platform on its own and assembles the index through the registry API (every engine); V(auto) chooses
        by inspecting the builder and says why (see M(fleet.multiarch.image_build)).
    type: str
    choices: [auto, multi, per_platform]
    default: auto
  force:
    description:
      - Build even when the published image carries the same fingerprint.
    type: bool
    default: false
  base_image_registry:
    description:
      - Where base images without a registry host (C(FROM busybox)) are looked up for the fingerprint, as
        C(host:port). Defaults to the engine's first registry mirror (C(docker info)); give it to save that call.
      - When neither is available, or that registry lacks the image, C(docker buildx imagetools inspect)
        resolves the base image instead.
    type: str
"""
