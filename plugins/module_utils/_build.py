# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""Image builds as data, for ``image_build``: the fingerprint, Dockerfile FROM lines, strategy, argv, logs.

Everything here is pure or reads only local files (the build context, the Dockerfile): no CLI, no HTTP.

- :func:`read_dockerignore` / :class:`IgnoreMatcher` follow the Docker engine's ``.dockerignore`` rules
  (moby ``patternmatcher``: ``*``, ``?``, ``**``, ``!`` exceptions, a pattern matching a parent directory
  excludes what is below it).
- :func:`hash_context` streams every file the build would send into one digest (paths, types, modes, contents).
- :func:`parse_dockerfile` and :func:`base_images` find the images named by ``FROM``, ``COPY --from`` and
  ``RUN --mount=from=`` after ARG substitution, skipping stages and ``scratch``.
- :func:`fingerprint` is the digest over every input that decides the output image.
- :func:`choose_strategy`, :func:`build_argv`, :func:`parse_metadata`, :func:`failing_step` are the rest;
  :func:`frontend_failure` recognises a ``# syntax=`` frontend image that the builder could not fetch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat

from ansible_collections.fleet.multiarch.plugins.module_utils._platform import (
    PlatformError,
    parse_platform,
)

FINGERPRINT_KEY = "fleet.multiarch.build.fingerprint"
FINGERPRINT_SCHEME = "fleet.multiarch.image_build/1"
STRATEGIES = ("auto", "multi", "per_platform")
# Drivers whose builders export a multi-platform index themselves (and push by digest).
INDEX_DRIVERS = ("docker-container", "remote", "kubernetes")
CONTAINERD_SNAPSHOTTER = "io.containerd.snapshotter.v1"
CHUNK = 1024 * 1024
TAIL_LINES = 30


class BuildError(Exception):
    """Input that cannot be built, or a build that failed; the message says what to do."""

    def __init__(self, msg: str, **details):
        super().__init__(msg)
        self.details = details


# --------------------------------------------------------------------------------------- .dockerignore


def read_dockerignore(text: str) -> list:
    """``.dockerignore`` text -> ``[(pattern, exclusion)]`` cleaned as the engine does.

    Lines starting with ``#`` are comments; a leading ``!`` makes an exception (re-include); a leading
    ``/`` is dropped (patterns are relative to the context root); ``./a//b/`` is cleaned to ``a/b``.
    """
    out = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:].strip()
            if not line:
                continue
        line = _clean_path(line.lstrip("/"))
        if line in ("", "."):
            continue
        out.append((line, negate))
    return out


def _clean_path(path: str) -> str:
    """``filepath.Clean`` for relative slash paths: no empty, ``.`` or resolvable ``..`` components."""
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts) or "."


def _pattern_regex(pattern: str):
    """moby's pattern -> regex: ``**`` spans directories, ``*`` and ``?`` stay within one component."""
    out = "^"
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out += ".*" if i >= n else "(.*/)?"
                continue
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < n:
            i += 1
            out += re.escape(pattern[i])
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out += re.escape(ch)
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out += "[" + body.replace("\\", "\\\\") + "]"
                i = end
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


class IgnoreMatcher:
    """Decides which context paths the engine leaves out; the last matching pattern wins."""

    def __init__(self, patterns: list):
        self.patterns = [(p, neg, _pattern_regex(p)) for p, neg in patterns]
        self.has_exceptions = any(neg for _p, neg, _r in self.patterns)

    def excluded(self, relpath: str) -> bool:
        """Whether ``relpath`` (slash separated, relative to the context) is left out."""
        if not self.patterns:
            return False
        parts = relpath.split("/")
        parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
        matched = False
        for _pattern, negate, regex in self.patterns:
            if matched != negate:
                continue  # this pattern cannot change the answer
            if regex.match(relpath) or any(regex.match(parent) for parent in parents):
                matched = not negate
        return matched

    def prune(self, reldir: str) -> bool:
        """Whether a whole directory can be skipped: excluded and no exception could re-include inside it."""
        if not self.excluded(reldir):
            return False
        if not self.has_exceptions:
            return True
        prefix = reldir + "/"
        for pattern, negate, _regex in self.patterns:
            if negate and (pattern.startswith(prefix) or "*" in pattern or "?" in pattern or "[" in pattern):
                return False
        return True


def ignore_file(context: str, dockerfile: str) -> str:
    """The ignore file BuildKit reads: ``<Dockerfile>.dockerignore`` beside the Dockerfile, else the context's."""
    specific = dockerfile + ".dockerignore"
    if os.path.isfile(specific):
        return specific
    return os.path.join(context, ".dockerignore")


def load_ignore(path: str) -> list:
    try:
        with open(path, encoding="utf-8") as handle:
            return read_dockerignore(handle.read())
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildError(f"cannot read {path}: {exc}") from None


# --------------------------------------------------------------------------------------- context hash


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(CHUNK)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def hash_context(root: str, matcher: IgnoreMatcher) -> dict:
    """``{digest, files, bytes}`` over what the engine sends: paths, types, permission bits, contents.

    Modification times and owners are not included: BuildKit does not use them either (COPY sets the
    owner, and its cache keys are content checksums). Symbolic links count by their target text.
    """
    total = hashlib.sha256()
    files = 0
    size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        reldir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        reldir = "" if reldir == "." else reldir
        keep = []
        for name in sorted(dirnames):
            rel = f"{reldir}/{name}" if reldir else name
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                filenames.append(name)  # os.walk lists links to directories here; hash them as links
                continue
            if matcher.prune(rel):
                continue
            keep.append(name)
            if not matcher.excluded(rel):
                mode = stat.S_IMODE(os.lstat(full).st_mode)
                total.update(f"d {mode:o} {rel}\n".encode("utf-8", "surrogateescape"))
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = f"{reldir}/{name}" if reldir else name
            if matcher.excluded(rel):
                continue
            full = os.path.join(dirpath, name)
            info = os.lstat(full)
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                line = f"l {rel} {os.readlink(full)}\n"
            elif stat.S_ISREG(info.st_mode):
                try:
                    content = _file_digest(full)
                except OSError as exc:
                    raise BuildError(f"cannot read {full} in the build context: {exc}") from None
                line = f"f {mode:o} {rel} {info.st_size} {content}\n"
                size += info.st_size
            else:
                line = f"o {mode:o} {rel}\n"  # sockets, fifos: the engine refuses or skips them; record them
            files += 1
            total.update(line.encode("utf-8", "surrogateescape"))
    return {"digest": "sha256:" + total.hexdigest(), "files": files, "bytes": size}


# --------------------------------------------------------------------------------------- Dockerfile

_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.+?)\s*$")
_VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
PLATFORM_ARGS = (
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
)


def logical_lines(text: str) -> list:
    """Dockerfile instructions as single lines: continuations joined, comments and directives dropped."""
    escape = "\\"
    lines = text.splitlines()
    for line in lines:  # parser directives come first, before any other line
        match = _DIRECTIVE_RE.match(line.strip())
        if not match:
            break
        if match.group(1).lower() == "escape" and match.group(2) in ("\\", "`"):
            escape = match.group(2)
    out = []
    current = ""
    for raw in lines:
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue  # comments, also inside continuations
        if current and not stripped:
            continue
        if stripped.endswith(escape):
            current += stripped[: -len(escape)]
            continue
        current += stripped
        if current.strip():
            out.append(current.strip())
        current = ""
    if current.strip():
        out.append(current.strip())
    return out


def _flags_and_args(rest: str) -> tuple:
    """``--platform=x --from=y a b`` -> ({platform: x, from: y}, [a, b])."""
    flags = {}
    args = []
    for word in rest.split():
        if word.startswith("--") and not args:
            key, _sep, value = word[2:].partition("=")
            flags.setdefault(key.lower(), []).append(value)
        else:
            args.append(word)
    return flags, args


def parse_dockerfile(text: str) -> dict:
    """``{global_args, stages: [{image, name, platform}], copy_from: [...], mounts_from: [...]}``.

    ``global_args`` are the ARGs before the first FROM with their defaults (None when without one):
    the only variables a FROM line can use, besides the platform ARGs BuildKit predefines.
    """
    global_args = {}
    stages = []
    copy_from = []
    mounts_from = []
    for line in logical_lines(text):
        word, _sep, rest = line.partition(" ")
        instruction = word.upper()
        if instruction == "ARG" and not stages:
            for item in rest.split():
                name, sep, value = item.partition("=")
                global_args[name] = _unquote(value) if sep else None
        elif instruction == "FROM":
            flags, args = _flags_and_args(rest)
            if not args:
                raise BuildError(f"invalid Dockerfile line {line!r}: FROM needs an image")
            name = args[2] if len(args) >= 3 and args[1].lower() == "as" else ""
            stages.append({"image": args[0], "name": name, "platform": (flags.get("platform") or [""])[0]})
        elif instruction in ("COPY", "ADD"):
            flags, _args = _flags_and_args(rest)
            copy_from.extend(v for v in flags.get("from", []) if v)
        elif instruction == "RUN":
            flags, _args = _flags_and_args(rest)
            for mount in flags.get("mount", []):
                options = dict(part.partition("=")[::2] for part in mount.split(","))
                if options.get("from"):
                    mounts_from.append(options["from"])
    if not stages:
        raise BuildError("the Dockerfile has no FROM instruction: it cannot build an image")
    return {"global_args": global_args, "stages": stages, "copy_from": copy_from, "mounts_from": mounts_from}


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def substitute(text: str, variables: dict) -> str:
    """Dockerfile variable expansion: ``$V``, ``${V}``, ``${V:-default}``, ``${V:+alternative}``."""

    def repl(match):
        name = match.group(1) or match.group(4)
        value = variables.get(name) or ""
        if match.group(2) == ":-":
            return value or match.group(3)
        if match.group(2) == ":+":
            return match.group(3) if value else ""
        return value

    return _VAR_RE.sub(repl, text)


def platform_args(prefix: str, platform) -> dict:
    obj = parse_platform(platform)
    return {
        f"{prefix}PLATFORM": obj.oci,
        f"{prefix}OS": obj.os,
        f"{prefix}ARCH": obj.architecture,
        f"{prefix}VARIANT": obj.variant,
    }


def base_images(parsed: dict, build_args: dict, platforms: list, build_platform: str) -> list:
    """The external images the build reads, after ARG substitution for every target platform, sorted.

    Stage names and ``scratch`` are not images; ``COPY --from=<n>`` with a stage number is not either.
    """
    variables = {}
    for name, default in parsed["global_args"].items():
        variables[name] = build_args[name] if name in build_args else (default or "")
    variables.update(platform_args("BUILD", build_platform))
    found = set()
    for platform in platforms:
        scope = dict(variables, **platform_args("TARGET", platform))
        stage_names = set()
        for stage in parsed["stages"]:
            image = substitute(stage["image"], scope)
            if not image:
                raise BuildError(
                    f"FROM {stage['image']} expands to nothing: give the ARG a default or a build_args value"
                )
            if image.lower() not in stage_names and image.lower() != "scratch":
                found.add(image)
            if stage["name"]:
                stage_names.add(stage["name"].lower())
        for ref in parsed["copy_from"] + parsed["mounts_from"]:
            image = substitute(ref, scope)
            if image and not image.isdigit() and image.lower() not in stage_names and image.lower() != "scratch":
                found.add(image)
    return sorted(found)


def normalize_base(image: str, hub_registry: str) -> tuple:
    """``(registry reference, hub)`` for an image name as the engine reads it.

    An image whose first path component is not a host (no ``.`` or ``:``, not ``localhost``) is on the
    engine's default registry: it is looked up on ``hub_registry`` (the engine's mirror), with
    ``library/`` added to one-component names. Returns ``("", True)`` when there is no mirror to ask.
    """
    name = image
    first, _sep, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return name, False
    if not hub_registry:
        return "", True
    if not rest:
        name = "library/" + name
    return f"{hub_registry}/{name}", True


def mirror_host(url: str) -> str:
    """``http://127.0.0.1:5000/`` -> ``127.0.0.1:5000`` (a mirror as ``docker info`` prints it)."""
    text = (url or "").strip()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.split("/", 1)[0]


# --------------------------------------------------------------------------------------- fingerprint


def normalize_platform_list(platforms) -> list:
    """Normalised platform strings in the given order, duplicates dropped; unknown ones refused."""
    out = []
    for value in platforms or []:
        try:
            oci = parse_platform(value).oci
        except PlatformError as exc:
            raise BuildError(f"unknown platform {value!r}: {exc}") from None
        if oci not in out:
            out.append(oci)
    return out


def fingerprint(
    *,
    context: str,
    dockerfile: str,
    build_args: dict,
    target: str,
    platforms: list,
    labels: dict,
    annotations: dict,
    bases: dict,
    attestations: bool,
) -> str:
    """The digest over every input that decides the image: the same inputs give the same fingerprint."""
    doc = {
        "scheme": FINGERPRINT_SCHEME,
        "context": context,
        "dockerfile": "sha256:" + hashlib.sha256(dockerfile.encode("utf-8", "surrogateescape")).hexdigest(),
        "build_args": dict(sorted((build_args or {}).items())),
        "target": target or "",
        "platforms": sorted(platforms),
        "labels": dict(sorted((labels or {}).items())),
        "annotations": dict(sorted((annotations or {}).items())),
        "bases": dict(sorted((bases or {}).items())),
        "attestations": bool(attestations),
    }
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return "sha256:" + hashlib.sha256(body).hexdigest()


# --------------------------------------------------------------------------------------- strategy


def parse_engine_info(text: str) -> dict:
    """``docker info --format '{{json .}}'`` -> {image_store: containerd|classic, mirrors: [host...]}."""
    try:
        data = json.loads(text)
    except ValueError:
        raise BuildError(f"unexpected `docker info` output: {text.strip()[:200]!r}") from None
    status = data.get("DriverStatus") or []
    containerd = any(isinstance(pair, list) and len(pair) == 2 and pair[1] == CONTAINERD_SNAPSHOTTER for pair in status)
    mirrors = [mirror_host(m) for m in ((data.get("RegistryConfig") or {}).get("Mirrors") or []) if m]
    return {"image_store": "containerd" if containerd else "classic", "mirrors": mirrors}


def choose_strategy(requested: str, driver: str, image_store: str, platforms: list, platform_builders: dict) -> tuple:
    """``(strategy, reason)``: ``multi`` when the builder can export a multi-platform index, else ``per_platform``."""
    if requested == "per_platform":
        return "per_platform", "asked for"
    can_index = driver in INDEX_DRIVERS or (driver == "docker" and image_store == "containerd")
    if requested == "multi":
        if platform_builders:
            raise BuildError("platform_builders needs strategy per_platform (or auto): multi builds on one builder")
        if len(platforms) > 1 and not can_index:
            raise BuildError(
                f"strategy multi needs a builder that exports a multi-platform index, but the builder uses the"
                f" {driver} driver on an engine with the {image_store} image store: use strategy per_platform"
                " (or auto), a docker-container builder (fleet.multiarch.buildx_builder), or the containerd"
                " image store"
            )
        return "multi", "asked for"
    if platform_builders:
        return "per_platform", "platform_builders names a builder per platform"
    if len(platforms) == 1:
        return "multi", "a single platform is one build"
    if can_index:
        where = f"the {driver} driver" + (" on the containerd image store" if driver == "docker" else "")
        return "multi", f"{where} exports a multi-platform index"
    return "per_platform", f"the {driver} driver on the {image_store} image store builds one platform at a time"


def builder_supports(builder: dict, extra: list) -> list:
    """The platforms a builder's running nodes report, plus ``extra`` (what local emulation adds)."""
    out = []
    for node in builder.get("nodes") or []:
        for platform in node.get("platforms") or []:
            if platform not in out:
                out.append(platform)
    for platform in extra:
        if platform not in out:
            out.append(platform)
    return out


def unsupported(platforms: list, supported: list) -> list:
    known = set()
    for value in supported:
        try:
            known.add(parse_platform(value).oci)
        except PlatformError:
            continue
    return [p for p in platforms if p not in known]


# --------------------------------------------------------------------------------------- argv


def platform_slug(platform: str) -> str:
    """``linux/arm/v7`` -> ``linux-arm-v7`` (for tags and file names)."""
    return platform.replace("/", "-")


def build_tag(tag: str, fingerprint: str, platform: str = "") -> str:
    """The tag of this build alone that the docker driver pushes to (for ``platform``, or the index).

    The docker driver cannot push by digest, and buildx pushes its image once more with ``docker push NAME``
    and reports that push's digest: under a name shared with another build (the release tag, or one tag per
    platform), that build can have taken the name in the engine by then. A name made from the fingerprint
    belongs to builds of these inputs only. Tags are at most 128 characters: the tag is shortened, not the
    suffix.
    """
    suffix = "-build-" + fingerprint.rpartition(":")[2][:12] + (f"-{platform_slug(platform)}" if platform else "")
    return tag[: 128 - len(suffix)] + suffix


def secret_args(secrets: list) -> tuple:
    """``(argv, environ)`` for ``--secret``: values go through the child's environment, never the argv.

    Each item: ``{id, file}`` (``src=``), ``{id, env}`` (an environment variable of the module), or
    ``{id, value}`` (passed in a variable ``FLEET_BUILD_SECRET_<n>``).
    """
    argv = []
    environ = {}
    for pos, item in enumerate(secrets or []):
        where = f"secrets[{pos}]"
        if not isinstance(item, dict) or not item.get("id"):
            raise BuildError(f"{where}: each secret is a dict with id and one of file, env, value")
        given = [k for k in ("file", "env", "value") if item.get(k) is not None]
        if len(given) != 1:
            raise BuildError(f"{where} ({item['id']}): give exactly one of file, env, value")
        ident = str(item["id"])
        if "," in ident or "=" in ident:
            raise BuildError(f"{where}: the id {ident!r} may not contain ',' or '='")
        if given[0] == "file":
            path = os.path.expanduser(str(item["file"]))
            if not os.path.isfile(path):
                raise BuildError(f"{where} ({ident}): the file {path} does not exist")
            argv += ["--secret", f"id={ident},src={path}"]
        elif given[0] == "env":
            argv += ["--secret", f"id={ident},env={item['env']}"]
        else:
            var = f"FLEET_BUILD_SECRET_{pos}"
            environ[var] = str(item["value"])
            argv += ["--secret", f"id={ident},env={var}"]
    return argv, environ


def cache_arg(value: str) -> str:
    """A plain reference means a registry cache: ``127.0.0.1:5000/app:cache`` -> ``type=registry,ref=...``."""
    return value if "=" in value else f"type=registry,ref={value}"


def _pairs(flag: str, mapping, prefix: str = "") -> list:
    out = []
    for key, value in sorted((mapping or {}).items()):
        out += [flag, f"{prefix}{key}={value}"]
    return out


def _repeat(flag: str, values) -> list:
    out = []
    for value in values:
        out += [flag, value]
    return out


def build_argv(
    *,
    context: str,
    dockerfile: str,
    platforms: list,
    builder: str = "",
    output: str = "",
    load: bool = False,
    build_args: dict | None = None,
    target: str = "",
    labels: dict | None = None,
    annotations: dict | None = None,
    annotation_level: str = "index",
    secret_argv: list | None = None,
    ssh: list | None = None,
    cache_from: list | None = None,
    cache_to: list | None = None,
    pull: bool = False,
    no_cache: bool = False,
    attestations: bool = False,
    metadata_file: str = "",
) -> list:
    """The ``buildx build`` arguments (after ``docker``); the context comes last, after ``--``."""
    argv = ["buildx", "build", "--progress", "plain"]
    if builder:
        argv += ["--builder", builder]
    argv += ["--file", dockerfile, "--platform", ",".join(platforms)]
    argv += _pairs("--build-arg", build_args)
    if target:
        argv += ["--target", target]
    argv += _pairs("--label", labels)
    argv += _pairs("--annotation", annotations, prefix=f"{annotation_level}:")
    argv += list(secret_argv or [])
    argv += _repeat("--ssh", ssh or [])
    argv += _repeat("--cache-from", [cache_arg(c) for c in cache_from or []])
    argv += _repeat("--cache-to", [cache_arg(c) for c in cache_to or []])
    argv += [flag for flag, on in (("--pull", pull), ("--no-cache", no_cache)) if on]
    if attestations:
        argv += ["--provenance", "mode=min", "--sbom", "true"]
    else:
        argv += ["--provenance", "false", "--sbom", "false"]
    argv += _repeat("--output", [output] if output else [])
    argv += ["--load"] if load else []
    argv += _repeat("--metadata-file", [metadata_file] if metadata_file else [])
    argv += ["--", context]
    return argv


def image_output(name: str, push: bool, by_digest: bool) -> str:
    """The ``--output`` value of an image export: pushed by tag, by digest, or kept in the builder."""
    if by_digest:
        return f"type=image,name={name},push-by-digest=true,name-canonical=true,push={str(push).lower()}"
    return f"type=image,name={name},push={str(push).lower()}"


# --------------------------------------------------------------------------------------- results


def parse_metadata(text: str) -> dict:
    """``--metadata-file`` content -> {digest, media_type}: what the export wrote (manifest or index)."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        raise BuildError(f"the build metadata file is not JSON: {text[:200]!r}") from None
    descriptor = data.get("containerimage.descriptor") or {}
    return {
        "digest": data.get("containerimage.digest") or descriptor.get("digest") or "",
        "media_type": descriptor.get("mediaType", ""),
        "config_digest": data.get("containerimage.config.digest", ""),
    }


_STEP_RE = re.compile(r"^(?:\[([^\]]+)\] )?#(\d+) (.*)$")


def failing_step(log: str, tail: int = TAIL_LINES) -> dict:
    """From buildx ``--progress plain`` output: the step that failed, its output tail and the final error.

    Returns ``{step, tail, error, platform}`` (empty strings/list when nothing is recognised). Lines may
    carry a ``[platform] `` prefix, as the module writes the log of concurrent builds.
    """
    titles = {}
    output = {}
    failed = None
    error = ""
    for raw in (log or "").splitlines():
        line = raw.rstrip()
        match = _STEP_RE.match(line)
        if match:
            platform, num, rest = match.group(1) or "", match.group(2), match.group(3)
            key = (platform, num)
            if key not in titles:
                titles[key] = rest
                continue
            if rest.startswith("ERROR:"):
                failed = key
                error = error or rest[len("ERROR:") :].strip()
                continue
            text = re.sub(r"^\d+\.\d+ ", "", rest)  # "#6 0.318 output" -> "output"
            if not re.match(r"^(DONE|CANCELED|CACHED)\b", text):
                output.setdefault(key, []).append(text)
            continue
        stripped = re.sub(r"^\[[^\]]+\] ", "", line)
        if stripped.startswith("ERROR:"):
            error = stripped[len("ERROR:") :].strip()
    if failed is None:
        return {"step": "", "tail": [], "error": error, "platform": ""}
    return {
        "step": titles.get(failed, ""),
        "tail": output.get(failed, [])[-tail:],
        "error": error,
        "platform": failed[0],
    }


# A push the registry broke off: its 5xx answer, or a connection cut while the image was being pushed.
_PUSH_STEP_RE = re.compile(r"^(pushing |exporting to image|exporting manifest list)")
_SERVER_FAULT_RE = re.compile(
    r"\b(5\d\d(?: [A-Z][A-Za-z ]*[a-z])?)\b(?=$|[;:,)\s])|(connection reset by peer|unexpected EOF|broken pipe)",
)


def registry_push_fault(step: dict) -> str:
    """What the registry did when a build failed while pushing: ``500 Internal Server Error``, ``connection
    reset by peer``..., or ``""`` when the failure is anything else (a step of the Dockerfile, a refusal).

    ``step`` is :func:`failing_step`'s result. A self-hosted ``registry:2`` answers 500 now and then when two
    writers of one tag meet (the containerd image store pushes every manifest of an index under its tag at
    once); pushing again is safe, as the module pushes under a name of this build alone or by digest.
    """
    if not _PUSH_STEP_RE.match(step.get("step") or ""):
        return ""
    match = _SERVER_FAULT_RE.search(step.get("error") or "")
    if not match:
        return ""
    return match.group(1) or match.group(2)


def emulation_hint(log: str) -> bool:
    """Whether a failed build's output shows a missing emulator (``exec format error``)."""
    return "exec format error" in (log or "")


# --------------------------------------------------------------------------------------- the syntax line


def syntax_directive(text: str) -> str:
    """The frontend image of a ``# syntax=IMAGE`` parser directive at the top of a Dockerfile ('' when none)."""
    for line in (text or "").splitlines():
        match = _DIRECTIVE_RE.match(line.strip())
        if not match:
            break  # directives come before any other line, blank lines and comments included
        if match.group(1).lower() == "syntax":
            return match.group(2)
    return ""


def normalize_image(name: str) -> str:
    """An image name as the engine reads it: ``docker/dockerfile:1`` -> ``docker.io/docker/dockerfile:1``."""
    ref = name.strip()
    if ref.startswith("docker-image://"):
        ref = ref[len("docker-image://") :]
    first, _sep, rest = ref.partition("/")
    if not (rest and ("." in first or ":" in first or first == "localhost")):
        ref = "docker.io/" + (ref if rest else "library/" + ref)
    last = ref.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        ref += ":latest"
    return ref


_RESOLVE_RE = re.compile(r"^#(\d+) resolve image config for (\S+)$")
_METADATA_RE = re.compile(r"failed to resolve source metadata for (\S+?): (.*)$")


def frontend_failure(log: str, syntax: str) -> str:
    """The error BuildKit gave when it could not fetch the Dockerfile frontend that ``# syntax=`` names.

    ``log`` is buildx ``--progress plain`` output (lines may carry a ``[platform] `` prefix); ``syntax`` is
    what :func:`syntax_directive` read from the Dockerfile. BuildKit resolves that image in a step of its own
    (``#3 resolve image config for docker.io/docker/dockerfile:1`` then ``#3 ERROR: ...``; newer versions
    also end with ``failed to resolve source metadata for IMAGE: ...``) before it reads the Dockerfile.
    Returns the error text, '' when the output shows no such failure (or the Dockerfile has no syntax line).
    """
    if not syntax:
        return ""
    wanted = normalize_image(syntax)
    steps = set()
    for raw in (log or "").splitlines():
        line = re.sub(r"^\[[^\]]+\] ", "", raw.rstrip())
        match = _RESOLVE_RE.match(line)
        if match and normalize_image(match.group(2)) == wanted:
            steps.add(match.group(1))
            continue
        number, _sep, rest = line.partition(" ")
        if number[1:] in steps and number.startswith("#") and rest.startswith("ERROR:"):
            return rest[len("ERROR:") :].strip()
        match = _METADATA_RE.search(line)
        if match and normalize_image(match.group(1)) == wanted:
            return match.group(2).strip()
    return ""


def frontend_message(syntax: str, error: str) -> str:
    """What to tell the user when the frontend of the syntax line cannot be fetched, and what to do."""
    image = normalize_image(syntax)
    return (
        f"the Dockerfile starts with '# syntax={syntax}', so BuildKit first fetches the Dockerfile frontend image"
        f" {image}, and the builder cannot pull it ({error}). Mirror that image into a registry the builder"
        f" reaches (for example `skopeo copy --all docker://{image} docker://REGISTRY/{image.split('/', 1)[1]}`"
        " where its registry is reachable) and point the syntax line at the mirror"
        f" ('# syntax=REGISTRY/{image.split('/', 1)[1]}'), or drop the line to build with the builder's"
        " built-in Dockerfile frontend"
    )


# --------------------------------------------------------------------------------------- secret values

MASK = "********"
MIN_MASKED = 4  # shorter values would mask ordinary words of the log


def secret_values(secrets: list, environ=None, read_file=None) -> list:
    """The values of the build's secrets, each line on its own, longest first, for :func:`mask`.

    ``value`` items are the value itself, ``env`` items the variable's value in ``environ``, ``file`` items
    the file's content (read with ``read_file``); a secret the Dockerfile prints must not reach the log, the
    message or the result.
    """
    environ = os.environ if environ is None else environ
    found = set()
    for item in secrets or []:
        if not isinstance(item, dict):
            continue
        if item.get("value") is not None:
            text = str(item["value"])
        elif item.get("env") is not None:
            text = environ.get(str(item["env"]), "")
        elif item.get("file") is not None and read_file is not None:
            text = read_file(os.path.expanduser(str(item["file"])))
        else:
            continue
        found.update(line.strip() for line in text.splitlines() if len(line.strip()) >= MIN_MASKED)
    return sorted(found, key=len, reverse=True)


def mask(text: str, values: list) -> str:
    """``text`` with every secret value replaced by :data:`MASK`."""
    for value in values:
        text = text.replace(value, MASK)
    return text
