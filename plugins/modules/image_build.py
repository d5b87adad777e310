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
  - fleet.multiarch.build
  - fleet.multiarch.docker_cli
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
      - Secrets for C(RUN --mount=type=secret). Values are never put on a command line. What a secret holds
        (the value, the variable's value, the file's content; each line of 4 characters or more) is masked
        as C(********) in the build log, the messages and the result, also when a Dockerfile prints it. Ids,
        file paths and variable names are not secret and are shown in messages. They are not part of the
        fingerprint.
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
        description: The secret itself (C(no_log)); it reaches buildx through an environment variable of the child.
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
  log_path:
    description:
      - The file the build output is written to, readable by its owner only (mode C(0600)), with the secrets
        masked. Default a new file under the system's temporary directory, in C(fleet-multiarch-build/)
        (created with mode C(0700)). A directory is refused before anything is built.
    type: path
notes:
  - buildx pushes with the Docker CLI's credentials (C(docker login)); O(username) and O(password) are used by the
    module's own registry requests (reading the published index, assembling and copying it).
  - The docker driver cannot push by digest, so it pushes to tags of this build alone, returned in RV(staging_tags)
    (C(<tag>-build-<12 hex digits of the fingerprint>), with V(per_platform) one per platform ending in
    C(-<os>-<arch>[-<variant>])); later builds of the same inputs overwrite them.
  - When the registry breaks a push off (an HTTP 5xx answer, a connection reset, an unexpected end of the stream),
    the build is run again, at most three times in all, 2 s and then 4 s apart, with a warning each time; the
    build itself comes from the builder's cache, and the push goes to this build's own tag or by digest, so a
    second push cannot publish anything else. A self-hosted C(registry:2) answers 500 now and then when several
    manifests of one index are pushed under one tag at once, as the containerd image store does.
  - A C(# syntax=IMAGE) line makes BuildKit pull that Dockerfile frontend image before anything else, from its own
    registry (not the engine's registry mirror). When the builder cannot pull it, the task fails with a message
    that names the image and says to mirror it into a reachable registry and point the line there, or to drop
    the line.
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
    description: Runs where the docker CLI with the buildx plugin is installed.
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
  description:
    - Digest of what the first tag points to (the index); empty in check mode before a first build.
    - After a build, the digest buildx reports for this build, which the first tag is read back to hold. When
      another build pushed to the same tag meanwhile, the task fails naming both digests, and C(digest) stays
      this build's (in the repository by digest).
  returned: always
  type: str
  sample: sha256:12630997941a65c314a9e00b2d31eb14817a84cbd4279d6f8e111aa1c891fc58
tag_digests:
  description:
    - Tag -> the digest it holds, for each tag that another writer moved right after this task's push (a warning
      says so too); RV(digest) stays what this task pushed.
  returned: when another writer replaced a tag
  type: dict
platform_digests:
  description: Platform -> digest of its image manifest, read from this build's own index.
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
  description:
    - Tags of this build's own pushed on the way with the docker driver, which cannot push by digest, before
      the module points the tags at the index. With V(per_platform) C(<tag>-build-<fp>-<os>-<arch>[-<variant>]),
      one per platform; with V(multi) C(<tag>-build-<fp>); C(<fp>) is the first 12 hex digits of the fingerprint.
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

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.multiarch.plugins.module_utils import _build as bd
from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx
from ansible_collections.fleet.multiarch.plugins.module_utils._image_build import (
    REQUIRED_TOGETHER,
    ImageBuilder,
    image_build_argument_spec,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._manifest import INDEX_ERRORS
from ansible_collections.fleet.multiarch.plugins.module_utils._reference import parse_reference
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import ClientPool


def main():
    module = AnsibleModule(
        argument_spec=image_build_argument_spec(),
        required_together=REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    builder = None
    try:
        primary = parse_reference(module.params["tags"][0]) if module.params["tags"] else None
        if primary is None:
            raise bd.BuildError("tags is empty: give at least one full reference, e.g. 127.0.0.1:5000/app:1.0")
        pool = ClientPool(module.params, primary.registry)
        builder = ImageBuilder(module, bx.DockerCLI.from_module(module), pool)
        result = builder.run()
    except bd.BuildError as exc:
        extra = builder.finish(failed=True) if builder is not None else {}
        module.fail_json(msg=str(exc), **{**extra, **exc.details})
    except bx.BuildxError as exc:
        extra = builder.finish(failed=True) if builder is not None else {}
        module.fail_json(msg=str(exc), **{**extra, **exc.to_result()})
    except INDEX_ERRORS as exc:
        extra = builder.finish(failed=True) if builder is not None else {}
        module.fail_json(msg=str(exc), **extra)
    except Exception as exc:
        module.fail_json(msg=f"unexpected error: {exc.__class__.__name__}: {exc}", exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
