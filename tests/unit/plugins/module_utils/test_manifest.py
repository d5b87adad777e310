"""Unit tests for _manifest: flattening, platforms, duplicates, media types, building, comparing, matching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _manifest as mf
from ansible_collections.fleet.multiarch.plugins.module_utils import _reference
from ansible_collections.fleet.multiarch.plugins.module_utils import _registry as reg

FIXTURES = Path(__file__).resolve().parents[3] / "unit" / "fixtures" / "registry"
BUSYBOX = {
    "linux/amd64": "sha256:d1cb952aa7ab78a7ce4e9a12a7c25c138e241515f75828ca751548d3c36b42b5",
    "linux/arm64": "sha256:1bce700380b74b43454dd1fbd2aee520a83bf5fbc8e5cc7810246cc1f63956b1",
    "linux/arm/v7": "sha256:94e942f6f246a243e197df13475bcaaf020c192ba38d5922c714dbe663c12553",
    "linux/arm/v6": "sha256:ab2e291551da8891febd931e2ab5a807cf2be2b00f6cfcf08eb87b1be334c332",
}


def fetched(name: str) -> reg.Fetched:
    body = (FIXTURES / name).read_bytes()
    data = json.loads(body)
    return reg.Fetched(reg.manifest_media_type(data, ""), _reference.compute_digest(body), body, data)


def busybox_entries() -> list:
    return mf.entries_from_index(fetched("busybox-index.json"), "busybox:latest", "127.0.0.1:5000/library/busybox")


def entry(platform: dict, digest: str = "sha256:" + "a" * 64, source: str = "src", **kwargs) -> mf.Entry:
    return mf.Entry(reg.DOCKER_MANIFEST, digest, 527, platform, source=source, **kwargs)


# --------------------------------------------------------------------------- flattening and platforms


def test_flatten_captured_indexes():
    entries = busybox_entries()
    assert {e.platform_str: e.digest for e in entries} == BUSYBOX
    assert [e.size for e in entries] == [527, 527, 526, 527]
    assert all(e.source_repository == "127.0.0.1:5000/library/busybox" and not e.attestation for e in entries)
    debian = mf.entries_from_index(fetched("debian-index.json"), "debian", "127.0.0.1:5000/library/debian")
    assert [e.platform_str for e in debian] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]


def test_flatten_marks_attestations():
    entries = mf.entries_from_index(fetched("constructed-attestation-index.json"), "x", "127.0.0.1:5000/x")
    assert [e.attestation for e in entries] == [False, False, True, True, True]
    assert [e.platform_str for e in entries][2:] == ["unknown/unknown"] * 3


def test_one_platform_index_with_provenance_gives_its_image_and_attestation():
    """BuildKit (docker 26, containerd store) pushed one platform with provenance: an image and its attestation."""
    groups = []
    for arch in ("arm64", "amd64"):
        listed = mf.entries_from_index(fetched(f"buildkit-provenance-{arch}-index.json"), arch, "127.0.0.1:5000/p")
        image, attestations = mf.single_image(listed, arch, keep_attestations=True)
        assert image.platform_str == f"linux/{arch}"
        assert [a.annotations["vnd.docker.reference.digest"] for a in attestations] == [image.digest]
        assert mf.single_image(listed, arch, keep_attestations=False) == (image, [])
        groups.append([image, *attestations])
    merged = mf.images_then_attestations(groups)
    assert [e.platform_str for e in merged] == ["linux/arm64", "linux/amd64", "unknown/unknown", "unknown/unknown"]
    assert [e.digest for e in merged[2:]] == [groups[0][1].digest, groups[1][1].digest]
    # the merged index keeps every attestation: each one's subject is among its images
    assert mf.select_attestations(merged, keep=True) == merged


def test_single_image_refuses_an_index_of_several_images():
    with pytest.raises(mf.ManifestError, match="an index with 4 images, not one"):
        mf.single_image(busybox_entries(), "the build of linux/arm64", keep_attestations=True)


def test_nested_index_refused():
    data = {"mediaType": reg.OCI_INDEX, "manifests": [{"mediaType": reg.OCI_INDEX, "digest": "sha256:" + "b" * 64}]}
    with pytest.raises(mf.ManifestError, match="index inside an index"):
        mf.entries_from_index(reg.Fetched(reg.OCI_INDEX, "d", b"", data), "x", "r")


@pytest.mark.parametrize(
    ("config", "platform", "expected"),
    [
        ("busybox-amd64-config.json", {"architecture": "amd64", "os": "linux"}, "linux/amd64"),
        ("busybox-arm64-config.json", {"architecture": "arm64", "os": "linux"}, "linux/arm64"),
        ("busybox-armhf-config.json", {"architecture": "arm", "os": "linux", "variant": "v7"}, "linux/arm/v7"),
        ("busybox-armel-config.json", {"architecture": "arm", "os": "linux", "variant": "v6"}, "linux/arm/v6"),
    ],
)
def test_platform_from_captured_configs(config, platform, expected):
    got = mf.platform_from_config(json.loads((FIXTURES / config).read_text()), config)
    assert got == platform
    assert entry(got).platform_str == expected


@pytest.mark.parametrize(
    ("platform", "written", "normalised"),
    [
        ({"architecture": "arm64", "os": "linux", "variant": "v8"}, {"variant": "v8"}, "linux/arm64"),  # v8 is kept
        ({"architecture": "arm", "os": "linux"}, {}, "linux/arm/v7"),
        ({"architecture": "amd64", "os": "linux", "os.version": ""}, {}, "linux/amd64"),
    ],
)
def test_checked_platform_keeps_spelling(platform, written, normalised):
    got = mf.checked_platform(platform, "here")
    assert {k: v for k, v in got.items() if k == "variant"} == written
    assert entry(got).platform_str == normalised


@pytest.mark.parametrize(
    ("platform", "message"),
    [
        ({"architecture": "arm64", "os": "linux", "variant": "v7"}, "for 32-bit ARM write linux/arm/v7"),
        ({"architecture": "armv7", "os": "linux"}, "write 'linux/arm/v7'"),
        ({"architecture": "arm", "os": "linux", "variant": "v8"}, "for 64-bit ARM write linux/arm64"),
        ({"os": "linux"}, "no platform"),
    ],
)
def test_checked_platform_refuses(platform, message):
    with pytest.raises(mf.ManifestError, match="here") as info:
        mf.checked_platform(platform, "here")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("spec", "os_version", "expected"),
    [
        ("linux/arm/v7", "", {"os": "linux", "architecture": "arm", "variant": "v7"}),
        ("armhf", "", {"os": "linux", "architecture": "arm", "variant": "v7"}),
        ("aarch64", "", {"os": "linux", "architecture": "arm64"}),
        ("linux/arm64/v8", "", {"os": "linux", "architecture": "arm64"}),
        (
            "windows/amd64",
            "10.0.17763.1879",
            {"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1879"},
        ),
    ],
)
def test_override_platform(spec, os_version, expected):
    assert mf.override_platform(spec, os_version, "images[0]") == expected


@pytest.mark.parametrize(("spec", "hint"), [("arm64/v7", "linux/arm/v7"), ("armv7", "linux/arm/v7"), ("mips", "known")])
def test_override_platform_refuses_with_the_right_form(spec, hint):
    with pytest.raises(mf.ManifestError, match="images\\[0\\]") as info:
        mf.override_platform(spec, "", "images[0]")
    assert hint in str(info.value)


# --------------------------------------------------------------------------- the images option


def test_image_specs():
    specs = mf.image_specs(
        [
            "127.0.0.1:5000/a:amd64",
            {"reference": "127.0.0.1:5000/a:v7", "platform": "armhf", "annotations": {"k": "v"}},
            {"reference": "127.0.0.1:5000/a:win", "platform": "windows/amd64", "os_version": "10.0.1"},
        ]
    )
    assert [s.reference.tag for s in specs] == ["amd64", "v7", "win"]
    assert specs[0].platform is None
    assert specs[1].platform == {"os": "linux", "architecture": "arm", "variant": "v7"}
    assert specs[1].annotations == {"k": "v"}
    assert specs[2].platform["os.version"] == "10.0.1"


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (["busybox:latest"], "images[0]: image reference 'busybox:latest' has no registry host"),
        ([{"platform": "arm64"}], "reference is required"),
        ([{"reference": "127.0.0.1:5000/a", "arch": "arm64"}], "unknown keys arch"),
        ([{"reference": "127.0.0.1:5000/a", "os_version": "1"}], "os_version needs platform"),
        ([{"reference": "127.0.0.1:5000/a", "annotations": {"n": 1}}], "annotations must map strings to strings"),
        ([{"reference": "127.0.0.1:5000/a", "platform": "arm64/v7"}], "write linux/arm/v7"),
        ([{"reference": "127.0.0.1:5000/a", "platform": ["arm64"]}], "platform must be a string"),
        ([42], "expected a reference string"),
    ],
)
def test_image_specs_refuses(images, message):
    with pytest.raises(mf.ManifestError) as info:
        mf.image_specs(images)
    assert message in str(info.value)


# --------------------------------------------------------------------------- checks


def test_duplicate_platform_from_two_sources():
    entries = [
        entry({"os": "linux", "architecture": "arm64"}, "sha256:" + "a" * 64, "src-a"),
        entry({"os": "linux", "architecture": "arm64", "variant": "v8"}, "sha256:" + "b" * 64, "src-b"),
    ]
    with pytest.raises(mf.ManifestError, match=r"linux/arm64 comes from two sources: src-a .* and src-b"):
        mf.check_duplicates(entries)


def test_duplicate_same_image_twice():
    entries = [
        entry({"os": "linux", "architecture": "amd64"}, source="a"),
        entry({"os": "linux", "architecture": "amd64"}, source="b"),
    ]
    with pytest.raises(mf.ManifestError, match="given twice"):
        mf.check_duplicates(entries)


def test_not_duplicates():
    mf.check_duplicates(busybox_entries())  # arm/v7 and arm/v6 are two platforms
    mf.check_duplicates(
        [
            entry({"os": "windows", "architecture": "amd64", "os.version": "10.0.1"}, "sha256:" + "a" * 64),
            entry({"os": "windows", "architecture": "amd64", "os.version": "10.0.2"}, "sha256:" + "b" * 64),
        ]
    )
    atts = mf.entries_from_index(fetched("constructed-attestation-index.json"), "x", "r")
    mf.check_duplicates(atts)  # unknown/unknown entries are never duplicates


def without_arm_v7() -> list:
    """The captured busybox index's entries less its arm/v7 image: amd64, arm64 and arm/v6."""
    return [e for e in busybox_entries() if e.platform_str != "linux/arm/v7"]


@pytest.mark.parametrize(
    ("entries", "required", "match", "missing"),
    [
        (busybox_entries, ["linux/amd64", "arm64", "armhf", "armel"], "exact", []),
        (busybox_entries, ["linux/arm64/v8", "aarch64"], "exact", []),
        (busybox_entries, ["riscv64", "linux/arm/v7"], "exact", ["linux/riscv64"]),
        (busybox_entries, ["linux/arm/v5"], "exact", ["linux/arm/v5"]),  # a v6 image does not count for v5
        (busybox_entries, ["linux/arm/v5"], "compatible", ["linux/arm/v5"]),  # nor does a v5 host run it
        (without_arm_v7, ["armhf", "linux/amd64"], "exact", ["linux/arm/v7"]),  # the release gate: v7 was not built
        (without_arm_v7, ["armhf", "linux/amd64"], "compatible", []),  # an arm/v7 host runs the v6 image
        (without_arm_v7, ["linux/amd64/v3"], "exact", ["linux/amd64/v3"]),
        (without_arm_v7, ["linux/amd64/v3"], "compatible", []),
        (without_arm_v7, ["linux/arm64"], "compatible", []),
        (
            lambda: [e for e in busybox_entries() if e.platform_str != "linux/arm64"],
            ["arm64"],
            "compatible",
            ["linux/arm64"],
        ),
    ],
)
def test_missing_platforms_one_rule_exact_or_compatible(entries, required, match, missing):
    assert mf.missing_platforms(entries(), required, match) == missing


def test_missing_platforms_ignores_attestations_and_refuses_an_unknown_rule():
    atts = mf.entries_from_index(fetched("constructed-attestation-index.json"), "x", "r")
    assert mf.missing_platforms(atts[2:], ["linux/amd64"], "compatible") == ["linux/amd64"]
    with pytest.raises(mf.ManifestError, match="require_match must be one of exact, compatible"):
        mf.missing_platforms(busybox_entries(), ["linux/amd64"], "loose")


def test_compatible_hint_names_the_lower_variant():
    entries = without_arm_v7()
    hint = mf.compatible_hint(entries, ["linux/arm/v7", "linux/riscv64"], "exact")
    assert (
        hint == "; a linux/arm/v7 host would run the linux/arm/v6 image: set require_match: compatible to accept that"
    )
    assert mf.compatible_hint(entries, ["linux/riscv64"], "exact") == ""
    assert mf.compatible_hint(entries, ["linux/arm/v7"], "compatible") == ""


def test_select_attestations():
    entries = mf.entries_from_index(fetched("constructed-attestation-index.json"), "x", "r")
    kept = mf.select_attestations(entries, keep=True)
    assert len(kept) == 4  # the attestation of an image that is not in the index goes
    assert mf.select_attestations(entries, keep=False) == entries[:2]
    only_amd64 = mf.select_attestations([entries[0], *entries[2:]], keep=True)
    assert [e.digest for e in only_amd64] == [entries[0].digest, entries[2].digest]


# --------------------------------------------------------------------------- media types and building


def test_media_type_follows_sources():
    docker = busybox_entries()
    assert mf.choose_media_type(None, docker, {}) == reg.DOCKER_LIST
    assert mf.choose_media_type(None, docker, {"a": "b"}) == reg.OCI_INDEX
    assert mf.choose_media_type("oci", docker, {}) == reg.OCI_INDEX
    oci = mf.entries_from_index(fetched("constructed-attestation-index.json"), "x", "r")
    assert mf.choose_media_type(None, oci, {}) == reg.OCI_INDEX
    annotated = [entry({"os": "linux", "architecture": "amd64"}, annotations={"k": "v"})]
    assert mf.choose_media_type(None, annotated, {}) == reg.OCI_INDEX


@pytest.mark.parametrize(
    ("entries", "annotations", "message"),
    [
        ("docker", {"a": "b"}, "has no annotations"),
        ("annotated", {}, "no descriptor annotations"),
        ("oci", {}, "can only hold Docker v2 image manifests"),
    ],
)
def test_docker_media_type_refusals(entries, annotations, message):
    sets = {
        "docker": busybox_entries(),
        "annotated": [entry({"os": "linux", "architecture": "amd64"}, annotations={"k": "v"})],
        "oci": mf.entries_from_index(fetched("constructed-attestation-index.json"), "x", "r")[:2],
    }
    with pytest.raises(mf.ManifestError, match=message):
        mf.choose_media_type("docker", sets[entries], annotations)


def test_build_index_same_content_as_captured_index():
    """Rebuilding busybox's index (made by buildx imagetools create) gives the same content: idempotence."""
    captured = fetched("busybox-index.json")
    body, data = mf.build_index(busybox_entries(), reg.DOCKER_LIST)
    assert mf.index_content(data) == mf.index_content(captured.data)
    assert json.loads(body) == data
    assert mf.build_index(busybox_entries(), reg.DOCKER_LIST)[0] == body  # deterministic bytes


def test_index_content_differences():
    captured = fetched("busybox-index.json").data
    _unused, reordered = mf.build_index(list(reversed(busybox_entries())), reg.DOCKER_LIST)
    _unused, oci = mf.build_index(busybox_entries(), reg.OCI_INDEX)
    _unused, annotated = mf.build_index(busybox_entries(), reg.OCI_INDEX, {"org.opencontainers.image.version": "1"})
    contents = [mf.index_content(d) for d in (captured, reordered, oci, annotated)]
    assert len({json.dumps(c, sort_keys=True) for c in contents}) == 4
    assert mf.index_content(None) is None


def test_build_index_oci_with_annotations():
    entries = busybox_entries()[:1]
    entries[0].annotations = {"org.opencontainers.image.description": "x"}
    _body, data = mf.build_index(entries, reg.OCI_INDEX, {"b": "2", "a": "1"})
    assert data["annotations"] == {"a": "1", "b": "2"}
    assert data["manifests"][0]["annotations"] == {"org.opencontainers.image.description": "x"}
    assert list(data["manifests"][0]) == ["mediaType", "digest", "size", "platform", "annotations"]
    _unused, docker = mf.build_index(entries, reg.DOCKER_LIST)
    assert "annotations" not in docker["manifests"][0]


def test_summary_and_diff_view():
    entries = busybox_entries()
    summary = entries[2].summary()
    assert summary == {
        "platform": "linux/arm/v7",
        "digest": BUSYBOX["linux/arm/v7"],
        "size": 526,
        "media_type": reg.DOCKER_MANIFEST,
        "attestation": False,
    }
    view = mf.diff_view("sha256:x", reg.DOCKER_LIST, entries)
    assert view["platforms"] == BUSYBOX
    assert mf.diff_view("", "", []) == {}


# --------------------------------------------------------------------------- platform matching (containerd's rules)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("x86_64", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64"),  # a v3 host runs v1 images
        ("linux/arm64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("aarch64", "linux/arm64"),
        ("linux/arm/v7", "linux/arm/v7"),
        ("armhf", "linux/arm/v7"),
        ("armv7l", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("linux/arm/v5", None),  # a v5 host cannot run v6 or v7
        ("riscv64", None),
        ("windows/amd64", None),
    ],
)
def test_match_platform_on_captured_index(host, expected):
    chosen = mf.match_platform(busybox_entries(), host)
    assert (chosen.platform_str if chosen else None) == expected
    if expected:
        assert chosen.digest == BUSYBOX[expected]


def test_arm_v7_host_takes_v6_when_no_v7():
    entries = [e for e in busybox_entries() if e.platform_str != "linux/arm/v7"]
    assert mf.match_platform(entries, "linux/arm/v7").platform_str == "linux/arm/v6"


def test_arm64_host_does_not_take_32_bit_arm():
    entries = [e for e in busybox_entries() if e.platform_str != "linux/arm64"]
    assert mf.match_platform(entries, "linux/arm64") is None


def test_first_entry_wins_among_equals_and_attestations_never_match():
    a = entry({"os": "linux", "architecture": "arm64", "variant": "v8"}, "sha256:" + "a" * 64)
    b = entry({"os": "linux", "architecture": "arm64"}, "sha256:" + "b" * 64)
    att = entry({"os": "unknown", "architecture": "unknown"}, "sha256:" + "c" * 64, attestation=True)
    assert mf.match_platform([att, a, b], "arm64").digest == a.digest


# --------------------------------------------------------------------------- reading through a client


class ReplayClient:
    """A stand-in for RegistryClient serving the captured fixtures (no HTTP)."""

    def __init__(self):
        self.calls = []

    def get_manifest(self, repository, ref):
        self.calls.append(("manifest", repository, ref))
        names = {"latest": "busybox-index.json", "1.35-armhf": "busybox-armhf-manifest.json"}
        if ref not in names:
            raise _reference.RegistryError("not found", status=404)
        return fetched(names[ref])

    def get_blob(self, repository, digest):
        self.calls.append(("blob", repository, digest))
        return (FIXTURES / "busybox-armhf-config.json").read_bytes()


def test_describe_index_image_and_missing():
    cli = ReplayClient()
    got, entries = mf.describe(cli, _reference.parse_reference("127.0.0.1:5000/library/busybox"))
    assert got.is_index and len(entries) == 4
    got, entries = mf.describe(cli, _reference.parse_reference("127.0.0.1:5000/library/busybox:1.35-armhf"))
    assert not got.is_index
    assert [e.platform_str for e in entries] == ["linux/arm/v7"]
    assert entries[0].digest == BUSYBOX["linux/arm/v7"] and entries[0].body == got.body
    assert mf.describe(cli, _reference.parse_reference("127.0.0.1:5000/library/busybox:nope")) == (None, [])
    assert [c[0] for c in cli.calls] == ["manifest", "manifest", "blob", "manifest"]


def test_image_entry_with_override_reads_no_config():
    cli = ReplayClient()
    ref = _reference.parse_reference("127.0.0.1:5000/library/busybox:1.35-armhf")
    got = mf.image_entry(
        cli,
        ref,
        cli.get_manifest(ref.repository, ref.ref),
        platform={"os": "linux", "architecture": "arm", "variant": "v6"},
        source="x",
    )
    assert got.platform_str == "linux/arm/v6"
    assert [c[0] for c in cli.calls] == ["manifest"]


# --------------------------------------------------------------------------- require_platforms in both modules


def served(data: dict) -> reg.Fetched:
    body = json.dumps(data).encode()
    return reg.Fetched(reg.manifest_media_type(data, ""), _reference.compute_digest(body), body, data)


class IndexClient:
    """A stand-in RegistryClient holding ``{tag: Fetched}`` in one repository; it pushes nothing."""

    registry = "127.0.0.1:5000"

    def __init__(self, tags: dict):
        self.tags = tags

    def get_manifest(self, repository, ref):
        if ref not in self.tags:
            raise _reference.RegistryError("not found", status=404)
        return self.tags[ref]

    def head_manifest(self, repository, ref):
        found = self.tags.get(ref)
        return {"digest": found.digest, "media_type": found.media_type, "size": found.size} if found else None

    def get_blob(self, repository, digest):
        raise AssertionError("an index source needs no config blob")


def v6_release() -> IndexClient:
    """busybox's captured index without its arm/v7 image (amd64, arm64, arm/v6), at the tag ``1.0``."""
    data = json.loads((FIXTURES / "busybox-index.json").read_text())
    data["manifests"] = [d for d in data["manifests"] if d["digest"] != BUSYBOX["linux/arm/v7"]]
    return IndexClient({"1.0": served(data)})


REF = "127.0.0.1:5000/fleet/app:1.0"


@pytest.mark.parametrize("match", ["exact", "compatible"])
def test_manifest_info_and_manifest_require_by_the_same_rule(match):
    """An arm/v7 requirement on an index with arm/v6 only: both modules answer alike, by require_match."""
    client = v6_release()
    ref = _reference.parse_reference(REF)
    required = ["linux/amd64", "armhf"]

    class Pool:
        def get(self, registry):
            return client

    params = {
        "name": "127.0.0.1:5000/fleet/app:2.0",
        "images": [REF],
        "attestations": "keep",
        "require_platforms": required,
        "require_match": match,
        "media_type": None,
        "annotations": None,
    }
    manager = mf.ManifestManager(Pool(), params)
    if match == "compatible":
        assert mf.inspect(client, ref, None, required, match)["platforms"] == [
            "linux/amd64",
            "linux/arm64",
            "linux/arm/v6",
        ]
        assert [e.platform_str for e in manager.desired()[0]] == ["linux/amd64", "linux/arm64", "linux/arm/v6"]
        return
    hint = "a linux/arm/v7 host would run the linux/arm/v6 image: set require_match: compatible to accept that"
    with pytest.raises(
        mf.ManifestError, match="serves no image for linux/arm/v7; it has linux/amd64, linux/arm64, linux/arm/v6"
    ) as info:
        mf.inspect(client, ref, None, required, match)
    assert hint in str(info.value)
    with pytest.raises(mf.ManifestError, match="required platforms missing: linux/arm/v7") as written:
        manager.desired()
    assert hint in str(written.value) and str(written.value).endswith("nothing was pushed")


def test_manifest_info_requires_exactly_by_default():
    """The default rule of manifest_info's require_platforms is exact (it was containerd's matching before)."""
    with pytest.raises(mf.ManifestError, match="serves no image for linux/arm/v7"):
        mf.inspect(v6_release(), _reference.parse_reference(REF), "linux/arm/v7", ["linux/arm/v7"])
    # the digest an arm/v7 host pulls is still containerd's choice
    result = mf.inspect(v6_release(), _reference.parse_reference(REF), "linux/arm/v7", [])
    assert (result["platform_digest"], result["platform_match"]) == (BUSYBOX["linux/arm/v6"], "linux/arm/v6")


def test_entries_of_a_captured_buildkit_index_and_a_single_image():
    """The one reader: attestations of a BuildKit index marked by is_attestation; a single image's config kept."""
    provenance = fetched("buildkit-provenance-arm64-index.json")
    ref = _reference.parse_reference("127.0.0.1:5000/p:1")
    entries = mf.entries_of(None, ref, provenance)
    assert [(e.platform_str, e.attestation) for e in entries] == [("linux/arm64", False), ("unknown/unknown", True)]
    assert all(e.source == "127.0.0.1:5000/p:1" and e.source_repository == "127.0.0.1:5000/p" for e in entries)
    cli = ReplayClient()
    image = _reference.parse_reference("127.0.0.1:5000/library/busybox:1.35-armhf")
    (entry,) = mf.entries_of(cli, image, cli.get_manifest(image.repository, image.ref))
    assert entry.platform_str == "linux/arm/v7"
    assert entry.config == json.loads((FIXTURES / "busybox-armhf-config.json").read_text())
    with pytest.raises(mf.ManifestError, match="unsupported media type"):
        mf.entries_of(cli, image, reg.Fetched("application/vnd.oci.empty.v1+json", "d", b"{}", {}))
