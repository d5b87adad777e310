# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""Managing a buildx builder and its nodes (the ``buildx_builder`` module).

:func:`desired_nodes` turns the options into nodes in the shape of a stored builder
(:func:`~._buildx.parse_instance`), :func:`plan` gives the ``buildx create`` / ``--append`` / ``--leave`` /
``rm`` steps from the stored builder to those nodes (pure, unit-tested on captured builders), and
:class:`BuilderManager` runs them through a :class:`~._buildx.DockerCLI`.
"""

from __future__ import annotations

import shlex

from ansible_collections.fleet.multiarch.plugins.module_utils import _buildx as bx
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import PlatformError, normalize_platform


def _opts(value) -> dict:
    out = {}
    for key, item in (value or {}).items():
        out[str(key)] = str(item).lower() if isinstance(item, bool) else str(item)
    return out


def desired_nodes(params: dict, stored) -> list:
    """The nodes asked for, in the shape of :func:`_buildx.parse_instance` nodes (endpoint None = any)."""
    flags = shlex.split(params["buildkitd_flags"] or "")
    common = _opts(params["driver_opts"])
    if params["nodes"]:
        raw = params["nodes"]
    else:
        # a single-node builder: keep the name of an existing single node, else buildx's default name
        existing = stored["nodes"][0]["name"] if stored and len(stored["nodes"]) == 1 else None
        raw = [{"name": existing, "endpoint": params["endpoint"], "platforms": params["platforms"], "driver_opts": {}}]
    out = []
    for index, node in enumerate(raw):
        name = node.get("name") or f"{params['name']}{index}"
        try:
            platforms = [normalize_platform(p) for p in node.get("platforms") or []]
        except PlatformError as exc:
            raise bx.BuildxError(f"node {name}: {exc}") from exc
        out.append(
            {
                "name": name,
                "endpoint": node.get("endpoint"),
                "platforms": platforms,
                "driver_opts": {**common, **_opts(node.get("driver_opts"))},
                "buildkitd_flags": flags,
                "buildkitd_config": params["buildkitd_config"],
            }
        )
    names = [n["name"] for n in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise bx.BuildxError(f"node names must be unique; repeated: {', '.join(duplicates)}")
    endpoints = [n["endpoint"] for n in out if n["endpoint"]]
    duplicates = sorted({e for e in endpoints if endpoints.count(e) > 1})
    if duplicates:
        raise bx.BuildxError(
            f"buildx allows one node per endpoint in a builder; repeated: {', '.join(duplicates)}"
            " (give each machine its own docker context or address, or fix the platforms of the one node)"
        )
    return out


def node_differences(wanted: dict, stored: dict, driver: str) -> list:
    """Which settings of a stored node differ from the wanted one (empty when equal)."""
    diffs = []
    # buildx stores a docker context by its name, but the `default` context by the address it points at
    addresses = (wanted["endpoint"], wanted.get("endpoint_address"))
    if wanted["endpoint"] is not None and stored["endpoint"] not in addresses:
        diffs.append("endpoint")
    if sorted(wanted["platforms"]) != sorted(stored["platforms"]):
        diffs.append("platforms")
    if wanted["driver_opts"] != stored["driver_opts"]:
        diffs.append("driver_opts")
    if wanted["buildkitd_flags"] != bx.user_flags(stored["buildkitd_flags"], driver):
        diffs.append("buildkitd_flags")
    if not bx.same_config(wanted["buildkitd_config"], stored["buildkitd_config"]):
        diffs.append("buildkitd_config")
    return diffs


def plan(name: str, driver: str, wanted: list, stored) -> list:
    """The steps from the stored builder to the wanted one: (action, node or None, reason).

    Actions: ``rm`` (the whole builder), ``create`` (first node), ``append``, ``leave``.
    """
    if stored is None:
        return [("create", wanted[0], "new builder")] + [("append", n, "new node") for n in wanted[1:]]
    if stored["driver"] != driver:
        steps = [("rm", None, f"driver {stored['driver']} -> {driver}")]
        return steps + plan(name, driver, wanted, None)
    by_name = {n["name"]: n for n in stored["nodes"]}
    reasons = {}  # wanted node name -> why it must be (re)appended; absent: it may stay where it is
    for node in wanted:
        old = by_name.get(node["name"])
        if old is None:
            reasons[node["name"]] = "new node"
            continue
        diffs = node_differences(node, old, driver)
        if diffs:
            if len(stored["nodes"]) == 1:  # buildx cannot remove the last node: recreate the builder
                why = f"node {node['name']}: {', '.join(diffs)} changed"
                return [("rm", None, why), *plan(name, driver, wanted, None)]
            reasons[node["name"]] = f"{', '.join(diffs)} changed"
    # The order matters (buildx sends a platform to the first node that has it) and `--append` adds at the end:
    # the longest prefix of the wanted order that the stored order already has stays, the rest is re-appended.
    wanted_names = [n["name"] for n in wanted]
    staying = [n["name"] for n in stored["nodes"] if n["name"] in wanted_names and n["name"] not in reasons]
    keep = 0
    while keep < len(staying) and staying[keep] == wanted_names[keep]:
        keep += 1
    tail = wanted[keep:]
    for node in tail:
        reasons.setdefault(node["name"], "node order")
    unwanted = [n for n in stored["nodes"] if n["name"] not in wanted_names]
    if keep:
        leaving = [node for node in tail if node["name"] in by_name]
        return (
            [("leave", node, reasons[node["name"]]) for node in leaving]
            + [("append", node, reasons[node["name"]]) for node in tail]
            + [("leave", n, "not in nodes") for n in unwanted]
        )
    # No stored node can stay first: one of them holds the builder while the first wanted node is appended.
    holder = [n for n in stored["nodes"] if n["name"] != wanted_names[0]][-1]
    steps = [("leave", n, "not in nodes") for n in unwanted if n["name"] != holder["name"]]
    steps += [
        ("leave", node, reasons[node["name"]])
        for node in wanted
        if node["name"] in by_name and node["name"] != holder["name"]
    ]
    steps.append(("append", wanted[0], reasons[wanted_names[0]]))
    steps.append(("leave", holder, reasons.get(holder["name"], "not in nodes")))
    steps += [("append", node, reasons[node["name"]]) for node in wanted[1:]]
    return steps


def _config_view(stored) -> dict:
    if not stored:
        return {}
    return {
        "driver": stored["driver"],
        "nodes": [
            {
                "name": n["name"],
                "endpoint": n["endpoint"],
                "platforms": n["platforms"],
                "driver_opts": n["driver_opts"],
                "buildkitd_flags": bx.user_flags(n["buildkitd_flags"], stored["driver"]),
                "buildkitd_config": n["buildkitd_config"],
            }
            for n in stored["nodes"]
        ],
    }


class BuilderManager:
    def __init__(self, module, cli: bx.DockerCLI):
        self.module = module
        self.cli = cli
        self.params = module.params
        self.name = self.params["name"]
        self.driver = self.params["driver"]
        self.result = {"changed": False, "name": self.name, "driver": self.driver, "current": False, "commands": []}
        self.diff = {"before": {}, "after": {}}

    def record(self, argv: list):
        self.result["commands"].append(" ".join(shlex.quote(a) for a in ["docker", *argv]))
        self.result["changed"] = True

    def run(self):
        if self.driver == "docker":
            return self.docker_driver()
        stored = self.cli.stored_builder(self.name)
        if stored is None and self.cli.inspect(self.name) is not None:
            raise bx.BuildxError(
                f"{self.name!r} is the builder of a docker context (docker driver), not a builder this module can"
                f" change with driver {self.driver}: choose another name, or set driver: docker"
            )
        self.diff["before"] = _config_view(stored)
        if self.params["state"] == "absent":
            return self.absent(stored)
        wanted = desired_nodes(self.params, stored)
        for node in wanted:
            if node["endpoint"] and "://" not in node["endpoint"]:
                node["endpoint_address"] = self.cli.context_host(node["endpoint"])
        for action, node, _reason in plan(self.name, self.driver, wanted, stored):
            self.apply(action, node)
        self.diff["after"] = {"driver": self.driver, "nodes": wanted}
        if not self.module.check_mode:
            self.diff["after"] = _config_view(self.cli.stored_builder(self.name))
        self.finish(wanted)

    def apply(self, action: str, node):
        create = {}  # the options of `buildx create` for this node, recorded and run alike
        if action == "rm":
            argv = ["buildx", "rm", "--", self.name]
        elif action == "leave":
            argv = ["buildx", "create", "--name", self.name, "--leave", "--node", node["name"]]
        else:
            create = {
                "node": node["name"],
                "driver": self.driver,
                "driver_opts": node["driver_opts"],
                "platforms": node["platforms"],
                "buildkitd_flags": node["buildkitd_flags"],
                "append": action == "append",
            }
            config_path = "<buildkitd_config>" if node["buildkitd_config"] is not None else None
            argv = bx.build_create_argv(self.name, node["endpoint"], buildkitd_config_path=config_path, **create)
        self.record(argv)
        if self.module.check_mode:
            return
        if action == "rm":
            self.cli.remove(self.name)
        elif action == "leave":
            self.cli.leave(self.name, node["name"])
        else:
            self.cli.create(self.name, node["endpoint"], buildkitd_config=node["buildkitd_config"], **create)

    def finish(self, wanted=None):
        exists = not (self.module.check_mode and self.cli.inspect(self.name) is None)
        current = self.cli.current_builder()
        if self.params["use"] and current != self.name:
            if self.driver == "docker":
                self.record(["context", "use", "--", self.name])
                if not self.module.check_mode:
                    self.cli.use_context(self.name)
            else:
                self.record(["buildx", "use", "--", self.name])
                if not self.module.check_mode:
                    self.cli.use(self.name)
            current = self.name if self.module.check_mode else self.cli.current_builder()
        self.result["current"] = current == self.name
        if not exists:  # check mode, builder not created: report what would exist
            self.result["nodes"] = [
                {**bx.empty_node(n["name"]), "endpoint": n["endpoint"] or "", "fixed_platforms": n["platforms"]}
                for n in wanted or []
            ]
            return
        before = self.cli.inspect(self.name)
        if self.params["bootstrap"] and not self.module.check_mode:
            self.bootstrap(before)
        else:
            self.result["nodes"] = before["nodes"] if before else []

    def bootstrap(self, before):
        try:
            after = self.cli.inspect(self.name, bootstrap=True)
        except bx.BuildxError as exc:
            stored = self.cli.stored_builder(self.name) or {"nodes": []}
            images = sorted({n["driver_opts"].get("image") or bx.DEFAULT_BUILDKIT_IMAGE for n in stored["nodes"]})
            opts = {"image": images[0]} if images else {}
            hint = bx.bootstrap_hint(self.driver, opts, exc.stderr)
            if len(images) > 1:
                hint += f" (images of the nodes: {', '.join(images)})"
            exc.args = (f"builder {self.name} could not start: {bx.last_error(exc.stderr) or exc} - {hint}",)
            self.result["nodes"] = before["nodes"] if before else []
            raise
        was = {n["name"]: n["status"] for n in (before or {}).get("nodes", [])}
        if any(n["status"] == "running" and was.get(n["name"]) != "running" for n in after["nodes"]):
            self.result["changed"] = True
            self.result["commands"].append(f"docker buildx inspect --bootstrap -- {shlex.quote(self.name)}")
        self.result["nodes"] = after["nodes"]

    def absent(self, stored):
        self.result["nodes"] = []
        if stored is not None:
            self.apply("rm", None)
        self.result["current"] = False

    def docker_driver(self):
        for option in ("endpoint", "platforms", "nodes", "driver_opts", "buildkitd_config", "buildkitd_flags"):
            if self.params[option]:
                raise bx.BuildxError(
                    f"{option} cannot be set with driver: docker - that builder is the docker context {self.name!r}"
                    " and uses the engine's own BuildKit; use driver: docker-container (or remote) to configure nodes"
                )
        if self.params["state"] == "absent":
            raise bx.BuildxError(
                f"a docker-driver builder is the docker context {self.name!r} itself and cannot be removed with"
                f" buildx; remove the context with `docker context rm {self.name}` if you mean to"
            )
        if not self.cli.context_exists(self.name):
            raise bx.BuildxError(
                f"there is no docker context {self.name!r} for a docker-driver builder: create it first, e.g."
                f" `docker context create {self.name} --docker host=ssh://user@host`, or use driver: docker-container"
            )
        found = self.cli.inspect(self.name)
        if found is not None and found["driver"] != "docker":
            raise bx.BuildxError(
                f"builder {self.name!r} exists with driver {found['driver']}, which hides the docker context of that"
                " name: remove it (state: absent with its driver) or choose the driver it has"
            )
        view = {"driver": "docker", "nodes": [{"name": self.name, "endpoint": self.name}]}
        self.diff["before"] = self.diff["after"] = view
        self.finish()
