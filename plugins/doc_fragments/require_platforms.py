# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The platform requirement of the modules that read or write an index: one rule, one documentation."""

    DOCUMENTATION = r"""
options:
  require_platforms:
    description:
      - Platforms (any spelling, for example C(linux/arm/v7), C(aarch64), C(armhf)) that the index must serve; the
        module fails naming those it does not serve. O(require_match) says what serving means.
      - Attestation manifests (platform C(unknown/unknown)) never count.
    type: list
    elements: str
    default: []
  require_match:
    description:
      - How an entry serves a platform of O(require_platforms); the rule is the same in M(fleet.multiarch.manifest)
        and M(fleet.multiarch.manifest_info).
      - V(exact) - an image of exactly that platform is listed (C(arm64) and C(arm64/v8) are one platform; an
        C(arm/v6) image does not count for C(linux/arm/v7)). What a release gate needs - every platform that was
        built is there.
      - V(compatible) - a host of that platform finds an image it runs, by containerd's matching (the choice
        C(docker run --platform) makes) - an C(arm/v7) host takes an C(arm/v6) or C(arm/v5) image and C(amd64/v3)
        takes C(v2), C(v1) or plain C(amd64); no other architecture is chosen (many arm64 CPUs cannot run 32-bit
        ARM code). The check before a rollout to hosts of those platforms.
    type: str
    choices: [exact, compatible]
    default: exact
"""
