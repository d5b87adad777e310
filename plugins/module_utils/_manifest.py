# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""Image indexes (manifest lists): flatten sources, check platforms, build, compare, match, read, publish.

The data part is pure. The one reader of a published index - :func:`read_manifest`, :func:`entries_of` (and
:func:`describe`, both at once), used by manifest, manifest_info, image_build and container_rollout - reads through
a registry client passed in (:class:`~._registry.RegistryClient`) and does no HTTP of its own; so do
:class:`ManifestManager` (the ``manifest`` module) and :func:`inspect` (the ``manifest_info`` module).
Platform strings are parsed by ``_platform`` only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ansible_collections.fleet.multiarch.plugins.module_utils._blobcopy import copy_manifest_blobs
from ansible_collections.fleet.multiarch.plugins.module_utils._concurrent import parallel
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import (
    Platform,
    PlatformError,
    compatible_platforms,
    parse_platform,
    platform_from_dict,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._reference import (
    Reference,
    RegistryError,
    compute_digest,
    parse_reference,
    verify_digest,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    IMAGE_TYPES,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Fetched,
)

ATTESTATION_TYPE_ANNOTATION = "vnd.docker.reference.type"
ATTESTATION_TYPE = "attestation-manifest"
ATTESTATION_SUBJECT_ANNOTATION = "vnd.docker.reference.digest"
MEDIA_TYPE_CHOICES = {"oci": OCI_INDEX, "docker": DOCKER_LIST}
# The platform keys of an OCI descriptor, in the order Docker and BuildKit write them.
_PLATFORM_KEYS = ("architecture", "os", "os.version", "os.features", "variant", "features")


class ManifestError(ValueError):
    """Input or content that cannot make a valid index; the message says what to change."""


# What a module that reads or writes an index reports as its failure (the message says what to change); any
# other exception is unexpected.
INDEX_ERRORS = (RegistryError, ManifestError, PlatformError, ValueError)


@dataclass
class Entry:
    """One descriptor of an index: a per-platform image manifest, or an attestation manifest."""

    media_type: str
    digest: str
    size: int
    platform: dict  # the OCI platform object as it will be written
    annotations: dict = field(default_factory=dict)
    source: str = ""  # the reference it came from (for messages)
    source_repository: str = ""  # registry/repository that holds the manifest
    attestation: bool = False
    body: bytes = field(default=b"", repr=False)  # the manifest bytes when already read (saves a GET)
    config: dict = field(default_factory=dict, repr=False)  # a single image's config, when it was read

    @property
    def platform_obj(self) -> Platform | None:
        if self.attestation:
            return None
        return platform_from_dict(self.platform)

    @property
    def platform_key(self) -> tuple:
        """What makes two entries 'the same platform': the normalised platform and os.version."""
        obj = self.platform_obj
        return (obj.oci if obj else "unknown/unknown", self.platform.get("os.version", ""))

    @property
    def platform_str(self) -> str:
        obj = self.platform_obj
        if obj is None:
            return "unknown/unknown"
        out = obj.oci
        if self.platform.get("os.version"):
            out += f" ({self.platform['os.version']})"
        return out

    def descriptor(self, docker: bool = False) -> dict:
        out = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = ordered_platform(self.platform)
        if self.annotations and not docker:
            out["annotations"] = dict(sorted(self.annotations.items()))
        return out

    def summary(self) -> dict:
        out = {
            "platform": self.platform_str if not self.attestation else "unknown/unknown",
            "digest": self.digest,
            "size": self.size,
            "media_type": self.media_type,
            "attestation": self.attestation,
        }
        if self.platform.get("os.version"):
            out["os_version"] = self.platform["os.version"]
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


def ordered_platform(platform: dict) -> dict:
    out = {k: platform[k] for k in _PLATFORM_KEYS if platform.get(k)}
    for key in sorted(platform):
        if key not in out and platform[key]:
            out[key] = platform[key]
    return out


def is_attestation(descriptor: dict) -> bool:
    """BuildKit's attestation manifests: annotated as such, or with platform ``unknown/unknown``."""
    annotations = descriptor.get("annotations") or {}
    if annotations.get(ATTESTATION_TYPE_ANNOTATION) == ATTESTATION_TYPE:
        return True
    platform = descriptor.get("platform") or {}
    return platform.get("os") == "unknown" and platform.get("architecture") == "unknown"


def checked_platform(platform: dict, where: str) -> dict:
    """Validate an OCI platform object; keep its spelling (``arm64`` + ``v8`` stays) but refuse nonsense."""
    if not isinstance(platform, dict) or not platform.get("architecture"):
        raise ManifestError(f"{where}: no platform (architecture and os); give one with platform: os/arch[/variant]")
    try:
        platform_from_dict(platform)
    except PlatformError as exc:
        raise ManifestError(f"{where}: {exc}") from None
    out = {k: v for k, v in platform.items() if v not in (None, "", [])}
    out.setdefault("os", "linux")
    return out


def platform_from_config(config: dict, where: str) -> dict:
    """The platform object of an image from its config blob (os, architecture, variant, os.version...)."""
    if not isinstance(config, dict):
        raise ManifestError(f"{where}: the image config is not a JSON object")
    platform = {k: config.get(k) for k in ("architecture", "os", "variant", "os.version", "os.features")}
    return checked_platform(platform, f"{where} (platform read from the image config)")


def override_platform(spec: str, os_version: str, where: str) -> dict:
    """A platform object from the user's ``platform`` string (any spelling ``_platform`` accepts)."""
    try:
        obj = parse_platform(spec)
    except PlatformError as exc:
        raise ManifestError(f"{where}: {exc}") from None
    out = obj.to_dict()
    if os_version:
        out["os.version"] = os_version
    return out


def entries_from_index(index: Fetched, source: str, repository: str) -> list:
    """Flatten an index into its entries; attestation entries are marked, platforms validated."""
    out = []
    for pos, desc in enumerate(index.data.get("manifests") or []):
        where = f"{source} entry {pos} ({desc.get('digest', '?')})"
        media_type = desc.get("mediaType") or ""
        if media_type in INDEX_TYPES:
            raise ManifestError(f"{where}: an index inside an index is not supported; use the inner index as a source")
        attestation = is_attestation(desc)
        platform = desc.get("platform") or {}
        if not attestation:
            platform = checked_platform(platform, where)
        out.append(
            Entry(
                media_type=media_type or OCI_MANIFEST,
                digest=desc["digest"],
                size=int(desc.get("size") or 0),
                platform=dict(platform),
                annotations=dict(desc.get("annotations") or {}),
                source=source,
                source_repository=repository,
                attestation=attestation,
            )
        )
    return out


def select_attestations(entries: list, keep: bool) -> list:
    """Drop attestation entries, or keep those whose subject image is among the entries."""
    images = {e.digest for e in entries if not e.attestation}
    out = []
    for entry in entries:
        if entry.attestation:
            subject = entry.annotations.get(ATTESTATION_SUBJECT_ANNOTATION)
            if not keep or (subject and subject not in images):
                continue
        out.append(entry)
    return out


def single_image(entries: list, source: str, keep_attestations: bool) -> tuple:
    """``(image entry, its attestation entries)`` of a one-platform index (BuildKit wraps an image so when it
    attaches provenance or SBOM); the attestations are ``[]`` unless kept."""
    images = [e for e in entries if not e.attestation]
    if len(images) != 1:
        raise ManifestError(f"{source} is an index with {len(images)} images, not one")
    kept = select_attestations(entries, keep=True) if keep_attestations else []
    return images[0], [e for e in kept if e.attestation]


def images_then_attestations(groups: list) -> list:
    """Entries of several ``[image, *attestations]`` groups in BuildKit's order: every image, then every
    attestation (clients that know no attestations pick the first entry of their platform)."""
    return [group[0] for group in groups] + [entry for group in groups for entry in group[1:]]


def check_duplicates(entries: list) -> None:
    """Two sources for the same platform is an error (not a silent last-one-wins)."""
    seen: dict = {}
    for entry in entries:
        if entry.attestation:
            continue
        key = entry.platform_key
        if key in seen:
            first = seen[key]
            if first.digest == entry.digest:
                raise ManifestError(
                    f"platform {entry.platform_str} is given twice, by {first.source} and {entry.source}"
                    f" (the same image {entry.digest}); list it once"
                )
            raise ManifestError(
                f"platform {entry.platform_str} comes from two sources: {first.source} ({first.digest}) and"
                f" {entry.source} ({entry.digest}); keep one, or give one of them another platform"
            )
        seen[key] = entry


def choose_media_type(requested: str | None, entries: list, annotations: dict) -> str:
    """The index media type: as requested, or Docker when every image is a Docker v2 manifest."""
    images = [e for e in entries if not e.attestation]
    if requested:
        media_type = MEDIA_TYPE_CHOICES[requested]
    elif images and all(e.media_type == DOCKER_MANIFEST and not e.annotations for e in entries) and not annotations:
        media_type = DOCKER_LIST
    else:
        media_type = OCI_INDEX
    if media_type == DOCKER_LIST:
        if annotations:
            raise ManifestError("a Docker manifest list has no annotations: use media_type oci, or drop annotations")
        annotated = [e for e in entries if e.annotations]
        if annotated:
            raise ManifestError(
                f"a Docker manifest list has no descriptor annotations, but the entry of {annotated[0].source}"
                " has some: use media_type oci, or drop them"
            )
        oci = [e for e in entries if e.media_type != DOCKER_MANIFEST]
        if oci:
            raise ManifestError(
                f"a Docker manifest list can only hold Docker v2 image manifests, but {oci[0].source} is"
                f" {oci[0].media_type}: use media_type oci (or attestations: drop when it is an attestation)"
            )
    return media_type


def build_index(entries: list, media_type: str, annotations: dict | None = None) -> tuple:
    """``(body bytes, data)`` of the index: deterministic JSON, the same input gives the same digest."""
    docker = media_type == DOCKER_LIST
    data = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [e.descriptor(docker=docker) for e in entries],
    }
    if annotations and not docker:
        data["annotations"] = dict(sorted(annotations.items()))
    body = json.dumps(data, indent=2).encode("utf-8")
    return body, data


def index_content(data: dict | None) -> dict | None:
    """What 'the same content' means: media type, entries in order (type, digest, size, platform,
    annotations) and index annotations; not whitespace, key order or unknown fields."""
    if data is None:
        return None
    manifests = []
    for desc in data.get("manifests") or []:
        manifests.append(
            {
                "mediaType": desc.get("mediaType"),
                "digest": desc.get("digest"),
                "size": desc.get("size"),
                "platform": ordered_platform(desc.get("platform") or {}),
                "annotations": dict(desc.get("annotations") or {}),
            }
        )
    annotations = dict(data.get("annotations") or {})
    return {"mediaType": data.get("mediaType"), "manifests": manifests, "annotations": annotations}


def diff_view(digest: str, media_type: str, entries: list) -> dict:
    """The before/after of a diff: digest, media type and one line per platform."""
    if not digest:
        return {}
    return {
        "digest": digest,
        "media_type": media_type,
        "platforms": {
            (f"unknown/unknown #{i}" if e.attestation else e.platform_str): e.digest for i, e in enumerate(entries)
        },
    }


def match_platform(entries: list, host) -> Entry | None:
    """The entry a host of platform ``host`` pulls, by containerd's preference order; None if none.

    The most preferred platform wins; between entries of the same platform, the first in the index.
    """
    for wanted in compatible_platforms(host):
        for entry in entries:
            if entry.attestation:
                continue
            obj = entry.platform_obj
            if obj is not None and obj.os == wanted.os and obj.oci == wanted.oci:
                return entry
    return None


# How a platform of ``require_platforms`` counts as served (the ``require_match`` option of manifest and
# manifest_info): exact, an image of that platform is listed; compatible, a host of it finds one it runs.
REQUIRE_MATCHES = ("exact", "compatible")


def require_argument_spec() -> dict:
    """The options of that requirement (doc fragment fleet.multiarch.require_platforms), for a module's spec."""
    return {
        "require_platforms": {"type": "list", "elements": "str", "default": []},
        "require_match": {"type": "str", "choices": list(REQUIRE_MATCHES), "default": "exact"},
    }


def missing_platforms(entries: list, required: list, match: str = "exact") -> list:
    """The ``required`` platforms (any spelling; normalised in the answer) that ``entries`` do not serve.

    The one rule of ``require_platforms`` in every module. ``exact``: an image of exactly that platform is
    listed (``arm64`` and ``arm64/v8`` are one platform; an ``arm/v6`` image does not count for ``arm/v7``),
    what a release gate needs. ``compatible``: a host of that platform finds an image it runs, by containerd's
    matching (:func:`match_platform`; an ``arm/v7`` host takes an ``arm/v6`` image). Attestations never count.
    """
    if match not in REQUIRE_MATCHES:
        raise ManifestError(f"require_match must be one of {', '.join(REQUIRE_MATCHES)}, not {match!r}")
    wanted = [parse_platform(r) for r in required]
    if match == "compatible":
        return [p.oci for p in wanted if match_platform(entries, p) is None]
    present = {e.platform_obj.oci for e in entries if not e.attestation}
    return [p.oci for p in wanted if p.oci not in present]


def compatible_hint(entries: list, missing: list, match: str) -> str:
    """For a failed exact requirement: which missing platforms a host would still serve from a lower variant."""
    if match != "exact":
        return ""
    served = []
    for platform in missing:
        chosen = match_platform(entries, platform)
        if chosen is not None:
            served.append(f"a {platform} host would run the {chosen.platform_str} image")
    if not served:
        return ""
    return f"; {', '.join(served)}: set require_match: compatible to accept that"


@dataclass
class ImageSpec:
    """One item of the ``images`` option: a reference and an optional platform/annotations override."""

    reference: Reference
    text: str
    platform: dict | None = None
    annotations: dict = field(default_factory=dict)


IMAGE_KEYS = ("reference", "platform", "os_version", "annotations")


def image_specs(images: list) -> list:
    """Validate the ``images`` option: strings, or dicts with ``reference`` and optional overrides."""
    out = []
    for pos, item in enumerate(images or []):
        where = f"images[{pos}]"
        if isinstance(item, str):
            item = {"reference": item}  # noqa: PLW2901 - a string is the short form of the dict
        if not isinstance(item, dict):
            raise ManifestError(f"{where}: expected a reference string or a dict with reference, got {item!r}")
        unknown = sorted(set(item) - set(IMAGE_KEYS))
        if unknown:
            raise ManifestError(f"{where}: unknown keys {', '.join(unknown)}; allowed: {', '.join(IMAGE_KEYS)}")
        text = item.get("reference")
        if not isinstance(text, str) or not text:
            raise ManifestError(f"{where}: reference is required (host[:port]/repository[:tag][@digest])")
        try:
            ref = parse_reference(text)
        except ValueError as exc:
            raise ManifestError(f"{where}: {exc}") from None
        os_version = item.get("os_version") or ""
        if not isinstance(os_version, str):
            raise ManifestError(f"{where}: os_version must be a string such as '10.0.17763.1879'")
        platform = None
        if item.get("platform"):
            if not isinstance(item["platform"], str):
                raise ManifestError(f"{where}: platform must be a string such as 'linux/arm/v7'")
            platform = override_platform(item["platform"], os_version, f"{where} ({text})")
        elif os_version:
            raise ManifestError(f"{where}: os_version needs platform as well (os/architecture[/variant])")
        annotations = item.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise ManifestError(f"{where}: annotations must map strings to strings (quote numbers and booleans)")
        out.append(ImageSpec(ref, text, platform, dict(annotations)))
    return out


# --------------------------------------------------------------------------- reading through a client


def image_entry(
    client,
    ref: Reference,
    fetched: Fetched,
    *,
    platform: dict | None = None,
    annotations: dict | None = None,
    source: str,
) -> Entry:
    """An entry for a single image manifest; reads the config blob when no platform is given."""
    if platform is None:
        config_desc = fetched.data.get("config") or {}
        if not config_desc.get("digest"):
            raise ManifestError(f"{source}: the image manifest has no config descriptor")
        blob = client.get_blob(ref.repository, config_desc["digest"])
        try:
            config = json.loads(blob)
        except ValueError:
            raise ManifestError(f"{source}: the image config blob is not JSON") from None
        platform = platform_from_config(config, source)
    else:
        config = {}
    return Entry(
        media_type=fetched.media_type,
        digest=fetched.digest,
        size=fetched.size,
        platform=platform,
        annotations=dict(annotations or {}),
        source=source,
        source_repository=ref.name,
        body=fetched.body,
        config=config,
    )


def read_manifest(client, ref: Reference) -> Fetched | None:
    """The manifest or index ``ref`` points to (digest verified); None when the registry does not have it."""
    try:
        return client.get_manifest(ref.repository, ref.ref)
    except RegistryError as exc:
        if exc.status == 404:
            return None
        raise


def entries_of(
    client,
    ref: Reference,
    fetched: Fetched,
    *,
    platform: dict | None = None,
    annotations: dict | None = None,
    source: str = "",
) -> list:
    """The entries of a manifest read from ``ref``'s repository: every module reads a published index here.

    An index gives its descriptors (:func:`entries_from_index`: attestations recognised by
    :func:`is_attestation`, platforms validated); a single image gives one entry (:func:`image_entry`: its
    platform read from the config blob unless ``platform`` is given). ``source`` names it in messages.
    """
    source = source or str(ref)
    if fetched.media_type in INDEX_TYPES:
        return entries_from_index(fetched, source, ref.name)
    if fetched.media_type in IMAGE_TYPES:
        return [image_entry(client, ref, fetched, platform=platform, annotations=annotations, source=source)]
    raise ManifestError(f"{source}: unsupported media type {fetched.media_type}")


def describe(client, ref: Reference) -> tuple:
    """``(fetched, entries)`` of what ``ref`` points to (:func:`read_manifest`, :func:`entries_of`); ``(None, [])``
    when it does not exist."""
    fetched = read_manifest(client, ref)
    if fetched is None:
        return None, []
    return fetched, entries_of(client, ref, fetched)


# --------------------------------------------------------------------------- the manifest module


class ManifestManager:
    """Builds the desired index from the sources, compares, copies what is missing, moves the tag."""

    def __init__(self, pool, params: dict, check_mode: bool = False, diff: bool = False):
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
        if fetched.is_index and (spec.platform or spec.annotations):
            raise ManifestError(
                f"{spec.text} is an index: platform and annotations apply to a single image; drop them, or list"
                " the image of one platform by its digest"
            )
        return entries_of(client, ref, fetched, platform=spec.platform, annotations=spec.annotations, source=spec.text)

    def desired(self) -> tuple:
        if not self.params.get("images"):
            raise ManifestError("images is required with state=present: list the per-platform images to join")
        specs = image_specs(self.params["images"])
        entries = [entry for group in parallel(self.resolve, specs) for entry in group]
        entries = select_attestations(entries, self.params["attestations"] == "keep")
        check_duplicates(entries)
        match = self.params.get("require_match") or "exact"
        missing = missing_platforms(entries, self.params.get("require_platforms") or [], match)
        if missing:
            have = ", ".join(e.platform_str for e in entries if not e.attestation)
            raise ManifestError(
                f"required platforms missing: {', '.join(missing)} (the images give: {have})"
                f"{compatible_hint(entries, missing, match)}; nothing was pushed"
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
        fetched = read_manifest(self.client, self.target)
        if fetched is None or not fetched.is_index:
            return fetched, []
        try:
            return fetched, entries_of(self.client, self.target, fetched)
        except ManifestError:  # not an index this module can read: it is replaced or removed all the same
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


# --------------------------------------------------------------------------- the manifest_info module


def inspect(client, ref, platform: str | None, required: list, match: str = "exact") -> dict:
    """The module's result for ``ref``: I/O through ``client`` only. Raises ManifestError for a failed requirement
    (``required`` platforms by the rule ``match`` of :func:`missing_platforms`)."""
    host = parse_platform(platform) if platform else None
    wanted = [parse_platform(p) for p in required]
    fetched, entries = describe(client, ref)
    if fetched is None:
        if wanted:
            raise ManifestError(f"{ref} does not exist, so it serves none of {', '.join(p.oci for p in wanted)}")
        result = {"exists": False, "name": str(ref)}
        if host is not None:
            result.update(platform_digest=None, platform_match=None)
        return result
    result = {
        "exists": True,
        "name": str(ref),
        "digest": fetched.digest,
        "media_type": fetched.media_type,
        "is_index": fetched.is_index,
        "size": fetched.size,
        "entries": [e.summary() for e in entries],
        "platforms": [e.platform_str for e in entries if not e.attestation],
        "annotations": dict(fetched.data.get("annotations") or {}),
        "manifest": fetched.data,
    }
    if host is not None:
        chosen = match_platform(entries, host)
        result["platform_digest"] = chosen.digest if chosen else None
        result["platform_match"] = chosen.platform_str if chosen else None
    missing = missing_platforms(entries, required, match)
    if missing:
        raise ManifestError(
            f"{ref} serves no image for {', '.join(missing)}; it has {', '.join(result['platforms']) or 'no platform'}"
            + compatible_hint(entries, missing, match)
        )
    return result
