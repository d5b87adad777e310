# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""The work of ``image_build``: fingerprint, compare with the registry, build, publish.

The module (``plugins/modules/image_build.py``) runs it on the build host; the release (``_release.py``) runs
it as its build step, :meth:`ImageBuilder.prepare` and :meth:`ImageBuilder.assess` first (the release chooses
its tag from the fingerprint), then :meth:`ImageBuilder.apply` when there is something to do. The release's
action plugin runs the assessment in the controller's own process when the build host is the controller.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time

from ansible_collections.fleet.multiarch.plugins.module_utils import _build as bd
from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx
from ansible_collections.fleet.multiarch.plugins.module_utils._binfmt import BinfmtMisc, supported_platforms
from ansible_collections.fleet.multiarch.plugins.module_utils._blobcopy import copy_manifest_blobs
from ansible_collections.fleet.multiarch.plugins.module_utils._concurrent import parallel
from ansible_collections.fleet.multiarch.plugins.module_utils._manifest import (
    ManifestError,
    build_index,
    entries_of,
    images_then_attestations,
    read_manifest,
    single_image,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import (
    host_platform,
    parse_platform,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._reference import RegistryError, parse_reference
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import (
    IMAGE_TYPES,
    OCI_INDEX,
    ClientPool,
    registry_argument_spec,
)

# A push the registry broke off (bd.registry_push_fault) is tried again, twice, after 2 s and 4 s.
PUSH_ATTEMPTS = 3
PUSH_RETRY_PAUSE = 2


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


# ------------------------------------------------------------------------------------------ the build log


class BuildLog:
    """The build log file, written as output arrives; lines of concurrent builds carry their platform."""

    def __init__(self, path: str, secrets: list = ()):
        self.path = path
        self.secrets = [value.encode() for value in secrets]
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        # readable by its owner only: a build's output can hold what a Dockerfile does with a secret
        self._handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        os.chmod(path, 0o600)
        self._lock = threading.Lock()
        self._partial = {}

    def write(self, prefix: str, chunk: bytes, stream: str = "") -> None:
        key = (prefix, stream)
        data = self._partial.pop(key, b"") + chunk
        lines = data.split(b"\n")
        self._partial[key] = lines.pop()
        if lines:
            for value in self.secrets:
                lines = [line.replace(value, bd.MASK.encode()) for line in lines]
            head = f"[{prefix}] ".encode() if prefix else b""
            with self._lock:
                self._handle.write(b"".join(head + line + b"\n" for line in lines))
                self._handle.flush()

    def flush_partial(self, prefix: str, stream: str = "") -> None:
        rest = self._partial.pop((prefix, stream), b"")
        if rest:
            self.write(prefix, rest + b"\n", stream)

    def note(self, text: str) -> None:
        with self._lock:
            self._handle.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} {text}\n".encode())
            self._handle.flush()

    def close(self) -> None:
        for prefix, stream in list(self._partial):
            self.flush_partial(prefix, stream)
        self._handle.close()

    def size(self) -> int:
        with self._lock:
            return os.path.getsize(self.path)

    def read(self, start: int = 0) -> str:
        """The log from byte ``start`` on (an attempt's own lines: see ``size``)."""
        with open(self.path, "rb") as handle:
            handle.seek(start)
            return handle.read().decode("utf-8", errors="replace")


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def run_logged(cli, args: list, log: BuildLog, prefix: str = "", environ: dict | None = None) -> tuple:
    """``docker ARGS`` with its output written to ``log`` as it arrives (lines prefixed with ``prefix``)."""

    def on_output(stream, chunk):
        if chunk:
            log.write(prefix, chunk, stream)
        else:
            log.flush_partial(prefix, stream)

    log.note(f"{prefix + ': ' if prefix else ''}docker {' '.join(args)}")
    return cli.run_streaming(args, on_output, environ=environ)


# ------------------------------------------------------------------------------------------ the manager


class ImageBuilder:
    """Fingerprint, compare with the registry, build with the chosen strategy, publish every tag."""

    def __init__(self, module, cli, pool: ClientPool):
        self.module = module
        self.params = module.params
        self.cli = cli
        self.pool = pool
        self.started = time.monotonic()
        self.tags = [parse_reference(t) for t in self.params["tags"]]
        self.primary = self.tags[0]
        self.context = self.dockerfile = ""  # set by prepare()
        self.platforms = bd.normalize_platform_list(self.params["platforms"])
        self.labels = {k: _text(v) for k, v in (self.params["labels"] or {}).items()}
        self.annotations = {k: _text(v) for k, v in (self.params["annotations"] or {}).items()}
        self.build_args = {k: _text(v) for k, v in (self.params["build_args"] or {}).items()}
        self.platform_builders = {}
        for platform, builder in (self.params["platform_builders"] or {}).items():
            self.platform_builders[bd.normalize_platform_list([platform])[0]] = str(builder)
        self._engine_info = None
        self._builders = {}
        self.log = None
        self.secret_values = []  # what the build's secrets hold, masked in the log, the messages and the result
        self.syntax = ""  # the frontend image of the Dockerfile's `# syntax=` line, read by compute_fingerprint
        self.current = False  # set by assess(): the first tag holds this build
        self.published_manifest = None  # set by assess(): what the first tag held (Fetched), None when nothing
        self.missing_tags = []  # set by assess(): the other tags that do not point to it yet
        self.result = {
            "changed": False,
            "built": False,
            "digest": "",
            "platform_digests": {},
            "tags": [str(t) for t in self.tags],
            "fingerprint": "",
            "published_fingerprint": "",
            "strategy": "",
            "strategy_reason": "",
            "base_images": {},
            "context": {},
            "seconds": 0.0,
            "log_path": "",
            "staging_tags": [],
        }

    # ---- checks of the input

    def validate(self) -> tuple:
        p = self.params
        if not self.platforms:
            raise bd.BuildError("platforms is empty: list at least one platform, for example linux/amd64")
        context = os.path.abspath(p["context"])
        if not os.path.isdir(context):
            raise bd.BuildError(f"the build context {context} does not exist or is not a directory")
        dockerfile = p["dockerfile"] if os.path.isabs(p["dockerfile"]) else os.path.join(context, p["dockerfile"])
        if not os.path.isfile(dockerfile):
            raise bd.BuildError(f"the Dockerfile {dockerfile} does not exist: set dockerfile (relative to context)")
        if p["load"] and len(self.platforms) > 1:
            raise bd.BuildError("load works for one platform only: the engine holds one image per name")
        for ref in self.tags:
            if ref.digest or not ref.tag:
                raise bd.BuildError(f"tag {ref} must end in a tag (for example :1.0), not a digest")
        unknown = sorted(set(self.platform_builders) - set(self.platforms))
        if unknown:
            raise bd.BuildError(f"platform_builders names platforms that are not built: {', '.join(unknown)}")
        bd.secret_args(p["secrets"])  # a missing secret file fails here, before anything is built or pushed
        if p["log_path"] and os.path.isdir(p["log_path"]):
            raise bd.BuildError(f"log_path {p['log_path']} is a directory: give the path of the log file to write")
        return context, dockerfile

    # ---- the fingerprint

    def engine_info(self) -> dict:
        if self._engine_info is None:
            _rc, out, _err = self.cli.run(["info", "--format", "{{json .}}"], what="docker info")
            self._engine_info = bd.parse_engine_info(out)
        return self._engine_info

    def hub_registry(self) -> str:
        if self.params["base_image_registry"]:
            return self.params["base_image_registry"]
        mirrors = self.engine_info()["mirrors"]
        return mirrors[0] if mirrors else ""

    def resolve_base(self, image: str) -> str:
        """The digest of a base image in the registry the engine pulls it from."""
        if "@" in image:
            return image.rsplit("@", 1)[1]
        first, _sep, rest = image.partition("/")
        hub = "" if rest and ("." in first or ":" in first or first == "localhost") else self.hub_registry()
        ref_text, _is_hub = bd.normalize_base(image, hub)
        problem = "no registry mirror is configured for names without a registry host"
        if ref_text:
            try:
                ref = parse_reference(ref_text)
                head = self.pool.get(ref.registry).head_manifest(ref.repository, ref.ref)
                if head is not None and head["digest"]:
                    return head["digest"]
                if head is not None:
                    return self.pool.get(ref.registry).get_manifest(ref.repository, ref.ref).digest
                problem = f"{ref_text} does not exist"
            except (RegistryError, ValueError) as exc:
                problem = str(exc)
        rc, out, err = self.cli.run(
            ["buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}", "--", image], check=False
        )
        if rc == 0:
            try:
                return json.loads(out)["digest"]
            except (ValueError, KeyError, TypeError):
                pass
        raise bd.BuildError(
            f"cannot resolve the base image {image} to a digest for the fingerprint: {problem};"
            f" docker buildx imagetools inspect says: {bx.last_error(err or out)}. Check the name, push the image"
            " to the registry, or set base_image_registry to the registry (mirror) that holds it"
        )

    def compute_fingerprint(self, context: str, dockerfile: str) -> str:
        try:
            with open(dockerfile, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise bd.BuildError(f"cannot read the Dockerfile {dockerfile}: {exc}") from None
        parsed = bd.parse_dockerfile(text)
        self.syntax = bd.syntax_directive(text)
        images = bd.base_images(parsed, self.build_args, self.platforms, host_platform().oci)
        digests = parallel(self.resolve_base, images)
        bases = dict(zip(images, digests))
        matcher = bd.IgnoreMatcher(bd.load_ignore(bd.ignore_file(context, dockerfile)))
        ctx = bd.hash_context(context, matcher)
        self.result["base_images"] = bases
        self.result["context"] = ctx
        fp = bd.fingerprint(
            context=ctx["digest"],
            dockerfile=text,
            build_args=self.build_args,
            target=self.params["target"] or "",
            platforms=self.platforms,
            labels=self.labels,
            annotations=self.annotations,
            bases=bases,
            attestations=self.params["attestations"],
        )
        self.result["fingerprint"] = fp
        return fp

    # ---- what is published

    def published(self, ref, reference: str = ""):
        """``(fetched, fingerprint, {platform: digest})`` of what ``ref`` (or ``reference`` in its repository, a
        digest) holds; (None, "", {}) when nothing.

        Read as every module reads an index (``_manifest.read_manifest`` and ``entries_of``: attestations serve no
        platform); what cannot be read into entries (a nested index, an image whose config names no platform)
        serves no platform either, so it is not this build and is built over.
        """
        client = self.pool.get(ref.registry)
        ref = ref.with_digest(reference) if reference else ref
        fetched = read_manifest(client, ref)
        if fetched is None:
            return None, "", {}
        try:
            entries = entries_of(client, ref, fetched)
        except ManifestError:
            entries = []
        if fetched.is_index:
            fp = (fetched.data.get("annotations") or {}).get(bd.FINGERPRINT_KEY, "")
        else:
            config = entries[0].config if entries else {}
            fp = ((config.get("config") or {}).get("Labels") or {}).get(bd.FINGERPRINT_KEY, "")
        return fetched, fp, {e.platform_obj.oci: e.digest for e in entries if not e.attestation}

    def up_to_date(self, fp: str) -> tuple:
        """``(current, tags lacking it, fetched, digests)``: current when fingerprint and platforms match."""
        fetched, have, digests = self.published(self.primary)
        self.result["published_fingerprint"] = have
        current = fetched is not None and have == fp and set(digests) == set(self.platforms)
        if not current:
            return False, list(self.tags[1:]), fetched, digests
        self.result["digest"] = fetched.digest
        self.result["platform_digests"] = {p: digests[p] for p in self.platforms}

        def lacks(ref):
            head = self.pool.get(ref.registry).head_manifest(ref.repository, ref.ref)
            return head is None or head["digest"] != fetched.digest

        missing = [ref for ref, bad in zip(self.tags[1:], parallel(lacks, self.tags[1:])) if bad]
        return True, missing, fetched, digests

    def local_fingerprint(self) -> str:
        rc, out, _err = self.cli.run(
            ["image", "inspect", "--format", "{{json .Config.Labels}}", "--", str(self.primary)], check=False
        )
        if rc != 0:
            return ""
        try:
            return (json.loads(out) or {}).get(bd.FINGERPRINT_KEY, "")
        except ValueError:
            return ""

    # ---- builders and strategy

    def builder(self, name: str) -> dict:
        key = name or ""
        if key not in self._builders:
            found = self.cli.inspect(name or None)
            if found is None:
                raise bd.BuildError(
                    f"there is no buildx builder or docker context named {name}: create it with"
                    " fleet.multiarch.buildx_builder, or fix builder/platform_builders"
                )
            self._builders[key] = found
        return self._builders[key]

    def local_engine(self) -> bool:
        host = self.params["docker_host"] or os.environ.get("DOCKER_HOST", "")
        context = self.params["docker_context"] or os.environ.get("DOCKER_CONTEXT", "")
        return (not host or host.startswith("unix://")) and context in ("", "default")

    def local_platforms(self) -> list:
        """What this host runs: native platforms and those with a QEMU emulator in binfmt_misc."""
        binfmt = BinfmtMisc(self.module.run_command)
        return supported_platforms(host_platform(), binfmt.entries(), binfmt.status_enabled())

    def boot(self, name: str) -> dict:
        """The builder, booted first when a node of it is not running (as ``buildx build`` would): a node that
        never booted reports no platforms, and the reason it cannot boot is the one to give."""
        info = self.builder(name)
        if not bx.not_running(info):
            return info
        try:
            booted = self.cli.inspect(info["name"], bootstrap=True)
        except bx.BuildxError as exc:
            raise bd.BuildError(bx.boot_failure(info, exc.stderr or str(exc))) from None
        if booted is None or bx.not_running(booted):
            raise bd.BuildError(bx.boot_failure(booted or info, ""))
        self._builders[name or ""] = booted
        return booted

    def check_platforms(self) -> None:
        local = self.local_platforms() if self.local_engine() else []
        groups = {}
        for platform in self.platforms:
            groups.setdefault(self.platform_builders.get(platform, self.params["builder"] or ""), []).append(platform)
        for name, platforms in groups.items():
            info = self.boot(name)
            extra = local if info["driver"] == "docker" and name not in self.platform_builders.values() else []
            missing = bd.unsupported(platforms, bd.builder_supports(info, extra))
            if missing:
                raise bd.BuildError(
                    f"the builder {info['name']} cannot build {', '.join(missing)}: no node of that platform and no"
                    " emulator for it. Register QEMU emulation with fleet.multiarch.binfmt, or add a native node"
                    " (fleet.multiarch.buildx_builder) and name it in platform_builders"
                )

    def choose(self) -> tuple:
        info = self.builder(self.params["builder"] or "")
        store = ""
        if info["driver"] == "docker":
            store = self.engine_info()["image_store"]
        requested = self.params["strategy"]
        if requested == "auto" and len(self.platforms) == 1 and not self.params["load"] and self.params["push"]:
            return "per_platform", "one platform: one build and an index around it"
        return bd.choose_strategy(requested, info["driver"], store, self.platforms, self.platform_builders)

    # ---- building

    def common_args(self) -> dict:
        p = self.params
        return {
            "build_args": self.build_args,
            "target": p["target"] or "",
            "labels": {**self.labels, bd.FINGERPRINT_KEY: self.result["fingerprint"]},
            "ssh": p["ssh"],
            "cache_from": p["cache_from"],
            "cache_to": p["cache_to"],
            "pull": p["pull"],
            "no_cache": p["no_cache"],
            "attestations": p["attestations"],
        }

    def run_build(self, argv: list, prefix: str, environ: dict, platforms: list) -> None:
        """Run one ``docker buildx build``; push again when the registry broke the push off (5xx, a cut)."""
        where = f" for {prefix}" if prefix else f" for {', '.join(platforms)}"
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            start = self.log.size()
            rc, out, err = run_logged(self.cli, argv, self.log, prefix, environ)
            if rc == 0:
                return
            text = self.log.read(start)
            if prefix:  # only this platform's lines of a log shared by concurrent builds
                mark = f"[{prefix}] "
                text = "\n".join(ln[len(mark) :] for ln in text.splitlines() if ln.startswith(mark))
            step = bd.failing_step(text)
            fault = bd.registry_push_fault(step)
            if not fault or attempt == PUSH_ATTEMPTS:
                break
            self.module.warn(
                f"the registry answered {fault} while the build{where} was being pushed; pushing again"
                f" (attempt {attempt + 1} of {PUSH_ATTEMPTS}, the build itself comes from the builder's cache)"
            )
            time.sleep(PUSH_RETRY_PAUSE * attempt)
        out, err = bd.mask(out, self.secret_values), bd.mask(err, self.secret_values)
        self.build_failed(rc, out, err, step=step, where=where, text=text, attempts=attempt if fault else 1)

    def build_failed(self, rc: int, out: str, err: str, *, step: dict, where: str, text: str, attempts: int) -> None:
        """Raise the BuildError that names the failing step (or the missing emulator, or the frontend)."""
        tail = step["tail"]
        frontend = bd.frontend_failure(text, self.syntax) or bd.frontend_failure(err + out, self.syntax)
        if frontend:
            msg = f"the build{where} could not start: " + bd.frontend_message(self.syntax, frontend)
        elif bd.emulation_hint(err + out) or bd.emulation_hint("\n".join(tail)):
            msg = (
                f"the build{where} could not run a program of the target platform (exec format error): there is"
                " no emulator for it. Register QEMU emulation with fleet.multiarch.binfmt, or add a native node"
                " and name it in platform_builders"
            )
        elif step["step"]:
            msg = f"the build{where} failed at step {step['step']}: {step['error']}"
            if tail:
                msg += "; last output: " + " | ".join(tail[-5:])
        else:
            msg = f"the build{where} failed: {bx.last_error(err) or bx.last_error(out) or f'exit code {rc}'}"
        if attempts > 1:
            msg += (
                f"; the registry broke the push off {attempts} times: check its health and its log (a full disk,"
                " a proxy in front of it), then run the task again"
            )
        raise bd.BuildError(f"{msg} (full log: {self.log.path})", step=step["step"], log_tail=tail, rc=rc)

    def build_multi(self, workdir: str, secret_argv: list, secret_env: dict) -> None:
        p = self.params
        metadata = os.path.join(workdir, "metadata.json")
        annotations = {**self.annotations, bd.FINGERPRINT_KEY: self.result["fingerprint"]}
        single = len(self.platforms) == 1
        driver = self.builder(p["builder"] or "")["driver"]
        output = ""
        load = False
        name = str(self.primary)
        if p["push"] and driver == "docker":
            # buildx pushes the docker driver's image a second time by its name in the engine and reports that
            # push's digest: the name must be this build's alone (see build_tag); the module then tags the index
            name = f"{self.primary.name}:{bd.build_tag(self.primary.tag, self.result['fingerprint'])}"
        if p["push"] or (p["load"] and driver == "docker"):
            # the docker driver's image export also stores the image in the engine
            output = bd.image_output(name, p["push"], by_digest=False)
            load = p["load"] and driver != "docker"
        elif p["load"]:
            load = True
        argv = bd.build_argv(
            context=self.context,
            dockerfile=self.dockerfile,
            platforms=self.platforms,
            builder=p["builder"] or "",
            output=output,
            load=load,
            # one platform is one image manifest: the annotations go on it (the fingerprint is its label)
            annotations=self.annotations if single else annotations,
            annotation_level="manifest" if single else "index",
            secret_argv=secret_argv,
            metadata_file=metadata,
            **self.common_args(),
        )
        if single and self.annotations and driver == "docker" and self.engine_info()["image_store"] != "containerd":
            self.module.warn(
                "the docker driver on the classic image store writes Docker v2 manifests, which carry no annotations:"
                " the annotations are not kept (strategy per_platform puts them on an index around the image)"
            )
        if name != str(self.primary):
            self.run_staged(name, argv, secret_env)
        else:
            self.run_build(argv, "", secret_env, self.platforms)
        if not p["push"]:
            return
        with open(metadata, encoding="utf-8") as handle:
            meta = bd.parse_metadata(handle.read())
        if not meta["digest"]:
            raise bd.BuildError(f"the build wrote no image digest in its metadata ({self.log.path})")
        client = self.pool.get(self.primary.registry)
        fetched, _fp, digests = self.published(self.primary, meta["digest"])
        if fetched is None:
            raise bd.BuildError(f"buildx reported {meta['digest']} but {self.primary.name} does not hold it")
        self.result["digest"] = fetched.digest
        self.result["platform_digests"] = {pl: digests.get(pl, "") for pl in self.platforms}
        pushed = None
        if name != str(self.primary):
            self.result["staging_tags"].append(name)
            self.engine_names(name)
            pushed = client.put_manifest(self.primary.repository, self.primary.tag, fetched.body, fetched.media_type)
        self.confirm_tag(fetched.digest, pushed)

    def run_staged(self, name: str, argv: list, secret_env: dict) -> None:
        """``run_build`` for a push under this build's own tag; when it fails, the result says whether that tag
        moved (buildx pushes the index itself before the engine's push that can fail)."""
        ref = parse_reference(name)
        client = self.pool.get(ref.registry)
        before = client.head_manifest(ref.repository, ref.tag)
        try:
            self.run_build(argv, "", secret_env, self.platforms)
        except bd.BuildError:
            after = client.head_manifest(ref.repository, ref.tag)
            if after is not None and (before is None or after["digest"] != before["digest"]):
                self.result["staging_tags"].append(name)
            raise

    def engine_names(self, name: str) -> None:
        """The engine keeps the build under the first tag when asked to load it, not under its build tag."""
        if self.params["load"]:
            self.cli.run(["image", "tag", name, str(self.primary)], what="docker image tag")
        self.cli.run(["image", "rm", "--", name], check=False)

    def confirm_tag(self, digest: str, pushed=None) -> None:
        """Read the first tag back: another build of the same tag may have pushed after this one.

        ``pushed``: what the registry client's PUT of the tag read back (no second read when the tag holds ours).
        """
        if pushed is not None and not pushed.replaced:
            return
        fetched, fp, _digests = self.published(self.primary)
        if fetched is not None and fetched.digest == digest:
            return
        held = f"{fetched.digest} (fingerprint {fp or 'none'})" if fetched is not None else "nothing"
        raise bd.BuildError(
            f"another build pushed to the same tag at the same time: {self.primary} now holds {held}, not {digest}"
            f" (fingerprint {self.result['fingerprint']}), which this build pushed as {self.primary.name}@{digest}."
            " Run the task again to publish this build, or give concurrent builds tags of their own"
        )

    def build_one(self, platform: str, workdir: str, secret_argv: list, secret_env: dict) -> list:
        """Build and push one platform: ``[image entry, *its attestation entries]`` (attestations when enabled)."""
        p = self.params
        builder = self.platform_builders.get(platform, p["builder"] or "")
        by_digest = self.builder(builder)["driver"] != "docker"
        if by_digest:
            name = self.primary.name
        else:
            name = f"{self.primary.name}:{bd.build_tag(self.primary.tag, self.result['fingerprint'], platform)}"
        metadata = os.path.join(workdir, f"metadata-{bd.platform_slug(platform)}.json")
        argv = bd.build_argv(
            context=self.context,
            dockerfile=self.dockerfile,
            platforms=[platform],
            builder=builder,
            output=bd.image_output(name, True, by_digest),
            secret_argv=secret_argv,
            metadata_file=metadata,
            **self.common_args(),
        )
        prefix = platform if len(self.platforms) > 1 else ""
        self.run_build(argv, prefix, secret_env, [platform])
        with open(metadata, encoding="utf-8") as handle:
            meta = bd.parse_metadata(handle.read())
        if not meta["digest"]:
            raise bd.BuildError(f"the build of {platform} wrote no image digest in its metadata ({self.log.path})")
        if not by_digest:
            self.result["staging_tags"].append(name)
        client = self.pool.get(self.primary.registry)
        repo = self.primary.repository
        fetched = client.get_manifest(repo, meta["digest"])
        attestations = []
        if fetched.is_index:  # an engine that wraps one platform in an index, with attestations
            try:
                listed = entries_of(client, self.primary, fetched, source=name)
                inner, attestations = single_image(listed, f"the build of {platform}", p["attestations"])
            except ManifestError as exc:
                raise bd.BuildError(str(exc)) from exc
            fetched = client.get_manifest(repo, inner.digest)
        if fetched.media_type not in IMAGE_TYPES:
            raise bd.BuildError(f"the build of {platform} pushed {fetched.media_type}, not an image manifest")
        image = entries_of(client, self.primary, fetched, platform=parse_platform(platform).to_dict(), source=name)
        return [*image, *attestations]

    def build_per_platform(self, workdir: str, secret_argv: list, secret_env: dict) -> None:
        if not self.params["push"]:
            raise bd.BuildError("strategy per_platform assembles the index in the registry: it needs push: true")
        built = parallel(lambda pl: self.build_one(pl, workdir, secret_argv, secret_env), self.platforms)
        images = [group[0] for group in built]
        entries = images_then_attestations(built)
        annotations = {**self.annotations, bd.FINGERPRINT_KEY: self.result["fingerprint"]}
        body, _data = build_index(entries, OCI_INDEX, annotations)
        client = self.pool.get(self.primary.registry)
        pushed = client.put_manifest(self.primary.repository, self.primary.tag, body, OCI_INDEX)
        self.result["digest"] = pushed.digest
        self.result["platform_digests"] = {e.platform_obj.oci: e.digest for e in images}
        self.confirm_tag(pushed.digest, pushed)

    # ---- more tags

    def distribute(self, refs: list) -> None:
        """Point every ref at the first tag's manifest: same bytes, same digest, blobs mounted or copied."""
        if not refs:
            return
        client = self.pool.get(self.primary.registry)
        fetched = client.get_manifest(self.primary.repository, self.result["digest"])
        if fetched.is_index:  # the index's images and attestations
            digests = [e.digest for e in entries_of(client, self.primary, fetched)]
        else:
            digests = [fetched.digest]

        def publish(ref):
            target = self.pool.get(ref.registry)
            if ref.name != self.primary.name:
                for digest in digests:
                    self.copy_manifest(client, target, ref, digest)
            self.note_replaced(ref, target.put_manifest(ref.repository, ref.tag, fetched.body, fetched.media_type))

        parallel(publish, refs)

    def note_replaced(self, ref, pushed) -> None:
        """Warn, and say in ``tag_digests``, when another writer moved ``ref`` right after this task's push."""
        if pushed.replaced:
            self.module.warn(pushed.warning(str(ref)))
            self.result.setdefault("tag_digests", {})[str(ref)] = pushed.holds

    def copy_manifest(self, src, dst, ref, digest: str) -> None:
        """Make manifest ``digest`` of the first tag's repository exist in ``ref``'s repository, blobs first."""
        if dst.head_manifest(ref.repository, digest) is not None:
            return
        fetched = src.get_manifest(self.primary.repository, digest)
        copy_manifest_blobs(src, self.primary.repository, dst, ref.repository, fetched.data)
        dst.put_manifest(ref.repository, digest, fetched.body, fetched.media_type)

    # ---- the task

    def default_log_path(self) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        slug = self.primary.repository.replace("/", "-")
        return os.path.join(tempfile.gettempdir(), "fleet-multiarch-build", f"{slug}-{stamp}-{os.getpid()}.log")

    def prepare(self) -> str:
        """Validate the input and compute the fingerprint (once): the fingerprint."""
        if not self.result["fingerprint"]:
            self.context, self.dockerfile = self.validate()
            self.compute_fingerprint(self.context, self.dockerfile)
        return self.result["fingerprint"]

    def set_tags(self, tags: list) -> None:
        """Publish as ``tags`` instead (the release chooses its tag from the fingerprint; same registry)."""
        self.tags = [parse_reference(t) for t in tags]
        self.primary = self.tags[0]
        self.result["tags"] = [str(t) for t in self.tags]

    def assess(self) -> bool:
        """Validate, fingerprint, compare with the registry: True when every tag already holds this build.

        Reads only local files and the registry (the docker CLI only to resolve a base image the registry
        client cannot), so it can run wherever the build context is, the controller included.
        """
        p = self.params
        fp = self.prepare()
        before = {}
        self.missing_tags = list(self.tags[1:])
        self.current = False
        if p["push"]:
            self.current, self.missing_tags, fetched, digests = self.up_to_date(fp)
            self.published_manifest = fetched
            if fetched is not None:
                before = {
                    "fingerprint": self.result["published_fingerprint"],
                    "digest": fetched.digest,
                    "platforms": sorted(digests),
                }
        elif p["load"]:
            self.result["published_fingerprint"] = self.local_fingerprint()
            self.current = self.result["published_fingerprint"] == fp
        if self.module._diff:
            self.result["diff"] = {"before": before, "after": {"fingerprint": fp, "platforms": sorted(self.platforms)}}
        return self.current and not p["force"] and not self.missing_tags

    def run(self) -> dict:
        if self.assess():
            return self.finish()
        return self.apply()

    def apply(self) -> dict:
        """After :meth:`assess` found something to do: copy the index to the tags that lack it, or build."""
        p = self.params
        fp = self.result["fingerprint"]
        if self.current and not p["force"]:
            self.result["changed"] = True
            if not self.module.check_mode:
                self.distribute(self.missing_tags)
            return self.finish()
        self.result["changed"] = True
        # from here on, digest and platform_digests are this build's (a failure before the push leaves them empty)
        self.result["digest"] = ""
        self.result["platform_digests"] = {}
        if self.module.check_mode:
            return self.finish()
        strategy, reason = self.choose()
        self.result["strategy"], self.result["strategy_reason"] = strategy, reason
        self.check_platforms()
        secret_argv, secret_env = bd.secret_args(p["secrets"])
        self.secret_values = bd.secret_values(p["secrets"], read_file=_read_text)
        self.log = BuildLog(p["log_path"] or self.default_log_path(), self.secret_values)
        self.result["log_path"] = self.log.path
        self.log.note(f"fleet.multiarch.image_build {self.primary} {','.join(self.platforms)} fingerprint {fp}")
        self.log.note(f"strategy {strategy}: {reason}")
        workdir = tempfile.mkdtemp(prefix="fleet-build-")
        try:
            if strategy == "multi":
                self.build_multi(workdir, secret_argv, secret_env)
            else:
                self.build_per_platform(workdir, secret_argv, secret_env)
            self.result["built"] = True
            self.result["staging_tags"].sort()
            if p["push"]:
                self.distribute(self.tags[1:])
            self.log.note(f"done: {self.result['digest']}")
        finally:
            self.log.close()
            shutil.rmtree(workdir, ignore_errors=True)
        return self.finish()

    def finish(self, failed: bool = False) -> dict:
        """The result; after a failure, ``changed`` says whether anything reached a registry (a staging tag, or
        a tag now holding the build), not what the task had set out to do."""
        if failed and not self.module.check_mode:
            self.result["changed"] = bool(self.result["staging_tags"] or self.result["digest"])
        self.result["seconds"] = round(time.monotonic() - self.started, 3)
        return self.result


# ------------------------------------------------------------------------------------------ the options

REQUIRED_TOGETHER = [("username", "password")]


def image_build_argument_spec() -> dict:
    """The module's options: one spec for the module and for the release's build step (``_release.build_params``)."""
    spec = {
        "context": {"type": "path", "required": True},
        "dockerfile": {"type": "path", "default": "Dockerfile"},
        "platforms": {"type": "list", "elements": "str", "required": True},
        "tags": {"type": "list", "elements": "str", "required": True},
        "build_args": {"type": "dict", "default": {}},
        "target": {"type": "str"},
        "labels": {"type": "dict", "default": {}},
        "annotations": {"type": "dict", "default": {}},
        "secrets": {
            "type": "list",
            "elements": "dict",
            "default": [],
            "no_log": False,  # ids, files and variable names are not secret; value is
            "options": {
                "id": {"type": "str", "required": True},
                "file": {"type": "path"},
                "env": {"type": "str"},
                "value": {"type": "str", "no_log": True},
            },
            "mutually_exclusive": [("file", "env", "value")],
            "required_one_of": [("file", "env", "value")],
        },
        "ssh": {"type": "list", "elements": "str", "default": []},
        "cache_from": {"type": "list", "elements": "str", "default": []},
        "cache_to": {"type": "list", "elements": "str", "default": []},
        "pull": {"type": "bool", "default": True},
        "no_cache": {"type": "bool", "default": False},
        "push": {"type": "bool", "default": True},
        "load": {"type": "bool", "default": False},
        "builder": {"type": "str"},
        "platform_builders": {"type": "dict", "default": {}},
        "strategy": {"type": "str", "choices": list(bd.STRATEGIES), "default": "auto"},
        "attestations": {"type": "bool", "default": False},
        "force": {"type": "bool", "default": False},
        "base_image_registry": {"type": "str"},
        "log_path": {"type": "path"},
    }
    spec.update(registry_argument_spec())
    spec.update({k: dict(v) for k, v in bx.DOCKER_CLI_ARGS.items() if k != "docker_config"})
    return spec
