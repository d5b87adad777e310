# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""The collection's single place for running the docker CLI and its buildx plugin.

:class:`DockerCLI` wraps ``AnsibleModule.run_command`` (argv lists only) with the connection settings
every docker-facing module takes (``docker_cli``, ``docker_host``, ``docker_context``, ``docker_config``,
see :data:`DOCKER_CLI_ARGS`). Everything that turns CLI output into data is a pure function tested on
captured real output: :func:`parse_version`, :func:`parse_inspect`, :func:`parse_ls_json`,
:func:`parse_ls_table`, :func:`parse_instance`. (Installing the plugin itself is ``_buildx_plugin``; managing a
builder is ``_buildx_builder``.)

Where builder settings come from: ``docker buildx inspect`` prints a builder's status and the platforms
its nodes report, but not its BuildKit configuration file and not every option in a form that can be
compared. buildx stores each builder as JSON in ``$DOCKER_CONFIG/buildx/instances/<name>``: that file
holds the configuration exactly as buildx will use it (driver options, daemon flags, the configuration
file, the fixed platforms), so :meth:`DockerCLI.stored_builder` reads it for comparisons, and
``inspect`` provides the live status.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import tempfile

try:  # Python 3.11+
    import tomllib as _toml
except ImportError:  # pragma: no cover - depends on the target's Python
    try:
        import tomli as _toml
    except ImportError:
        _toml = None

from ansible_collections.fleet.multiarch.plugins.module_utils._platform import (
    PlatformError,
    normalize_platform,
    platform_from_dict,
)

# Options shared by every module that runs the docker CLI (merge into the module's argument_spec).
DOCKER_CLI_ARGS = {
    "docker_cli": {"type": "path"},
    "docker_host": {"type": "str"},
    "docker_context": {"type": "str"},
    "docker_config": {"type": "path"},
}

DEFAULT_BUILDKIT_IMAGE = "moby/buildkit:buildx-stable-1"  # what buildx's docker-container driver pulls
DRIVERS = ("docker-container", "remote", "kubernetes", "docker")
# buildx adds this daemon flag to docker-container nodes by itself; it is not a user setting.
IMPLICIT_FLAGS = ("--allow-insecure-entitlement=network.host",)
CONFIG_FILE_KEY = "buildkitd.toml"


class BuildxError(Exception):
    """A docker/buildx command failed or printed something unexpected; the message says what to do."""

    def __init__(self, msg, cmd=None, rc=None, stdout="", stderr=""):
        super().__init__(msg)
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def to_result(self) -> dict:
        """Extra fail_json fields: the command and its output (never secrets: argv holds none)."""
        out = {}
        if self.cmd is not None:
            out.update(cmd=self.cmd, rc=self.rc, stdout=self.stdout, stderr=self.stderr)
        return out


# --------------------------------------------------------------------------------------------- parsers


def parse_version(text: str) -> dict:
    """``docker buildx version`` -> {version, revision, source}; version without a leading ``v``."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "buildx" in parts[0]:
            version = parts[1][1:] if parts[1].startswith("v") else parts[1]
            return {"source": parts[0], "version": version, "revision": parts[2] if len(parts) > 2 else ""}
    raise BuildxError(f"unexpected `buildx version` output: {text.strip()!r}")


def normalize_platforms(values) -> list:
    """Normalise platform strings where the collection knows them; keep others (``linux/ppc64``) as printed."""
    out = []
    for value in values or []:
        text = str(value).strip().rstrip("*").strip()
        if not text:
            continue
        try:
            text = normalize_platform(text)
        except PlatformError:
            pass
        if text not in out:
            out.append(text)
    return out


def _split_platforms(text: str):
    """``linux/amd64*, linux/386`` -> (all, fixed): a ``*`` marks a platform fixed by the user."""
    items = [p.strip() for p in text.split(",") if p.strip()]
    return normalize_platforms(items), normalize_platforms([p for p in items if p.endswith("*")])


def _parse_driver_opts(text: str) -> dict:
    return {m.group(1): m.group(2) for m in re.finditer(r'([^\s=]+)="((?:[^"\\]|\\.)*)"', text)}


def empty_node(name: str) -> dict:
    return {
        "name": name,
        "endpoint": "",
        "status": "",
        "buildkit_version": "",
        "platforms": [],
        "fixed_platforms": [],
        "driver_opts": {},
        "buildkitd_flags": [],
        "error": "",
    }


_NODE_FIELDS = {
    "Endpoint": ("endpoint", str),
    "Status": ("status", str),
    "BuildKit version": ("buildkit_version", str),
    "Driver Options": ("driver_opts", _parse_driver_opts),
    "BuildKit daemon flags": ("buildkitd_flags", shlex.split),
    "Error": ("error", str),
}


def parse_inspect(text: str) -> dict:
    """``docker buildx inspect NAME`` text -> {name, driver, last_activity, nodes: [...]}.

    Each node: name, endpoint, status, buildkit_version, platforms (all it reports), fixed_platforms
    (those set with ``--platform``), driver_opts, buildkitd_flags, error. Label blocks are skipped.
    """
    builder = {"name": "", "driver": "", "last_activity": "", "nodes": []}
    node = None
    in_nodes = False
    for raw in text.splitlines():
        key, sep, value = raw.partition(":")
        if not sep or raw.startswith((" ", "\t")):
            continue  # blank lines and indented label/GC-policy lines
        key, value = key.strip(), value.strip()
        if key == "Nodes":
            in_nodes = True
        elif not in_nodes:
            target = {"Name": "name", "Driver": "driver", "Last Activity": "last_activity"}.get(key)
            if target:
                builder[target] = value
        elif key == "Name":
            node = empty_node(value)
            builder["nodes"].append(node)
        elif node is not None and key == "Platforms":
            node["platforms"], node["fixed_platforms"] = _split_platforms(value)
        elif node is not None and key in _NODE_FIELDS:
            field, convert = _NODE_FIELDS[key]
            node[field] = convert(value)
    if not builder["name"]:
        raise BuildxError(f"unexpected `buildx inspect` output: {text.strip()[:200]!r}")
    return builder


def parse_ls_json(text: str) -> list:
    """``docker buildx ls --format json`` (one JSON object per line) -> builders as :func:`parse_inspect`.

    buildx 0.13 prints a builder's line once per node plus once: lines are de-duplicated by name.
    """
    builders = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line:
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise BuildxError(f"unexpected `buildx ls --format json` line: {line[:200]!r}") from exc
        if data.get("Name") in builders:
            continue
        nodes = []
        for raw in data.get("Nodes") or []:
            node = empty_node(raw.get("Name", ""))
            platforms = normalize_platforms(raw.get("Platforms"))
            node.update(
                endpoint=raw.get("Endpoint", ""),
                status=raw.get("Status", ""),
                buildkit_version=raw.get("Version", ""),
                platforms=platforms,
                driver_opts=dict(raw.get("DriverOpts") or {}),
                buildkitd_flags=list(raw.get("Flags") or []),
                error=raw.get("Err", "") or "",
            )
            if node["status"] != "running":
                node["fixed_platforms"] = list(platforms)  # an inactive node lists only its fixed ones
            nodes.append(node)
        builders[data.get("Name")] = {
            "name": data.get("Name", ""),
            "driver": data.get("Driver", ""),
            "last_activity": data.get("LastActivity", ""),
            "nodes": nodes,
        }
    return list(builders.values())


def parse_ls_table(text: str) -> list:
    """The builder names of ``docker buildx ls`` table output (older buildx without ``--format json``)."""
    names = []
    for line in text.splitlines()[1:]:
        if not line.strip() or line.startswith((" ", "\t")):
            continue  # node lines are indented
        name = line.split()[0].rstrip("*")
        if name not in names:
            names.append(name)
    return names


def parse_instance(data: dict) -> dict:
    """A stored builder (``$DOCKER_CONFIG/buildx/instances/NAME``) -> {name, driver, nodes: [...]}.

    Each node: name, endpoint, platforms (the fixed ones, normalised), driver_opts, buildkitd_flags,
    buildkitd_config (the configuration file buildx stores, or None).
    """
    nodes = []
    for raw in data.get("Nodes") or []:
        files = raw.get("Files") or {}
        config = files.get(CONFIG_FILE_KEY)
        nodes.append(
            {
                "name": raw.get("Name", ""),
                "endpoint": raw.get("Endpoint", ""),
                "platforms": [platform_from_dict(p).oci for p in raw.get("Platforms") or []],
                "driver_opts": {k: str(v) for k, v in (raw.get("DriverOpts") or {}).items()},
                "buildkitd_flags": list(raw.get("Flags") or []),
                "buildkitd_config": base64.b64decode(config).decode("utf-8") if config is not None else None,
            }
        )
    return {"name": data.get("Name", ""), "driver": data.get("Driver", ""), "nodes": nodes}


def select_builders(builders: list, names, current: str) -> tuple:
    """(builders to report, missing names) of :meth:`DockerCLI.list_builders`; each builder gets ``current``."""
    out = []
    for builder in builders:
        if names and builder["name"] not in names:
            continue
        out.append({**builder, "current": builder["name"] == current})
    found = {b["name"] for b in out}
    return out, [n for n in names or [] if n not in found]


def user_flags(flags, driver: str) -> list:
    """Daemon flags without the ones buildx adds by itself for a driver."""
    flags = list(flags or [])
    if driver == "docker-container":
        flags = [f for f in flags if f not in IMPLICIT_FLAGS]
    return flags


def same_config(wanted, stored):
    """Whether two BuildKit configuration files mean the same; buildx rewrites the TOML it stores.

    Returns True/False; compares parsed TOML when a parser is available (Python 3.11+ or tomli), else
    the text with blank lines, comments and indentation removed.
    """
    if wanted is None or stored is None:
        return wanted is None and stored is None
    if _toml is not None:
        try:
            return _toml.loads(wanted) == _toml.loads(stored)
        except ValueError:
            pass

    def lines(text):
        return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]

    return lines(wanted) == lines(stored)


def build_create_argv(
    name: str,
    endpoint=None,
    *,
    node=None,
    driver=None,
    driver_opts=None,
    platforms=None,
    buildkitd_flags=None,
    buildkitd_config_path=None,
    append=False,
    use=False,
    bootstrap=False,
) -> list:
    """The ``buildx create`` arguments (after ``docker``) for one node of a builder."""
    argv = ["buildx", "create", "--name", name]
    if append:
        argv.append("--append")
    if node:
        argv += ["--node", node]
    if driver:
        argv += ["--driver", driver]
    for key, value in sorted((driver_opts or {}).items()):
        argv += ["--driver-opt", f"{key}={value}"]
    for platform in platforms or []:
        argv += ["--platform", platform]
    if buildkitd_flags:
        argv += ["--buildkitd-flags", shlex.join(buildkitd_flags)]
    if buildkitd_config_path:
        argv += ["--buildkitd-config", buildkitd_config_path]
    if use:
        argv.append("--use")
    if bootstrap:
        argv.append("--bootstrap")
    if endpoint:
        argv += ["--", endpoint]
    return argv


def last_error(text: str) -> str:
    """The last ``ERROR: ...`` line of docker/buildx output (without the prefix), else its last line."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    errors = [ln[len("ERROR:") :].strip() for ln in lines if ln.startswith("ERROR:")]
    if errors:
        return errors[-1]
    return lines[-1] if lines else ""


# what the engine says when it cannot pull the BuildKit image (a missing tag, a registry it cannot reach)
_PULL_FAILURES = ("pulling image", "manifest", "resolve reference", "pull access denied", "dial tcp", "no such host")


def not_running(builder: dict) -> list:
    """The nodes of a builder (:func:`parse_inspect`) that are not running: never booted, stopped or broken.

    Such a node reports only the platforms fixed with ``--platform``; ``buildx build`` boots it first.
    """
    if builder.get("driver") == "docker":
        return []  # the engine's own BuildKit: no node to boot
    return [n for n in builder.get("nodes") or [] if n.get("status") != "running"]


def boot_failure(builder: dict, stderr: str) -> str:
    """The message for a builder whose nodes did not boot: what state they were in, why, and what to do."""
    name = builder.get("name", "")
    nodes = not_running(builder) or builder.get("nodes") or [{}]
    states = sorted({n.get("status") or "not running" for n in nodes})
    state = "inactive (never booted)" if states == ["inactive"] else " / ".join(states)
    images = sorted({(n.get("driver_opts") or {}).get("image") or DEFAULT_BUILDKIT_IMAGE for n in nodes})
    hint = bootstrap_hint(builder.get("driver", ""), {"image": images[0]}, stderr)
    if len(images) > 1:
        hint += f" (images of the nodes: {', '.join(images)})"
    return (
        f"the builder {name} is {state} and could not boot: {last_error(stderr) or 'no reason given'}; {hint}."
        f" Then boot it with `docker buildx inspect --bootstrap {name}`, or fleet.multiarch.buildx_builder with"
        " bootstrap: true"
    )


def bootstrap_hint(driver: str, driver_opts: dict, stderr: str) -> str:
    """The advice added to a failed bootstrap: which image could not be pulled and how to use a mirror."""
    if driver != "docker-container":
        return "check that the BuildKit endpoint of every node is reachable"
    image = (driver_opts or {}).get("image") or DEFAULT_BUILDKIT_IMAGE
    pulling = any(sign in (stderr or "") for sign in _PULL_FAILURES)
    reason = f"the BuildKit image {image} could not be pulled" if pulling else f"BuildKit image: {image}"
    return (
        f"{reason}; the docker-container driver runs BuildKit from that image on each node's engine."
        " Push the image to a registry the engines can reach (or load it into each engine) and set"
        " driver_opts.image to it, e.g. driver_opts: {image: 'registry.example.com/moby/buildkit:buildx-stable-1'}"
    )


# --------------------------------------------------------------------------------------------- runner


class DockerCLI:
    """Runs ``docker`` (and ``docker buildx``) with argv lists through ``module.run_command``.

    ``docker_host`` / ``docker_context`` / ``docker_config`` are passed as DOCKER_HOST / DOCKER_CONTEXT /
    DOCKER_CONFIG; unset ones keep the environment the module runs in.
    """

    def __init__(self, module, docker_cli=None, docker_host=None, docker_context=None, docker_config=None):
        self.module = module
        self.docker_host = docker_host
        self.docker_context = docker_context
        self.docker_config = docker_config
        self._docker = docker_cli
        self._ls_json = None

    @classmethod
    def from_module(cls, module):
        p = module.params
        return cls(
            module,
            docker_cli=p.get("docker_cli"),
            docker_host=p.get("docker_host"),
            docker_context=p.get("docker_context"),
            docker_config=p.get("docker_config"),
        )

    @property
    def docker(self) -> str:
        if not self._docker:
            self._docker = self.module.get_bin_path("docker")
            if not self._docker:
                raise BuildxError(
                    "the docker CLI was not found on PATH: install it (on Debian the docker-cli package)"
                    " or set docker_cli to its path"
                )
        return self._docker

    @property
    def environ(self) -> dict:
        env = {}
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        if self.docker_context:
            env["DOCKER_CONTEXT"] = self.docker_context
        if self.docker_config:
            env["DOCKER_CONFIG"] = self.docker_config
        return env

    @property
    def config_dir(self) -> str:
        """The docker CLI configuration directory these commands use."""
        return self.docker_config or os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")

    def run(self, args, *, check=True, what=None, data=None):
        """Run ``docker ARGS``; return (rc, stdout, stderr). With check, a non-zero exit raises BuildxError."""
        argv = [self.docker, *args]
        rc, out, err = self.module.run_command(argv, environ_update=self.environ, data=data)
        if check and rc != 0:
            last = last_error(err) or last_error(out) or f"exit code {rc}"
            raise BuildxError(f"{what or ' '.join(argv[:3])} failed: {last}", cmd=argv, rc=rc, stdout=out, stderr=err)
        return rc, out, err

    def run_streaming(self, args, on_output, *, environ=None):
        """Run ``docker ARGS`` and hand every chunk of output to ``on_output(stream, chunk)`` as it arrives.

        For long commands (builds) whose output must reach a log file while they run. ``stream`` is
        ``"out"`` or ``"err"``, ``chunk`` is bytes. Arguments are passed as given (no ``~`` or ``$VAR``
        expansion); ``environ`` adds variables for the child only (secret values stay out of argv).
        Returns (rc, stdout, stderr) and does not raise on a non-zero exit.
        """

        def tee(proc):
            proc.stdout = _TeePipe(proc.stdout, "out", on_output)
            proc.stderr = _TeePipe(proc.stderr, "err", on_output)

        return self.module.run_command(
            [self.docker, *args],
            environ_update={**self.environ, **(environ or {})},
            expand_user_and_vars=False,
            before_communicate_callback=tee,
        )

    # buildx -------------------------------------------------------------------------------------

    def version(self) -> dict:
        rc, out, err = self.run(["buildx", "version"], check=False)
        if rc != 0:
            raise BuildxError(
                "the docker buildx plugin is not available: install it with fleet.multiarch.buildx_plugin"
                f" ({(err or out).strip()})",
                cmd=[self.docker, "buildx", "version"],
                rc=rc,
                stdout=out,
                stderr=err,
            )
        return parse_version(out)

    def inspect(self, name=None, bootstrap=False):
        """A builder as :func:`parse_inspect` returns it; None when no builder has that name."""
        args = ["buildx", "inspect"]
        if bootstrap:
            args.append("--bootstrap")
        if name:
            args += ["--", name]
        rc, out, err = self.run(args, check=False)
        if rc != 0:
            if name and "no builder" in err and "found" in err:
                return None
            raise BuildxError(
                f"docker buildx inspect {name or ''} failed: {last_error(err) or last_error(out)}",
                cmd=[self.docker, *args],
                rc=rc,
                stdout=out,
                stderr=err,
            )
        return parse_inspect(out)

    def current_builder(self) -> str:
        """The name of the builder ``docker buildx build`` uses now."""
        return self.inspect()["name"]

    def stored_builder(self, name: str):
        """The stored configuration of a builder (:func:`parse_instance`), or None (none, or docker driver)."""
        path = os.path.join(self.config_dir, "buildx", "instances", name)
        try:
            with open(path, encoding="utf-8") as handle:
                return parse_instance(json.load(handle))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise BuildxError(f"cannot read the stored builder {path}: {exc}") from exc

    def list_builders(self) -> list:
        """Every builder with its nodes; ``ls --format json`` where supported, else ``ls`` + ``inspect``."""
        if self._ls_json is not False:
            rc, out, err = self.run(["buildx", "ls", "--format", "json"], check=False)
            if rc == 0:
                self._ls_json = True
                return parse_ls_json(out)
            if "unknown flag" not in err:
                raise BuildxError(
                    f"docker buildx ls failed: {last_error(err)}",
                    cmd=[self.docker, "buildx", "ls"],
                    rc=rc,
                    stdout=out,
                    stderr=err,
                )
            self._ls_json = False
        out = self.run(["buildx", "ls"], what="docker buildx ls")[1]
        builders = []
        for name in parse_ls_table(out):
            found = self.inspect(name)
            if found is not None:
                builders.append(found)
        return builders

    def create(self, name, endpoint=None, *, buildkitd_config=None, **kwargs):
        """``docker buildx create`` (see :func:`build_create_argv`); buildkitd_config is file content."""
        tmpdir = None
        try:
            config_path = None
            if buildkitd_config is not None:
                tmpdir = tempfile.mkdtemp(prefix="fleet-buildx-")
                config_path = os.path.join(tmpdir, CONFIG_FILE_KEY)
                with open(config_path, "w", encoding="utf-8") as handle:
                    handle.write(buildkitd_config)
            argv = build_create_argv(name, endpoint, buildkitd_config_path=config_path, **kwargs)
            return self.run(argv, what=f"docker buildx create --name {name}")
        finally:
            if tmpdir:
                shutil.rmtree(tmpdir, ignore_errors=True)

    def leave(self, name, node):
        return self.run(
            ["buildx", "create", "--name", name, "--leave", "--node", node], what="docker buildx create --leave"
        )

    def remove(self, name):
        return self.run(["buildx", "rm", "--", name], what=f"docker buildx rm {name}")

    def use(self, name):
        return self.run(["buildx", "use", "--", name], what=f"docker buildx use {name}")

    # contexts -----------------------------------------------------------------------------------

    def context_exists(self, name: str) -> bool:
        if name == "default":
            return True
        return self.run(["context", "inspect", "--", name], check=False)[0] == 0

    def context_host(self, name: str):
        """The engine address a docker context points at (what buildx stores for a node), or None."""
        argv = ["context", "inspect", "--format", "{{.Endpoints.docker.Host}}", "--", name]
        rc, out = self.run(argv, check=False)[:2]
        host = out.strip() if rc == 0 else ""
        return host or None

    def use_context(self, name: str):
        return self.run(["context", "use", "--", name], what=f"docker context use {name}")


class _TeePipe:
    """A child's pipe as ``run_command`` reads it, passing every chunk read to a callback too."""

    def __init__(self, pipe, stream, on_output):
        self.pipe = pipe
        self.stream = stream
        self.on_output = on_output

    def fileno(self):
        return self.pipe.fileno()

    def read(self, size=-1):
        chunk = self.pipe.read(size)
        if chunk:
            self.on_output(self.stream, chunk)
        return chunk

    def close(self):
        self.on_output(self.stream, b"")  # end of stream: flush a last partial line
        self.pipe.close()
