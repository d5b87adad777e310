# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The ``entries`` an index is read into (``_manifest.Entry.summary``), returned by manifest and manifest_info."""

    DOCUMENTATION = r"""
options: {}
"""

    RETURN = r"""
entries:
  type: list
  elements: dict
  contains:
    platform:
      description: Normalised platform (C(linux/arm/v7)); C(unknown/unknown) for attestations.
      type: str
      sample: linux/arm/v7
    digest:
      description: Digest of the entry's manifest.
      type: str
    size:
      description: Size in bytes of the entry's manifest.
      type: int
    media_type:
      description: Media type of the entry's manifest.
      type: str
    attestation:
      description: Whether the entry is an attestation manifest.
      type: bool
    os_version:
      description: The C(os.version) of the platform.
      type: str
      returned: when set
    annotations:
      description: Descriptor annotations.
      type: dict
      returned: when set
"""
