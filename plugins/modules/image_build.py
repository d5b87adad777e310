#!/usr/bin/python
# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_build
short_description: Build a multi-platform image with docker buildx and publish it under one name when its inputs change
version_added: 0.1.0
description:
  - Builds an image for several platforms with C(docker buildx build) and pushes it as one image index to every
    reference in O(tags). Returns the index digest and the manifest digest of each platform.
  - B(Knowing when nothing changed.) A fingerprint (sha256) is computed over the build context (honouring
    C(.dockerignore)), the Dockerfile, O(build_args), O(target), O(platforms), O(labels), O(annotations),
    O(attestations) and the digests of the base images named by C(FROM), C(COPY --from) and C(RUN --mount=from),
    resolved in the registry the engine would pull them from. It is recorded on the published index as the
    annotation C(fleet.multiarch.build.fingerprint) (and on each image as a label of that name).
    When every tag already carries the same fingerprint and exactly the requested platforms, nothing is built
    and C(changed) is false. This takes a few registry requests and no docker command (unless the engine's
    registry mirror has to be read, see O(base_image_registry)).
  - Changing any input, one platform, or a base image that moved to a new digest, builds again. O(force) always
    builds. When only some tags lack the index, the index is copied to them without building.
  - B(Strategies.) V(multi) runs one C(buildx build --platform a,b,c); it needs a builder that exports an
    index (drivers docker-container, remote, kubernetes, or the docker driver on an engine with the containerd
    image store). V(per_platform) builds every platform on its own (concurrently, each on the builder
    O(platform_builders) names, for example a native ARM node), pushes each image, and assembles the index with
    the collection's registry code; it works on every engine, including the classic image store.
    V(auto) inspects the builder and tells which one it used and why.
  - The full build output is written, as it comes, to RV(log_path) on the host (lines of concurrent builds are
    prefixed with their platform). Long builds can run with Ansible's C(async).
author:
  - fleet.multiarch contributors (@fleet-multiarch)
extends_documentation_fragment:
  - fleet.multiarch.registry
options:
  username:
    description:
      - User name for the registry of the first of O(tags), for HTTP Basic authentication or the Bearer token
        server, used by the module's own registry requests.
      - When O(username) and O(password) are not given, credentials come from the Docker config, else the
        registry is used anonymously. Other registries (of base images, of further tags) always take their
        credentials from the Docker config.
    type: str
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
  tags:
    description:
      - Full references (C(registry/repository:tag)) to publish the image as. The first is built and pushed;
        the others receive the same index (copied through the registry API, with the same digest).
    type: list
    elements: str
    required: true
  build_args:
    description:
      - Build-time variables (C(--build-arg)). Part of the fingerprint; they are visible in the image history,
        so use O(secrets) for credentials.
    type: dict
    default: {}
  target:
    description:
      - The stage to build (C(--target)).
    type: str
  labels:
    description:
      - Labels of the image config (C(--label)).
    type: dict
    default: {}
  annotations:
    description:
      - Annotations of the published index (string to string).
      - When one platform is built with O(strategy=multi) (or with O(load)/O(push=false)), what is published is
        an image manifest, not an index, and the annotations go on that manifest. The buildx docker driver on
        an engine with the classic image store cannot write them there; the module warns then.
    type: dict
    default: {}
  secrets:
    description:
      - Secrets for C(RUN --mount=type=secret). Values are never put on a command line, in the log or in
        the result. They are not part of the fingerprint. The whole option is hidden from logs (C(no_log)).
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description: The secret's id in the Dockerfile.
        type: str
        required: true
      file:
        description: A file on the host with the secret.
        type: path
      env:
        description: An environment variable of the module (set it with the C(environment) keyword).
        type: str
      value:
        description: The secret itself; it reaches buildx through an environment variable of the child.
        type: str
  ssh:
    description:
      - SSH agent sockets or keys to expose (C(--ssh)), such as C(default) or C(id=/path/to/key).
    type: list
    elements: str
    default: []
  cache_from:
    description:
      - External cache sources (C(--cache-from)); a plain reference means C(type=registry,ref=REFERENCE).
    type: list
    elements: str
    default: []
  cache_to:
    description:
      - Cache export destinations (C(--cache-to)); a plain reference means C(type=registry,ref=REFERENCE).
        The docker driver cannot export a cache; use a docker-container builder for that.
    type: list
    elements: str
    default: []
  pull:
    description:
      - Pull base images (C(--pull)). On by default, because without it an engine with the classic image store uses
        whatever local image has the base's name, even one of another platform, so the image would not be
        built from the base digests the fingerprint records.
    type: bool
    default: true
  no_cache:
    description:
      - Build without BuildKit's cache (C(--no-cache)). Does not change the fingerprint.
    type: bool
    default: false
  push:
    description:
      - Push to O(tags). Without it the images stay in the builder (or the engine with O(load)) and
        idempotence is judged from the local image's fingerprint label (O(load)) or not at all.
    type: bool
    default: true
  load:
    description:
      - Also load the image into the engine as the first tag (one platform only).
    type: bool
    default: false
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
      - V(auto) chooses by inspecting the builder, see the description; V(multi) and V(per_platform) force one.
    type: str
    choices: [auto, multi, per_platform]
    default: auto
  attestations:
    description:
      - Attach provenance and SBOM attestations (C(--provenance mode=min --sbom true)).
      - Off by default so indexes hold only image manifests, as old clients (Docker before 20.10.9 and other
        tools that do not know C(unknown/unknown) entries) expect.
      - With O(strategy=per_platform) each platform's attestation manifests are kept in the final index, after
        the images. The buildx docker driver makes attestations only on an engine with the containerd image
        store, and the SBOM scanner image (C(docker/buildkit-syft-scanner)) must be reachable by the builder.
    type: bool
    default: false
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
  log_path:
    description:
      - The file the build output is written to. Default a new file under the system's temporary directory,
        in C(fleet-multiarch-build/).
    type: path
  docker_cli:
    description:
      - Path of the docker CLI. Defaults to C(docker) on PATH.
    type: path
  docker_host:
    description:
      - The engine to build on (C(DOCKER_HOST)), for example C(unix:///var/run/fleet-docker2.sock).
    type: str
  docker_context:
    description:
      - The docker context to use (C(DOCKER_CONTEXT)).
    type: str
notes:
  - buildx pushes with the Docker CLI's credentials (C(docker login)); O(username) and O(password) are used by the
    module's own registry requests (reading the published index, assembling and copying it).
  - The docker driver cannot push by digest, so with V(per_platform) on it each platform is first pushed to
    the tag C(<tag>-build-<os>-<arch>[-<variant>]) of the first reference; later builds overwrite those tags.
  - O(docker_config) is also the directory the docker CLI reads (C(DOCKER_CONFIG)).
attributes:
  check_mode:
    support: full
    description: Computes the fingerprint, reads the published index and reports whether a build would happen.
  diff_mode:
    support: partial
    description: Shows the fingerprint, digest and platforms before, and the fingerprint and platforms after.
  idempotent:
    support: full
    description: Builds nothing when every tag carries the same fingerprint and platforms.
  platform:
    platforms: posix
    support: full
    description: Runs where the docker CLI with the buildx plugin and Python C(requests) are installed.
seealso:
  - module: fleet.multiarch.buildx_builder
  - module: fleet.multiarch.manifest
  - module: fleet.multiarch.binfmt
"""

EXAMPLES = r"""
- name: Build for three platforms and publish one name
  fleet.multiarch.image_build:
    context: /srv/app
    platforms: [linux/amd64, linux/arm64, linux/arm/v7]
    tags:
      - 127.0.0.1:5000/fleet/app:1.4.2
      - 127.0.0.1:5000/fleet/app:latest
    build_args:
      APP_VERSION: 1.4.2
  register: app_image

- name: Devices pull by digest
  ansible.builtin.debug:
    msg: "{{ app_image.digest }} ({{ app_image.strategy }}, {{ app_image.seconds }} s, log {{ app_image.log_path }})"

- name: ARM on a native node, amd64 locally, with a secret
  fleet.multiarch.image_build:
    context: /srv/app
    platforms: [linux/amd64, linux/arm64]
    platform_builders:
      linux/arm64: pi5
    tags: [127.0.0.1:5000/fleet/app:1.4.2]
    secrets:
      - id: npmrc
        file: /root/.npmrc
      - id: token
        value: "{{ vault_build_token }}"

- name: A long build in the background
  fleet.multiarch.image_build:
    context: /srv/big
    platforms: [linux/amd64, linux/arm64]
    tags: [127.0.0.1:5000/fleet/big:2.0]
    docker_host: unix:///var/run/fleet-docker2.sock
  async: 3600
  poll: 30
"""

RETURN = r"""
changed:
  description: Whether something was built or a tag was moved (in check mode, would be).
  returned: always
  type: bool
built:
  description: Whether an image was built (false when the fingerprint matched, or in check mode).
  returned: always
  type: bool
digest:
  description: Digest of what the first tag points to (the index); empty in check mode before a first build.
  returned: always
  type: str
  sample: sha256:12630997941a65c314a9e00b2d31eb14817a84cbd4279d6f8e111aa1c891fc58
platform_digests:
  description: Platform -> digest of its image manifest.
  returned: always
  type: dict
  sample: {"linux/amd64": "sha256:02b9...", "linux/arm64": "sha256:9dfa..."}
tags:
  description: The references published.
  returned: always
  type: list
  elements: str
fingerprint:
  description: The fingerprint of the inputs.
  returned: always
  type: str
  sample: sha256:5d4c1b1f6b2c8d6c0a0f8a1e3b6f3f0b2e5a7c9d1e3f5a7b9c1d3e5f7a9b1c3d
published_fingerprint:
  description: The fingerprint the first tag carried before the task (empty when none).
  returned: always
  type: str
strategy:
  description: The strategy used (V(multi) or V(per_platform)); empty when nothing was built.
  returned: always
  type: str
strategy_reason:
  description: Why V(auto) chose that strategy.
  returned: always
  type: str
base_images:
  description: Base image as named in the Dockerfile -> the digest the fingerprint uses.
  returned: always
  type: dict
context:
  description: What was hashed of the context (C(files), C(bytes), C(digest)).
  returned: always
  type: dict
seconds:
  description: Seconds the task took.
  returned: always
  type: float
log_path:
  description: The file with the full build output; empty when nothing was built.
  returned: always
  type: str
staging_tags:
  description: Per-platform tags pushed on the way (docker driver with V(per_platform)).
  returned: always
  type: list
  elements: str
step:
  description: The build step that failed.
  returned: on a failed RUN step
  type: str
log_tail:
  description: The last lines of output of the failed step.
  returned: on a failed RUN step
  type: list
  elements: str
"""

import json
import os
import shutil
import tempfile
import threading
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.fleet.multiarch.plugins.module_utils import _build as bd
from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx
from ansible_collections.fleet.multiarch.plugins.module_utils._binfmt import BinfmtMisc, emulated_targets
from ansible_collections.fleet.multiarch.plugins.module_utils._concurrent import parallel
from ansible_collections.fleet.multiarch.plugins.module_utils._manifest import (
    ManifestError,
    build_index,
    entries_from_index,
    image_entry,
    images_then_attestations,
    single_image,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import (
    PlatformError,
    emulated_platforms,
    host_platform,
    native_platforms,
    parse_platform,
    platform_from_dict,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import (
    HAS_REQUESTS,
    IMAGE_TYPES,
    INDEX_TYPES,
    OCI_INDEX,
    REQUESTS_IMPORT_ERROR,
    ClientPool,
    RegistryError,
    copy_manifest_blobs,
    parse_reference,
    registry_argument_spec,
)


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


# ------------------------------------------------------------------------------------------ the build log


class BuildLog:
    """The build log file, written as output arrives; lines of concurrent builds carry their platform."""

    def __init__(self, path: str):
        self.path = path
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        self._handle = open(path, "ab")
        self._lock = threading.Lock()
        self._partial = {}

    def write(self, prefix: str, chunk: bytes, stream: str = "") -> None:
        key = (prefix, stream)
        data = self._partial.pop(key, b"") + chunk
        lines = data.split(b"\n")
        self._partial[key] = lines.pop()
        if lines:
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

    def read(self) -> str:
        with open(self.path, encoding="utf-8", errors="replace") as handle:
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

    def published(self, ref):
        """``(fetched, fingerprint, {platform: digest})`` of what ``ref`` holds; (None, "", {}) when nothing."""
        client = self.pool.get(ref.registry)
        try:
            fetched = client.get_manifest(ref.repository, ref.ref)
        except RegistryError as exc:
            if exc.status == 404:
                return None, "", {}
            raise
        if fetched.media_type in INDEX_TYPES:
            fp = (fetched.data.get("annotations") or {}).get(bd.FINGERPRINT_KEY, "")
            digests = {}
            for desc in fetched.data.get("manifests") or []:
                platform = desc.get("platform") or {}
                if platform.get("os") == "unknown":
                    continue
                try:
                    digests[platform_from_dict(platform).oci] = desc["digest"]
                except (PlatformError, KeyError):
                    continue
            return fetched, fp, digests
        config_digest = (fetched.data.get("config") or {}).get("digest")
        if not config_digest:
            return fetched, "", {}
        config = json.loads(client.get_blob(ref.repository, config_digest))
        fp = ((config.get("config") or {}).get("Labels") or {}).get(bd.FINGERPRINT_KEY, "")
        try:
            platform = platform_from_dict(config).oci
        except PlatformError:
            return fetched, fp, {}
        return fetched, fp, {platform: fetched.digest}

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
        host = host_platform()
        out = [p.oci for p in native_platforms(host)]
        binfmt = BinfmtMisc(self.module.run_command)
        for target in emulated_targets(binfmt.entries(), binfmt.status_enabled()):
            out += [p.oci for p in emulated_platforms(target)]
        return out

    def check_platforms(self) -> None:
        local = self.local_platforms() if self.local_engine() else []
        groups = {}
        for platform in self.platforms:
            groups.setdefault(self.platform_builders.get(platform, self.params["builder"] or ""), []).append(platform)
        for name, platforms in groups.items():
            info = self.builder(name)
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
        rc, out, err = run_logged(self.cli, argv, self.log, prefix, environ)
        if rc == 0:
            return
        text = self.log.read()
        if prefix:  # only this platform's lines of a log shared by concurrent builds
            mark = f"[{prefix}] "
            text = "\n".join(ln[len(mark) :] for ln in text.splitlines() if ln.startswith(mark))
        step = bd.failing_step(text)
        tail = step["tail"]
        where = f" for {prefix}" if prefix else f" for {', '.join(platforms)}"
        if bd.emulation_hint(err + out) or bd.emulation_hint("\n".join(tail)):
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
        raise bd.BuildError(f"{msg} (full log: {self.log.path})", step=step["step"], log_tail=tail, rc=rc)

    def build_multi(self, workdir: str, secret_argv: list, secret_env: dict) -> None:
        p = self.params
        metadata = os.path.join(workdir, "metadata.json")
        annotations = {**self.annotations, bd.FINGERPRINT_KEY: self.result["fingerprint"]}
        single = len(self.platforms) == 1
        driver = self.builder(p["builder"] or "")["driver"]
        output = ""
        load = False
        if p["push"] or (p["load"] and driver == "docker"):
            # the docker driver's image export also stores the image in the engine
            output = bd.image_output(str(self.primary), p["push"], by_digest=False)
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
        self.run_build(argv, "", secret_env, self.platforms)
        if not p["push"]:
            return
        with open(metadata, encoding="utf-8") as handle:
            meta = bd.parse_metadata(handle.read())
        fetched, _fp, digests = self.published(self.primary)
        if fetched is None:
            raise bd.BuildError(f"buildx reported success but {self.primary} does not exist in the registry")
        if meta["digest"] and meta["digest"] != fetched.digest:
            raise bd.BuildError(
                f"buildx pushed {meta['digest']} but {self.primary} points to {fetched.digest}: another build"
                " pushed to the same tag at the same time; run again"
            )
        self.result["digest"] = fetched.digest
        self.result["platform_digests"] = {pl: digests.get(pl, "") for pl in self.platforms}

    def build_one(self, platform: str, workdir: str, secret_argv: list, secret_env: dict) -> list:
        """Build and push one platform: ``[image entry, *its attestation entries]`` (attestations when enabled)."""
        p = self.params
        builder = self.platform_builders.get(platform, p["builder"] or "")
        by_digest = self.builder(builder)["driver"] != "docker"
        if by_digest:
            name = self.primary.name
        else:
            name = f"{self.primary.name}:{bd.staging_tag(self.primary.tag, platform)}"
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
        if fetched.media_type in INDEX_TYPES:  # an engine that wraps one platform in an index, with attestations
            listed = entries_from_index(fetched, name, self.primary.name)
            try:
                inner, attestations = single_image(listed, f"the build of {platform}", p["attestations"])
            except ManifestError as exc:
                raise bd.BuildError(str(exc)) from exc
            fetched = client.get_manifest(repo, inner.digest)
        if fetched.media_type not in IMAGE_TYPES:
            raise bd.BuildError(f"the build of {platform} pushed {fetched.media_type}, not an image manifest")
        image = image_entry(client, self.primary, fetched, platform=parse_platform(platform).to_dict(), source=name)
        return [image, *attestations]

    def build_per_platform(self, workdir: str, secret_argv: list, secret_env: dict) -> None:
        if not self.params["push"]:
            raise bd.BuildError("strategy per_platform assembles the index in the registry: it needs push: true")
        built = parallel(lambda pl: self.build_one(pl, workdir, secret_argv, secret_env), self.platforms)
        images = [group[0] for group in built]
        entries = images_then_attestations(built)
        annotations = {**self.annotations, bd.FINGERPRINT_KEY: self.result["fingerprint"]}
        body, _data = build_index(entries, OCI_INDEX, annotations)
        client = self.pool.get(self.primary.registry)
        digest = client.put_manifest(self.primary.repository, self.primary.tag, body, OCI_INDEX)
        self.result["digest"] = digest
        self.result["platform_digests"] = {e.platform_obj.oci: e.digest for e in images}

    # ---- more tags

    def distribute(self, refs: list) -> None:
        """Point every ref at the first tag's manifest: same bytes, same digest, blobs mounted or copied."""
        if not refs:
            return
        client = self.pool.get(self.primary.registry)
        fetched = client.get_manifest(self.primary.repository, self.result["digest"])
        if fetched.media_type in INDEX_TYPES:
            digests = [d["digest"] for d in fetched.data.get("manifests") or []]
        else:
            digests = [fetched.digest]

        def publish(ref):
            target = self.pool.get(ref.registry)
            if ref.name != self.primary.name:
                for digest in digests:
                    self.copy_manifest(client, target, ref, digest)
            target.put_manifest(ref.repository, ref.tag, fetched.body, fetched.media_type)

        parallel(publish, refs)

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

    def run(self) -> dict:
        p = self.params
        self.context, self.dockerfile = self.validate()
        fp = self.compute_fingerprint(self.context, self.dockerfile)
        before = {}
        missing_tags = list(self.tags[1:])
        current = False
        if p["push"]:
            current, missing_tags, fetched, digests = self.up_to_date(fp)
            if fetched is not None:
                before = {
                    "fingerprint": self.result["published_fingerprint"],
                    "digest": fetched.digest,
                    "platforms": sorted(digests),
                }
        elif p["load"]:
            self.result["published_fingerprint"] = self.local_fingerprint()
            current = self.result["published_fingerprint"] == fp
        if self.module._diff:
            self.result["diff"] = {"before": before, "after": {"fingerprint": fp, "platforms": sorted(self.platforms)}}
        if current and not p["force"]:
            self.result["changed"] = bool(missing_tags)
            if missing_tags and not self.module.check_mode:
                self.distribute(missing_tags)
            return self.finish()
        self.result["changed"] = True
        if self.module.check_mode:
            self.result["digest"] = ""
            self.result["platform_digests"] = {}
            return self.finish()
        strategy, reason = self.choose()
        self.result["strategy"], self.result["strategy_reason"] = strategy, reason
        self.check_platforms()
        secret_argv, secret_env = bd.secret_args(p["secrets"])
        self.log = BuildLog(p["log_path"] or self.default_log_path())
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

    def finish(self) -> dict:
        self.result["seconds"] = round(time.monotonic() - self.started, 3)
        return self.result


def main():
    argument_spec = {
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
            "no_log": True,
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
    argument_spec.update(registry_argument_spec())
    argument_spec.update({k: dict(v) for k, v in bx.DOCKER_CLI_ARGS.items() if k != "docker_config"})
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"), exception=str(REQUESTS_IMPORT_ERROR))
    builder = None
    try:
        primary = parse_reference(module.params["tags"][0]) if module.params["tags"] else None
        if primary is None:
            raise bd.BuildError("tags is empty: give at least one full reference, e.g. 127.0.0.1:5000/app:1.0")
        pool = ClientPool(module.params, primary.registry)
        builder = ImageBuilder(module, bx.DockerCLI.from_module(module), pool)
        result = builder.run()
    except bd.BuildError as exc:
        extra = builder.finish() if builder is not None else {}
        module.fail_json(msg=str(exc), **{**extra, **exc.details})
    except bx.BuildxError as exc:
        extra = builder.finish() if builder is not None else {}
        module.fail_json(msg=str(exc), **{**extra, **exc.to_result()})
    except (RegistryError, ManifestError, PlatformError, ValueError) as exc:
        extra = builder.finish() if builder is not None else {}
        module.fail_json(msg=str(exc), **extra)
    except Exception as exc:
        module.fail_json(msg=f"unexpected error: {exc.__class__.__name__}: {exc}", exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
