# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""The work of ``release``: plan the immutable tag, build, gate, promote the moving tags, compose the record.

The module (``plugins/modules/release.py``) runs :class:`ReleaseManager` on the build host; its action plugin
(``plugins/action/release.py``) reads the previous record and writes the new one on the controller, and runs
the same manager in the controller's own process when the build host is the controller and the release is
unchanged. The build itself is :class:`~._image_build.ImageBuilder`'s; the record is ``_release_record``'s.

Order, and why: the index is published under the immutable tag only; the gate reads it back by its digest;
only then are the moving tags pointed at it, with the index's own bytes (the same digest). A failure at any
step leaves the moving tags where they were (or, if the registry fails during the promotion itself, some
moved and some not: the next run moves the rest); the record is written only after a complete release.
"""

from __future__ import annotations

import datetime
import re

from ansible_collections.fleet.multiarch.plugins.module_utils import _build as bd
from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx
from ansible_collections.fleet.multiarch.plugins.module_utils._concurrent import parallel
from ansible_collections.fleet.multiarch.plugins.module_utils._image_build import (
    ImageBuilder,
    image_build_argument_spec,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._manifest import (
    INDEX_ERRORS,
    entries_of,
    missing_platforms,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import PlatformError, parse_platform
from ansible_collections.fleet.multiarch.plugins.module_utils._reference import parse_reference
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import (
    INDEX_TYPES,
    ClientPool,
    registry_argument_spec,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._release_record import (
    TAG_RE,
    ReleaseRecord,
    ReleaseRecordError,
    check_repository,
)

_OID_RE = re.compile(r"^# branch\.oid ([0-9a-f]{40}|[0-9a-f]{64})$")
DEFAULT_PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]


class ReleaseError(Exception):
    """The release cannot go on; the message says why and what to do."""


# ------------------------------------------------------------------------------------------ the plan (pure)


def git_state(rc: int, out: str) -> tuple:
    """``(commit, dirty)`` from ``git status --porcelain=v2 --branch`` run in the context.

    ``commit`` is empty outside a git checkout (git failed) and before the first commit; ``dirty`` says whether
    any file of the context is changed, staged or untracked.
    """
    if rc != 0:
        return "", False
    lines = [line for line in out.splitlines() if line.strip()]
    commit = ""
    for line in lines:
        found = _OID_RE.match(line)
        if found:
            commit = found.group(1)
    return commit, any(not line.startswith("#") for line in lines)


def immutable_tag(tag: str, commit: str, dirty: bool, fingerprint: str) -> str:
    """The release's immutable tag: ``tag`` when given; else the commit (12 digits), ``<commit>-dirty-<fp>``
    with uncommitted changes, ``fp-<fp>`` outside git (12 hex digits of the fingerprint)."""
    if tag:
        return tag
    fp = fingerprint.split(":", 1)[-1][:12]
    if not commit:
        return f"fp-{fp}"
    return f"{commit[:12]}-dirty-{fp}" if dirty else commit[:12]


def refusal(reference: str, published: str, fingerprint: str) -> str:
    return (
        f"{reference} already holds a build of other inputs (fingerprint {published}; this build is {fingerprint}),"
        " although the tag should never change. Something that is not in the commit changed: a base image moved,"
        " build_args, platforms or a file git ignores. Commit the change, give a new tag (release_tag), or set"
        " tag_overwrite (release_tag_overwrite) to replace the build under this tag"
    )


def gate_problem(index, entries: list, built: dict, required: list) -> str:
    """Why the published ``index`` (Fetched, read into ``entries`` by ``_manifest.entries_of``) may not be promoted;
    empty when it may.

    It must be an index, serve every ``required`` host platform (the ``compatible`` rule of ``require_platforms``:
    the devices' platforms, containerd's matching) and list exactly the image manifests ``built`` (platform ->
    digest) names.
    """
    if index.media_type not in INDEX_TYPES:
        return f"it is {index.media_type}, not an index"
    missing = missing_platforms(entries, required, "compatible")
    have = ", ".join(e.platform_str for e in entries if not e.attestation) or "no platform"
    if missing:
        return f"required platforms not served: {', '.join(missing)} (the index has {have})"
    listed = sorted(e.digest for e in entries if not e.attestation)
    if listed != sorted(built.values()):
        return f"the index lists {listed}, the build reported {built}"
    return ""


def image_size(manifest: dict) -> int:
    """Bytes of an image as pulled: its config and compressed layers."""
    parts = [manifest.get("config") or {}, *(manifest.get("layers") or [])]
    return sum(int(part.get("size") or 0) for part in parts)


def size_text(size: int) -> str:
    """``1.1 MB``: decimal units, as Jinja's filesizeformat."""
    if size < 1000:
        return f"{size} Bytes" if size != 1 else "1 Byte"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 1000 or unit == "PB":
            return f"{value:.1f} {unit}"
    return f"{size} Bytes"  # pragma: no cover - the loop always returns


def summary_lines(record: dict, built: bool, check_mode: bool, pending: str = "") -> list:
    """The table the role prints: the release, the index and its moving tags, one line per platform."""
    mode = " (check mode)" if check_mode else ""
    head = f"{record['name']}  {record['repository']}:{record['tag']}"
    if pending:
        return [f"{head} {pending}{mode}"]
    lines = [
        f"{head} {'built' if built else 'unchanged'}{mode}",
        f"index {record['index_digest']} <- {', '.join(record['moving_tags']) or '(no moving tags)'}",
        f"{'platform':14} {'digest':71} {'size':>10}",
    ]
    for platform, digest in record["platforms"].items():
        lines.append(f"{platform:14} {digest:71} {size_text(record['sizes'].get(platform, 0)):>10}")
    return lines


def now_text() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------ the options

BUILD_OPTIONS = (
    "context",
    "dockerfile",
    "platforms",
    "build_args",
    "target",
    "builder",
    "platform_builders",
    "strategy",
    "force",
    "base_image_registry",
    "docker_cli",
    "docker_host",
    "docker_context",
)


def release_argument_spec() -> dict:
    """The module's options: one spec for the module and for its action plugin."""
    build = image_build_argument_spec()
    spec = {key: dict(build[key]) for key in BUILD_OPTIONS}
    spec["platforms"] = {"type": "list", "elements": "str", "default": list(DEFAULT_PLATFORMS)}
    spec.update(
        {
            "repository": {"type": "str", "required": True},
            "name": {"type": "str", "default": ""},
            "tag": {"type": "str", "default": ""},
            "tag_overwrite": {"type": "bool", "default": False},
            "moving_tags": {"type": "list", "elements": "str", "default": ["latest"]},
            "require_platforms": {"type": "list", "elements": "str", "default": []},
            "record_path": {"type": "path"},
        }
    )
    spec.update(registry_argument_spec())
    return spec


def checked_params(params: dict) -> None:
    """What the argument spec cannot say; ReleaseError naming the option and the fix, before anything is read."""
    try:
        check_repository(params["repository"])
    except ReleaseRecordError as exc:
        raise ReleaseError(str(exc)) from None
    bad = [t for t in [params["tag"], *params["moving_tags"]] if t and not TAG_RE.match(t)]
    if bad:
        raise ReleaseError(
            f"invalid tag {bad[0]!r} (tag or moving_tags): up to 128 ASCII letters, digits, '_', '.' and '-',"
            " not starting with '.' or '-'"
        )
    if not params["platforms"]:
        raise ReleaseError("platforms is empty: list at least one platform, for example linux/arm64")
    try:
        for platform in [*params["platforms"], *params["require_platforms"]]:
            parse_platform(platform)
    except PlatformError as exc:
        raise ReleaseError(f"{exc} (platforms or require_platforms)") from None


class ModuleView:
    """``module`` with the image_build options made from the release's: what :class:`ImageBuilder` reads."""

    def __init__(self, module, params: dict):
        self._module = module
        self.params = params

    def __getattr__(self, name):
        return getattr(self._module, name)


def build_params(params: dict, tag: str) -> dict:
    """image_build's options (its defaults for everything the release does not set) for ``repository:tag``."""
    out = {key: option.get("default") for key, option in image_build_argument_spec().items()}
    for key in [*BUILD_OPTIONS, *registry_argument_spec()]:
        out[key] = params.get(key)
    for key in ("build_args", "platform_builders"):
        out[key] = out[key] or {}
    out["tags"] = [f"{params['repository']}:{tag}"]
    return out


# ------------------------------------------------------------------------------------------ the manager


class ReleaseManager:
    """Plan, build, gate, promote, and the record of one release of ``repository``."""

    def __init__(self, module, pool, previous: ReleaseRecord | None = None):
        self.module = module
        self.params = module.params
        self.previous = previous
        self.repository = parse_reference(self.params["repository"])
        self.client = pool.get(self.repository.registry)
        view = ModuleView(module, build_params(self.params, self.params["tag"] or "release-plan"))
        self.builder = ImageBuilder(view, bx.DockerCLI.from_module(view), pool)
        self.commit, self.dirty = "", False
        self.tag = ""
        self.building = False  # the build was started: a failure from then on may have pushed
        self.result = {
            "changed": False,
            "built": False,
            "tag": "",
            "digest": "",
            "moved_tags": [],
            "record": {},
            "build": {},
            "summary": [],
        }

    # ---- the plan

    def read_git(self) -> None:
        git = self.module.get_bin_path("git")
        if git is None:
            return
        # --no-optional-locks: git status must not refresh the index, a file of the context when .git is in it
        argv = [git, "--no-optional-locks", "-c", "safe.directory=*", "-C", self.builder.context, "status"]
        argv += ["--porcelain=v2", "--branch"]
        rc, out, _err = self.module.run_command([*argv, "--untracked-files=all", "--", "."])
        self.commit, self.dirty = git_state(rc, out)

    def plan(self) -> bool:
        """Fingerprint, choose the immutable tag, compare with the registry: True when the tag holds this build."""
        fingerprint = self.builder.prepare()
        if not self.params["tag"]:
            self.read_git()
        self.tag = immutable_tag(self.params["tag"], self.commit, self.dirty, fingerprint)
        self.result["tag"] = self.tag
        reference = f"{self.repository.name}:{self.tag}"
        self.builder.set_tags([reference])
        current = self.builder.assess()
        published = self.builder.result["published_fingerprint"]
        if published and published != fingerprint and not self.params["tag_overwrite"]:
            raise ReleaseError(refusal(reference, published, fingerprint))
        return current

    # ---- the gate and the promotion

    def gate(self, digest: str, built: dict):
        """The index as the registry serves it (read by its digest, or the tag's read of moments ago when that was
        this digest: its bytes are verified against it); ReleaseError when it may not be promoted."""
        index = self.builder.published_manifest
        if index is None or index.digest != digest:
            index = self.client.get_manifest(self.repository.repository, digest)
        required = self.params["require_platforms"] or self.params["platforms"]
        entries = entries_of(self.client, self.repository.with_digest(digest), index) if index.is_index else []
        problem = gate_problem(index, entries, built, required)
        if problem:
            tags = ", ".join(self.params["moving_tags"]) or "(none)"
            raise ReleaseError(
                f"Release gate failed for {self.repository.name}:{self.tag} ({digest}): {problem}. The moving tags"
                f" {tags} still point where they pointed before; the unverified index stays under the immutable tag"
                " only"
            )
        return index

    def lacking(self, digest: str) -> list:
        """The moving tags that do not hold ``digest`` yet."""
        repo = self.repository.repository

        def lacks(tag):
            head = self.client.head_manifest(repo, tag)
            return head is None or head["digest"] != digest

        tags = self.params["moving_tags"]
        return [tag for tag, bad in zip(tags, parallel(lacks, tags)) if bad]

    def promote(self, index, tags: list) -> None:
        """Put the verified index's own bytes under each tag: the same digest, nothing else to copy."""
        repo = self.repository.repository

        def put(tag):
            pushed = self.client.put_manifest(repo, tag, index.body, index.media_type)
            self.result["moved_tags"].append(tag)
            self.result["changed"] = True
            if pushed.replaced:
                self.module.warn(pushed.warning(f"{self.repository.name}:{tag}"))
                self.result.setdefault("tag_digests", {})[tag] = pushed.holds

        parallel(put, tags)
        self.result["moved_tags"].sort(key=tags.index)

    # ---- the record

    def sizes(self, digest: str, platforms: dict) -> dict:
        previous = self.previous
        if previous is not None and previous.index_digest == digest and sorted(previous.sizes) == sorted(platforms):
            return dict(previous.sizes)
        repo = self.repository.repository
        found = parallel(lambda d: image_size(self.client.get_manifest(repo, d).data), list(platforms.values()))
        return dict(zip(platforms, found))

    def record(self, digest: str, build: dict) -> dict:
        name = self.params["name"] or self.repository.repository.rsplit("/", 1)[-1]
        data = {
            "schema": 1,
            "name": name,
            "repository": self.repository.name,
            "tag": self.tag,
            "moving_tags": list(self.params["moving_tags"]),
            "index_digest": digest,
            "platforms": dict(build["platform_digests"]),
            "fingerprint": build["fingerprint"],
            "sizes": self.sizes(digest, build["platform_digests"]),
            "git_commit": self.commit,
            "git_dirty": self.dirty,
            "created": now_text(),
            "changed": self.result["changed"],
        }
        return ReleaseRecord.from_dict(data, "the release record composed").to_dict()

    # ---- the task

    def run(self, write: bool = True) -> dict | None:
        """The release; in check mode what it would do. With ``write`` false (the action plugin in the
        controller's process): None as soon as something would have to be written, so that the module does it."""
        check = self.module.check_mode
        current = self.plan()
        if not current and not write and not check:
            return None
        self.building = not current
        build = self.builder.finish() if current else self.builder.apply()
        self.result["build"] = build
        self.result["built"] = build["built"]
        self.result["changed"] = build["changed"]
        digest = build["digest"]
        self.result["digest"] = digest
        name = self.params["name"] or self.repository.repository.rsplit("/", 1)[-1]
        if not digest:  # check mode: the build would run first
            self.result["moved_tags"] = list(self.params["moving_tags"])
            pending = {"name": name, "repository": self.repository.name, "tag": self.tag}
            self.result["summary"] = summary_lines(pending, False, check, "would be built")
            return self.result
        index = self.gate(digest, build["platform_digests"])
        tags = self.lacking(digest)
        if tags and check:
            self.result["moved_tags"] = tags
            self.result["changed"] = True
        elif tags:
            if not write:
                return None
            self.promote(index, tags)
        self.result["record"] = self.record(digest, build)
        self.result["summary"] = summary_lines(self.result["record"], build["built"], check)
        return self.result

    def failed(self) -> dict:
        """What a failed run returns beside its message: whether the registry was written, and what is known."""
        build = self.builder.finish(failed=self.building)
        changed = bool(self.result["moved_tags"] or (self.building and build["changed"])) and not self.module.check_mode
        return {"changed": changed, "tag": self.tag, "build": build, "moved_tags": self.result["moved_tags"]}


FAILURES = (ReleaseError, bd.BuildError, bx.BuildxError, *INDEX_ERRORS)


def run_release(module, previous: ReleaseRecord | None = None, write: bool = True) -> dict | None:
    """The release task's result, a failure included (``failed``, ``msg``): the one failure path of the module
    and of the action plugin. None when ``write`` is false and something would have to be written."""
    manager = None
    try:
        checked_params(module.params)
        pool = ClientPool(module.params, parse_reference(module.params["repository"]).registry)
        manager = ReleaseManager(module, pool, previous)
        result = manager.run(write)
    except FAILURES as exc:
        out = manager.failed() if manager is not None else {"changed": False}
        if isinstance(exc, bd.BuildError):
            out.update(exc.details)
        elif isinstance(exc, bx.BuildxError):
            out.update(exc.to_result())
        return {**out, "failed": True, "msg": str(exc)}
    if result is not None:
        result["answered_by"] = "module"
    return result
