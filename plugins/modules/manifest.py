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
requirements:
  - requests (the Python HTTP library; Debian C(python3-requests)), for the registry API
author:
  - fleet.multiarch contributors (@fleet-multiarch)
extends_documentation_fragment:
  - fleet.multiarch.registry
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
  require_platforms:
    description:
      - Platforms (any spelling) that must be in the index; when one is missing the module fails before pushing.
      - A platform counts when an entry has exactly that platform (C(arm64) and C(arm64/v8) are the same).
    type: list
    elements: str
    default: []
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
    description: Runs wherever Python runs; no Docker and no third-party Python library needed.
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
      description: The C(os.version) of the platform, when set.
      type: str
      returned: when set
    annotations:
      description: Descriptor annotations, when any.
      type: dict
      returned: when set
copied:
  description: Manifests that were (or in check mode would be) copied into the repository of O(name).
  returned: always
  type: list
  elements: str
  sample: [sha256:1bce700380b74b43454dd1fbd2aee520a83bf5fbc8e5cc7810246cc1f63956b1]
"""

import json
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.multiarch.plugins.module_utils._blobcopy import copy_manifest_blobs
from ansible_collections.fleet.multiarch.plugins.module_utils._concurrent import parallel
from ansible_collections.fleet.multiarch.plugins.module_utils._manifest import (
    ManifestError,
    build_index,
    check_duplicates,
    choose_media_type,
    diff_view,
    entries_from_index,
    image_entry,
    image_specs,
    index_content,
    missing_platforms,
    select_attestations,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import PlatformError
from ansible_collections.fleet.multiarch.plugins.module_utils._reference import (
    RegistryError,
    compute_digest,
    parse_reference,
    verify_digest,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import (
    INDEX_TYPES,
    ClientPool,
    registry_argument_spec,
)


class ManifestManager:
    """Builds the desired index from the sources, compares, copies what is missing, moves the tag."""

    def __init__(self, pool: ClientPool, params: dict, check_mode: bool = False, diff: bool = False):
        self.pool = pool
        self.params = params
        self.check_mode = check_mode
        self.want_diff = diff
        self.target = parse_reference(params["name"])
        self.client = pool.get(self.target.registry)

    # ---- sources

    def resolve(self, spec) -> list:
        ref = spec.reference
        client = self.pool.get(ref.registry)
        fetched = client.get_manifest(ref.repository, ref.ref)
        if fetched.media_type in INDEX_TYPES:
            if spec.platform or spec.annotations:
                raise ManifestError(
                    f"{spec.text} is an index: platform and annotations apply to a single image; drop them, or list"
                    " the image of one platform by its digest"
                )
            return entries_from_index(fetched, spec.text, ref.name)
        return [
            image_entry(client, ref, fetched, platform=spec.platform, annotations=spec.annotations, source=spec.text)
        ]

    def desired(self) -> tuple:
        if not self.params.get("images"):
            raise ManifestError("images is required with state=present: list the per-platform images to join")
        specs = image_specs(self.params["images"])
        entries = [entry for group in parallel(self.resolve, specs) for entry in group]
        entries = select_attestations(entries, self.params["attestations"] == "keep")
        check_duplicates(entries)
        missing = missing_platforms(entries, self.params.get("require_platforms") or [])
        if missing:
            have = ", ".join(e.platform_str for e in entries if not e.attestation)
            raise ManifestError(
                f"required platforms missing: {', '.join(missing)} (the images give: {have}); nothing was pushed"
            )
        annotations = self.params.get("annotations") or {}
        if not all(isinstance(v, str) for v in annotations.values()):
            raise ManifestError("annotations must map strings to strings (quote numbers and booleans)")
        media_type = choose_media_type(self.params.get("media_type"), entries, annotations)
        body, data = build_index(entries, media_type, annotations)
        return entries, media_type, body, data

    # ---- the current state

    def current(self):
        """The manifest at the target tag (Fetched) and its entries, or (None, [])."""
        try:
            fetched = self.client.get_manifest(self.target.repository, self.target.ref)
        except RegistryError as exc:
            if exc.status == 404:
                return None, []
            raise
        if fetched.media_type in INDEX_TYPES:
            try:
                return fetched, entries_from_index(fetched, str(self.target), self.target.name)
            except ManifestError:
                return fetched, []
        return fetched, []

    def head_target(self):
        return self.client.head_manifest(self.target.repository, self.target.ref)

    # ---- copying into the target repository

    def read_here(self, entry) -> bool:
        """Read from the target repository moments ago (GET, digest verified): a HEAD would only repeat it."""
        return entry.source_repository == self.target.name and bool(entry.body)

    def ensure_entry(self, entry) -> str:
        """Make the entry's manifest (and its blobs) exist in the target repository; return its digest if copied.

        Not called for an entry :meth:`read_here`.
        """
        repo = self.target.repository
        if entry.source_repository == self.target.name:  # listed in an index there, not read yet
            if self.client.head_manifest(repo, entry.digest) is None:
                raise ManifestError(f"{entry.source}: manifest {entry.digest} is missing from {self.target.name}")
            return ""
        if self.check_mode:
            return "" if self.client.head_manifest(repo, entry.digest) is not None else entry.digest
        # Applying: no HEAD first. Mounting a blob the repository has is a no-op (201), and pushing a manifest
        # by its digest with the same bytes is idempotent; both are verified by the registry and below.
        src_registry, src_repo = entry.source_repository.split("/", 1)
        src = self.pool.get(src_registry)
        body = entry.body
        if body:
            verify_digest(body, entry.digest, f"{entry.source}")
            data = json.loads(body)
        else:
            fetched = src.get_manifest(src_repo, entry.digest)
            body, data = fetched.body, fetched.data
        if entry.size and len(body) != entry.size:
            raise ManifestError(
                f"{entry.source}: manifest {entry.digest} is {len(body)} bytes, its descriptor says {entry.size}"
            )
        copy_manifest_blobs(src, src_repo, self.client, repo, data)
        self.client.put_manifest(repo, entry.digest, body, entry.media_type)
        return entry.digest

    # ---- states

    def present(self) -> dict:
        if self.target.digest or not self.target.tag:
            raise ManifestError(
                f"name {self.params['name']!r} must end in a tag (for example :1.0), not a digest, to create an index"
            )
        # The tag is checked while the sources are read: one round trip less before the PUT.
        (entries, media_type, body, data), head = parallel(lambda step: step(), [self.desired, self.head_target])
        digest = compute_digest(body)
        before = (None, [])
        same = head is not None and head["digest"] == digest
        if head is not None and not same:
            before = self.current()
            same = before[0] is not None and index_content(before[0].data) == index_content(data)
            if same:
                digest = before[0].digest
        result = {
            "changed": not same,
            "name": str(self.target),
            "digest": digest,
            "media_type": media_type,
            "entries": [e.summary() for e in entries],
            "copied": [],
        }
        if self.want_diff:
            after = diff_view(digest, media_type, entries)
            old_fetched, old_entries = before
            if same:
                old_view = after
            elif old_fetched is not None:
                old_view = diff_view(old_fetched.digest, old_fetched.media_type, old_entries)
            else:
                old_view = {}
            result["diff"] = {"before": old_view, "after": after}
        if same:
            return result
        # Everything the index references must be in place and verified before the tag moves.
        # Threads only for the entries that need a request (none when every image was read from the target's
        # own repository).
        elsewhere = [e for e in entries if not self.read_here(e)]
        result["copied"] = [d for d in parallel(self.ensure_entry, elsewhere) if d]
        if not self.check_mode:
            pushed = self.client.put_manifest(self.target.repository, self.target.tag, body, media_type)
            result["digest"] = pushed.digest
            if pushed.replaced:
                result["tag_digest"] = pushed.holds
                result["warnings"] = [pushed.warning(str(self.target))]
        return result

    def absent(self) -> dict:
        repo = self.target.repository
        head = self.client.head_manifest(repo, self.target.ref)
        result = {"changed": False, "name": str(self.target), "digest": "", "media_type": "", "entries": []}
        result["copied"] = []
        if head is None:
            if self.want_diff:
                result["diff"] = {"before": {}, "after": {}}
            return result
        fetched, entries = self.current()
        if fetched is None:  # deleted between the two requests
            return result
        result["changed"] = True
        if self.want_diff:
            result["diff"] = {"before": diff_view(fetched.digest, fetched.media_type, entries), "after": {}}
        if self.check_mode:
            return result
        if self.target.digest:
            self.client.delete_manifest(repo, self.target.digest)
            return result
        try:
            self.client.delete_manifest(repo, self.target.tag)  # OCI distribution 1.1: removes the tag alone
            return result
        except RegistryError as exc:
            # distribution 2.x answers 400 (DIGEST_INVALID) or 405: it deletes by digest only.
            if exc.status not in (400, 405):
                raise
        others = self.other_tags(fetched.digest)
        if others:
            raise ManifestError(
                f"{self.target.name} cannot delete a tag alone, and deleting {fetched.digest} would also remove the"
                f" tags {', '.join(sorted(others))}; remove those first or delete by digest (name@digest)"
            )
        self.client.delete_manifest(repo, fetched.digest)
        return result

    def other_tags(self, digest: str) -> list:
        tags = [t for t in self.client.list_tags(self.target.repository) if t != self.target.tag]

        def points_here(tag):
            head = self.client.head_manifest(self.target.repository, tag)
            return tag if head is not None and head["digest"] == digest else ""

        return [t for t in parallel(points_here, tags) if t]

    def run(self) -> dict:
        if self.params["state"] == "absent":
            return self.absent()
        return self.present()


def main():
    argument_spec = {
        "name": {"type": "str", "required": True},
        "images": {"type": "list", "elements": "raw"},
        "annotations": {"type": "dict"},
        "media_type": {"type": "str", "choices": ["oci", "docker"]},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "require_platforms": {"type": "list", "elements": "str", "default": []},
        "attestations": {"type": "str", "choices": ["keep", "drop"], "default": "keep"},
    }
    argument_spec.update(registry_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ("images",))],
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    try:
        target = parse_reference(module.params["name"])
        pool = ClientPool(module.params, target.registry)
        manager = ManifestManager(pool, module.params, check_mode=module.check_mode, diff=module._diff)
        result = manager.run()
    except (RegistryError, ManifestError, PlatformError, ValueError) as exc:
        module.fail_json(msg=str(exc), name=module.params["name"])
    except Exception as exc:
        module.fail_json(msg=f"unexpected error: {exc.__class__.__name__}: {exc}", exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
