# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""The container rollout manager: deploys one container, or rolls it back, through an engine client.

:func:`run` is the one place a rollout ends: ``exit_json`` with the result, or ``fail_json`` for a
:class:`RolloutFailed` raised by any step (and for the errors of the registry, engine and option layers).
:class:`RolloutManager` decides with ``_rollout``'s pure functions, waits with ``_waiter`` and records
with ``_history``. Both ways of replacing a container (a new deployment, or a rollback to the kept one)
go through :meth:`RolloutManager.replace`, in either update order.

Names: a *container* is an engine object (``incoming``, ``outgoing``, ``kept``); a *deployment* is what
one runs, read from its labels (``deployment_of``); the *target* is the deployment wanted; an *entry* is a
history record.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass

from ansible_collections.fleet.multiarch.plugins.module_utils._binfmt import BinfmtMisc, can_run, runnable_platforms
from ansible_collections.fleet.multiarch.plugins.module_utils._device import DeviceReader, gather
from ansible_collections.fleet.multiarch.plugins.module_utils._engine import (
    NO_SPACE,
    EngineError,
    PullTimeout,
    docker_host,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._history import (
    IN_PROGRESS,
    History,
    HistoryError,
    default_path,
    new_record,
    now_text,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._manifest import ManifestError, describe, match_platform
from ansible_collections.fleet.multiarch.plugins.module_utils._platform import PlatformError, parse_platform
from ansible_collections.fleet.multiarch.plugins.module_utils._reference import RegistryError, parse_reference
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import ClientPool
from ansible_collections.fleet.multiarch.plugins.module_utils._rollout import (
    RolloutError,
    bound_host_ports,
    config_hash,
    create_kwargs,
    deployment_labels,
    deployment_of,
    desired_config,
    diff_view,
    expected_digests,
    fixed_host_ports,
    image_bytes,
    image_name,
    log_tail,
    next_name,
    no_platform_message,
    not_deployed_message,
    older_name,
    plan,
    previous_name,
    start_first_conflict,
    unexpected_digest_message,
    unrunnable_message,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._waiter import Waiter, engine_failure

NO_RESTART = {"Name": "no"}


class RolloutFailed(Exception):
    """The task fails with this message; raised from any step, turned into ``fail_json`` only by :func:`run`."""


# What the layers below raise for bad options, an unreachable registry or engine, or state that cannot be read;
# the manager raises them again as RolloutFailed, with their message.
LAYER_ERRORS = (RolloutError, RegistryError, ManifestError, PlatformError, EngineError, ValueError)


def run(module, make_engine) -> None:
    """The one place a rollout ends: build the engine client with ``make_engine()``, deploy or roll back, and
    leave with ``exit_json``, or with ``fail_json`` (and the result so far) for a :class:`RolloutFailed`."""
    manager = None
    try:
        try:
            engine = make_engine()
        except EngineError as exc:
            raise RolloutFailed(str(exc)) from exc
        manager = RolloutManager(module, engine)
        result = manager.run()
    except RolloutFailed as exc:
        module.fail_json(msg=str(exc), **(manager.finish() if manager is not None else {}))
    except Exception as exc:
        module.fail_json(msg=f"unexpected error: {exc.__class__.__name__}: {exc}", exception=traceback.format_exc())
    module.exit_json(**result)


class EngineDeviceReader(DeviceReader):
    """The device, with the engine's architecture read through the Engine API instead of the Docker CLI."""

    def __init__(self, module, engine):
        super().__init__(module)
        self.engine = engine

    def docker_version(self):
        return self.engine.version_json()

    def binfmt(self) -> tuple:
        """(entries, status enabled) of binfmt_misc: the QEMU emulators this device has registered."""
        kernel = BinfmtMisc(self.module.run_command)
        return kernel.entries(), kernel.status_enabled()


def resolve(client, ref, platform: str) -> tuple:
    """``(digest, matched platform)`` of the manifest a ``platform`` host pulls for ``ref``."""
    fetched, entries = describe(client, ref)
    if fetched is None:
        raise RolloutFailed(
            f"{ref} does not exist in the registry; check the repository and tag, and that it was pushed"
        )
    chosen = match_platform(entries, platform)
    if chosen is None:
        platforms = [e.platform_str for e in entries if not e.attestation]
        raise RolloutFailed(no_platform_message(str(ref), platform, platforms))
    return chosen.digest, chosen.platform_str


def restart_policy_of(attrs: dict) -> dict:
    policy = (attrs.get("HostConfig") or {}).get("RestartPolicy") or {}
    return {"Name": policy.get("Name") or "no", "MaximumRetryCount": policy.get("MaximumRetryCount") or 0}


def log_text(logs: list, heading: str, empty: str = "") -> str:
    """The end of a failure message: the last log lines under ``heading``, or ``empty`` without any."""
    if not logs:
        return empty
    return f" Last {len(logs)} {heading}:\n" + "\n".join(logs)


@dataclass
class Swap:
    """One replacement of the container called ``name``: ``incoming`` takes the place of ``outgoing`` (None
    when nothing runs, ``outgoing_deployment`` what it runs).

    A deployment (``created``) brings a container just created as ``<name>-next``; a rollback brings the one
    kept as ``<name>-previous``, with ``incoming_policy`` to restore once it has the name.
    """

    incoming: object
    outgoing: object
    outgoing_deployment: dict | None
    target: dict
    created: bool
    incoming_policy: dict | None = None
    # A deployment's previous container, set aside as <name>-older during a stop-first swap.
    kept: object = None
    # A deployment's outgoing restart policy, restored by an automatic rollback.
    outgoing_policy: dict | None = None


class RolloutManager:
    """Deploys (``state=started``) or rolls back (``state=rolled_back``) the container ``name`` through ``engine``."""

    def __init__(self, module, engine, clock=time.monotonic, sleep=time.sleep):
        self.module = module
        self.params = module.params
        self.engine = engine
        self.clock = clock
        self.name = self.params["name"]
        self.start_first = self.params.get("update_order") == "start-first"
        self.waiter = Waiter(engine, self.params, clock, sleep)
        self.history = History(
            self.params.get("history_file") or default_path(self.name), self.params["history_size"], module.warn
        )
        self.started = clock()
        self.result = {
            "changed": False,
            "action": "none",
            "container": {"name": self.name, "id": ""},
            "image": "",
            "reference": "",
            "platform": "",
            "digest_before": "",
            "digest_after": "",
            "previous": None,
            "health": None,
            "rolled_back": False,
            "seconds": 0.0,
            "pull_seconds": 0.0,
            "swap_seconds": 0.0,
            "history_file": self.history.path,
            "recovered": None,
        }
        # The swap of an earlier task that this one found interrupted and undid (:meth:`recover`).
        self.recovered = None
        # Whether this task's own swap has begun (its IN_PROGRESS record written) and not ended.
        self.swap_open = False

    def run(self) -> dict:
        """Deploy or roll back: the result. Every expected failure is a :class:`RolloutFailed`."""
        try:
            return self.deploy() if self.params["state"] == "started" else self.rollback()
        except LAYER_ERRORS as exc:
            message = str(exc)
            if self.swap_open:
                message += (
                    f". The swap stopped in its middle; its record in {self.history.path} says so, and the next run"
                    " of this task puts back what ran before it"
                )
            raise RolloutFailed(message) from exc

    # ---- helpers

    def finish(self) -> dict:
        self.result["seconds"] = round(self.clock() - self.started, 3)
        return self.result

    def device_platform(self) -> str:
        """The platform to deploy: the device's own, or the forced ``platform`` when the device can run it."""
        reader = EngineDeviceReader(self.module, self.engine)
        if not self.params.get("platform"):
            return gather(reader)["platform"]
        wanted = parse_platform(self.params["platform"]).oci
        # The emulators of an engine elsewhere (docker_host tcp://...) cannot be read from here.
        if docker_host(self.params.get("docker_host")).startswith("unix://"):
            try:
                facts = gather(reader)
            except PlatformError:
                return wanted  # a device that cannot be told is not refused
            device = facts["platform"]
            native, emulated = runnable_platforms(device, *reader.binfmt(), machine=facts["machine"])
            if not can_run(wanted, device, native + emulated):
                raise RolloutFailed(unrunnable_message(wanted, device, native, emulated))
        return wanted

    def auth_config(self):
        if self.params.get("username") and self.params.get("password"):
            return {"username": self.params["username"], "password": self.params["password"]}
        return None

    def drop(self, name: str) -> None:
        """Remove the container called ``name``, if there is one (a leftover of an interrupted run)."""
        stale = self.engine.container(name)
        if stale is not None:
            self.engine.remove(stale)

    def previous_info(self) -> dict | None:
        kept = self.engine.container(previous_name(self.name))
        if kept is None:
            return None
        kept_deployment = deployment_of(kept.attrs)
        return {"name": kept_deployment["name"], "digest": kept_deployment["digest"]}

    def take_name(self, container, policy: dict | None) -> None:
        """Give ``container`` the name, and ``policy`` (when there is one) as its restart policy."""
        self.engine.rename(container, self.name)
        if policy:
            self.engine.set_restart_policy(container, policy)

    def promote(self, container, policy: dict | None) -> dict:
        """Give ``container`` the name back, restore its restart policy, start it, check it: its health."""
        try:
            self.take_name(container, policy)
        except EngineError as exc:
            return engine_failure(exc)
        return self.waiter.start_and_wait(container)

    def write(
        self,
        target: dict,
        outcome: str,
        health: dict | None,
        *,
        previous: dict | None = None,
        detail: str = "",
        swap: dict | None = None,
    ) -> None:
        """Append the record of this task's action and its ``outcome`` to the history."""
        entry = new_record(
            when=now_text(),
            name=self.name,
            action=self.result["action"],
            result=outcome,
            reference=target.get("reference", ""),
            digest=target.get("digest", ""),
            previous_digest=(previous or {}).get("digest", ""),
            platform=target.get("platform", ""),
            config_hash=target.get("config_hash", ""),
            health=health,
            seconds=self.clock() - self.started,
            detail=detail or (health or {}).get("detail", ""),
        )
        if target.get("previous_restart_policy"):
            entry["previous_restart_policy"] = target["previous_restart_policy"]
        if swap is not None:
            entry["swap"] = swap
        self.history.append(entry)
        self.swap_open = outcome == IN_PROGRESS

    def keep_logs(self, failed) -> list:
        """The ``failed`` container's last ``log_lines`` log lines, kept in the result (read before it goes)."""
        lines = self.params["log_lines"]
        logs = log_tail(self.engine.logs(failed, lines), lines)
        self.result["logs"] = logs
        return logs

    def fail(self, target: dict, outcome: str, health: dict, message: str, *, previous: dict | None = None):
        """The one way a step that started a container ends when it is not healthy: once what could be undone is
        (and the logs kept, :meth:`keep_logs`), write the history record with ``outcome`` and raise."""
        self.write(target, outcome, health, previous=previous)
        raise RolloutFailed(message)

    def deploy_failure(self, doing: str, target: dict, health: dict, logs: list, restored, *, untouched=None) -> str:
        """The message of a deployment (or a start) whose container did not become healthy."""
        what = {"healthy": "became healthy", "timeout": "did not become healthy in time"}.get(
            health["status"], "failed"
        )
        msg = (
            f"{doing} {self.name} from {target['reference']} ({target['digest']} for {target['platform']}) failed:"
            f" the new container {what} ({health['detail']})."
        )
        if untouched is not None:
            state = "still runs" if deployment_of(untouched.attrs)["running"] else "is as it was (stopped)"
            msg += f" The container that ran before was not stopped (update_order start-first) and {state}."
        elif restored is None:
            msg += " There was no previous container to restore."
        elif restored["status"] == "healthy":
            before = self.result["digest_after"] or "not deployed by this module"
            msg += f" Rolled back: the previous container ({before}) runs again and is healthy."
        else:
            msg += f" Rolled back, but the previous container is not healthy either ({restored['detail']})."
        return msg + log_text(logs, "log lines of the new container", " The new container logged nothing.")

    # ---- the replace path, for a deployment and a rollback, in either update order

    def replace(self, swap: Swap) -> None:
        """Put ``swap.incoming`` in the place of ``swap.outgoing``, in ``update_order``; on failure undo and raise.

        The outgoing container ends as ``<name>-previous``, stopped, with restart policy ``no``.

        Before the first change an :data:`IN_PROGRESS` record with the ids of the containers involved is written
        (on disk before anything moves); how the swap ends takes its place. A swap cut short - the device lost
        power, the engine or this task went away - leaves it, and the next task undoes the swap (:meth:`recover`).
        """
        self.journal(swap)
        # Where the outgoing container waits while the names move: a created container comes from <name>-next, so
        # the outgoing one goes straight to <name>-previous; the kept one comes from there, so it waits at -next.
        parking = previous_name(self.name) if swap.created else next_name(self.name)
        if self.start_first and swap.outgoing is not None:
            health = self.swap_start_first(swap, parking)
        else:
            health = self.swap_stop_first(swap, parking)
        if swap.kept is not None:
            self.engine.remove(swap.kept)
        self.report_incoming(swap)
        self.write(swap.target, "ok", health, previous=swap.outgoing_deployment)

    def swap_stop_first(self, swap: Swap, parking: str) -> dict:
        """The names move while the outgoing container still serves; then it loses its restart policy (so that
        the engine cannot start it beside the incoming one), stops, and the incoming one starts - the window in
        which the application does not answer - and the incoming one is checked. Also the way when nothing runs.

        The outgoing container keeps its restart policy until just before it stops: the device loses power
        before that, and the engine starts it again when the device boots."""
        engine, incoming, outgoing = self.engine, swap.incoming, swap.outgoing
        if outgoing is not None:
            self.note_outgoing_policy(swap)
            self.set_aside(swap, parking)
        try:
            self.take_name(incoming, swap.incoming_policy)
            begin = self.clock()
            if outgoing is not None:
                engine.set_restart_policy(outgoing, NO_RESTART)
                engine.stop(outgoing, self.params["stop_timeout"])
            engine.start(incoming)
            self.result["swap_seconds"] = round(self.clock() - begin, 3)
            health = self.waiter.wait(incoming)
        except EngineError as exc:
            health = engine_failure(exc)
        if outgoing is not None:
            self.unpark(swap, parking)
        self.result["health"] = health
        self.report_incoming(swap)  # a rollback that fails reports the container it brought back
        if health["status"] != "healthy":
            self.abandon(swap, health)
        return health

    def swap_start_first(self, swap: Swap, parking: str) -> dict:
        """The incoming container starts beside the outgoing one, which is not touched until the incoming one is
        healthy; then the names move and the outgoing one stops."""
        engine, incoming, outgoing = self.engine, swap.incoming, swap.outgoing
        health = self.waiter.start_and_wait(incoming)
        self.result["health"] = health
        if health["status"] != "healthy":
            self.abandon(swap, health)
        begin = self.clock()
        if swap.created:
            self.drop(previous_name(self.name))
        self.note_outgoing_policy(swap)
        engine.set_restart_policy(outgoing, NO_RESTART)
        engine.rename(outgoing, parking)
        self.take_name(incoming, swap.incoming_policy)
        engine.stop(outgoing, self.params["stop_timeout"])
        self.unpark(swap, parking)
        self.result["swap_seconds"] = round(self.clock() - begin, 3)
        return health

    def unpark(self, swap: Swap, parking: str) -> None:
        """The outgoing container, once the incoming one has left ``<name>-previous``, takes that name."""
        if parking != previous_name(self.name):
            self.engine.rename(swap.outgoing, previous_name(self.name))

    def report_incoming(self, swap: Swap) -> None:
        """The result names the incoming container as the one called ``name``, and what is kept now."""
        self.result["container"]["id"] = swap.incoming.id
        if not swap.created:
            self.result["rolled_back"] = True
        self.result["previous"] = self.previous_info()

    def note_outgoing_policy(self, swap: Swap) -> None:
        """A deployment records the outgoing container's restart policy (for an automatic rollback, and in the
        history for a rollback on demand of a container whose labels lack it)."""
        if swap.created:
            swap.outgoing_policy = restart_policy_of(swap.outgoing.attrs)
            swap.target["previous_restart_policy"] = swap.outgoing_policy

    def set_aside(self, swap: Swap, parking: str) -> None:
        """Before a stop-first swap: free the name, and keep a deployment's previous container aside (as
        ``<name>-older``) until the incoming one is healthy."""
        if swap.created:
            swap.kept = self.engine.container(previous_name(self.name))
            if swap.kept is not None:
                self.drop(older_name(self.name))
                self.engine.rename(swap.kept, older_name(self.name))
        self.engine.rename(swap.outgoing, parking)

    def abandon(self, swap: Swap, health: dict) -> None:
        """The incoming container is not healthy: keep its logs, undo what the update order allows, and fail.

        A created container is removed; with stop-first the outgoing one gets the name back and is started again
        (with start-first it was never stopped). A kept container that fails in a rollback is stopped again with
        start-first; with stop-first it keeps the name, and the outgoing one stays as ``<name>-previous``.
        """
        engine, name, target = self.engine, self.name, swap.target
        incoming, outgoing, before = swap.incoming, swap.outgoing, swap.outgoing_deployment
        start_first = self.start_first and outgoing is not None
        logs = self.keep_logs(incoming)
        if swap.created:
            engine.remove(incoming)
            restored = None
            if start_first:
                self.result["digest_after"] = before["digest"]
            elif outgoing is not None:
                restored = self.promote(outgoing, swap.outgoing_policy)
                if swap.kept is not None:
                    engine.rename(swap.kept, previous_name(name))
                self.result.update(
                    rolled_back=True,
                    digest_after=before["digest"],
                    container={"name": name, "id": outgoing.id},
                    previous=self.previous_info(),
                )
            else:
                self.result.update(digest_after="", container={"name": name, "id": ""})
            outcome = "rolled_back" if restored is not None else "failed"
            untouched = outgoing if start_first else None
            message = self.deploy_failure("deploying", target, health, logs, restored, untouched=untouched)
        elif start_first:
            kept_name = incoming.name
            engine.stop(incoming, self.params["stop_timeout"])
            self.result["digest_after"] = before["digest"]
            outcome = "failed"
            message = (
                f"rolling {name} back to {target['digest'] or kept_name} failed: {kept_name} is"
                f" {health['status']} ({health['detail']}) and was stopped again; {name} was not stopped"
                " (update_order start-first) and still runs." + log_text(logs, "log lines")
            )
        else:
            outcome = "failed"
            message = (
                f"rolling {name} back to {target['digest'] or incoming.name} failed: the container is"
                f" {health['status']} ({health['detail']}). {previous_name(name)} holds what ran before."
                + log_text(logs, "log lines")
            )
        self.fail(target, outcome, health, message, previous=before)

    # ---- a swap cut short

    def journal(self, swap: Swap) -> None:
        """The :data:`IN_PROGRESS` record of ``swap``: the ids of its containers and the policy to give back."""
        kept = self.engine.container(previous_name(self.name)) if swap.created else None
        ids = {
            "incoming": swap.incoming.id,
            "outgoing": swap.outgoing.id if swap.outgoing is not None else "",
            "kept": kept.id if kept is not None else "",
            "created": swap.created,
            "outgoing_policy": restart_policy_of(swap.outgoing.attrs) if swap.outgoing is not None else None,
        }
        self.write(swap.target, IN_PROGRESS, None, previous=swap.outgoing_deployment, swap=ids)

    def recover(self) -> None:
        """Undo the swap of an earlier task that never ended (its :data:`IN_PROGRESS` record is the last one).

        The record becomes ``interrupted`` (what was undone, what runs now), a warning says the same, and the task
        goes on as usual from there. In check mode nothing is touched; the warning says what the task would undo.
        """
        try:
            last = self.history.last(self.name)
        except HistoryError as exc:  # as a history that cannot be written, it does not stop a deployment
            self.module.warn(f"{exc}; an interrupted swap recorded there cannot be undone")
            return
        if last is None or last.get("result") != IN_PROGRESS:
            return
        kind = "rollback" if last.get("action") == "rolled_back" else "deployment"
        what = (
            f"the {kind} of {self.name} to {last.get('digest') or 'its previous container'} begun at {last.get('time')}"
        )
        if self.module.check_mode:
            self.module.warn(f"{what} was interrupted; the task would undo it first")
            return
        restored, health = self.undo(last.get("swap") or {})
        if restored is None:
            now = "nothing ran before it, so nothing runs"
        else:
            now = f"{self.name} ({restored['digest'] or 'not deployed by this module'}) runs again"
            if health is not None:
                now += f", started again and {health['status']} ({health['detail']})"
        detail = (
            f"{what} was interrupted (the device lost power, or the engine or the task stopped) and is undone: {now}"
        )
        fields = {
            key: last.get(key, "") for key in ("reference", "digest", "previous_digest", "platform", "config_hash")
        }
        self.history.append(
            new_record(
                when=now_text(),
                name=self.name,
                action=last.get("action", ""),
                result="interrupted",
                health=health,
                detail=detail,
                **fields,
            )
        )
        self.module.warn(detail)
        self.recovered = {
            "time": last.get("time", ""),
            "action": last.get("action", ""),
            "digest": last.get("digest", ""),
            "detail": detail,
        }
        self.result.update(changed=True, recovered=self.recovered)

    def undo(self, swap: dict) -> tuple:
        """Put each container of an interrupted ``swap`` back where it was; ``(what runs, its health or None)``.

        Whatever part of the swap the engine kept (a power cut also loses what the engine had not written yet),
        the containers are found by their ids, and each first moves to a name of its own, so that no name is in the
        way: a created incoming one is removed; one that a rollback brought back is stopped and goes back to
        ``<name>-previous`` with restart policy ``no``; the outgoing one gets the name and its restart policy back,
        and is started and checked when it does not run; a deployment's kept container is ``<name>-previous`` again.
        """
        engine, name = self.engine, self.name
        found = {
            key: engine.container(swap[key]) if swap.get(key) else None for key in ("incoming", "outgoing", "kept")
        }
        incoming, outgoing = found["incoming"], found["outgoing"]
        if incoming is not None and swap.get("created"):
            engine.remove(incoming)
            found["incoming"] = None
        elif incoming is not None:
            engine.set_restart_policy(incoming, NO_RESTART)
            engine.stop(incoming, self.params["stop_timeout"])
        for key, container in found.items():
            if container is not None and container.name != f"{name}-undo-{key}":
                self.drop(f"{name}-undo-{key}")
                engine.rename(container, f"{name}-undo-{key}")
        health = None
        if outgoing is not None:
            engine.rename(outgoing, name)
            if swap.get("outgoing_policy"):
                engine.set_restart_policy(outgoing, swap["outgoing_policy"])
            if not deployment_of(outgoing.attrs)["running"]:
                health = self.waiter.start_and_wait(outgoing)
        back = found["kept"] if swap.get("created") else found["incoming"]
        if back is not None:
            engine.rename(back, previous_name(name))
        return (deployment_of(outgoing.attrs) if outgoing is not None else None), health

    # ---- state: started

    def deploy(self) -> dict:
        params = self.params
        ref = parse_reference(params["image"])
        expected = expected_digests(params.get("expected_digests"))
        config = desired_config(params)
        if self.start_first:
            conflict = start_first_conflict(fixed_host_ports(config), "the new container")
            if conflict:
                raise RolloutFailed(conflict)
        chash = config_hash(config)
        self.recover()
        current = self.engine.container(self.name)
        current_deployment = deployment_of(current.attrs) if current is not None else None
        if current_deployment:  # also what a refusal below reports: the container as it stays
            self.result["container"]["id"] = current_deployment["id"]
            self.result.update(digest_before=current_deployment["digest"], digest_after=current_deployment["digest"])
        self.result["reference"] = str(ref)
        platform = self.device_platform()
        client = ClientPool(params, ref.registry).get(ref.registry)
        digest, matched = resolve(client, ref, platform)
        self.result.update(platform=platform, platform_match=matched)
        unexpected = unexpected_digest_message(str(ref), bool(ref.digest), expected, matched, digest)
        if unexpected:
            raise RolloutFailed(unexpected)
        image = image_name(ref.name, digest)
        action = plan(current_deployment, digest, chash)
        target = {"reference": str(ref), "digest": digest, "platform": platform, "config_hash": chash}
        self.result.update(
            action=action,
            image=image,
            config_hash=chash,
            digest_after=digest if action != "none" or not current_deployment else current_deployment["digest"],
            previous=self.previous_info(),
        )
        if self.module._diff:
            self.result["diff"] = {"before": diff_view(current_deployment), "after": diff_view(target, config)}
        if action == "none" or self.module.check_mode:
            self.result["changed"] = action != "none" or self.recovered is not None
            return self.finish()

        labels = deployment_labels(str(ref), digest, platform, chash, config["restart_policy"])
        self.result["changed"] = True
        begin = self.clock()
        incoming = None
        try:
            if not self.engine.has_image(image):
                self.engine.pull(ref.name, digest, platform, self.auth_config(), params["pull_timeout"])
            self.result["pull_seconds"] = round(self.clock() - begin, 3)
            if action != "start":
                self.drop(next_name(self.name))
                incoming = self.engine.create(image, next_name(self.name), create_kwargs(config, labels))
        except EngineError as exc:
            self.not_deployed(exc, target, current_deployment, client, ref)
        if action == "start":
            self.start_again(current, target)
        else:
            self.replace(Swap(incoming, current, current_deployment, target, created=True))
        return self.finish()

    def not_deployed(self, exc: EngineError, target: dict, current: dict | None, client, ref) -> None:
        """The pull (or the create) failed, before any container was touched: say so, record it, and fail."""
        self.result["pull_seconds"] = round(self.clock() - self.started, 3) if isinstance(exc, PullTimeout) else 0.0
        self.result.update(changed=self.recovered is not None, digest_after=(current or {}).get("digest", ""))
        if current is None:
            running = "nothing ran before, and nothing runs"
        else:
            what = current["digest"] or "a container not deployed by this module"
            state = "still runs" if current["running"] else "is still there (stopped)"
            running = f"{self.name} ({what}) {state}"
        no_space = self.no_space(client, ref, target["digest"]) if NO_SPACE in str(exc) else None
        message = not_deployed_message(
            str(exc), running=running, timed_out=isinstance(exc, PullTimeout), no_space=no_space
        )
        self.write(target, "failed", None, previous=current, detail=message)
        raise RolloutFailed(message)

    def no_space(self, client, ref, digest: str) -> dict:
        """What a full disk message says: the engine's host, its data root and what is free there (for an engine
        on this device), and what the image downloads (from its manifest in the registry)."""
        path = self.engine.data_root()
        free = None
        if path and docker_host(self.params.get("docker_host")).startswith("unix://"):
            try:
                stat = os.statvfs(path)
                free = stat.f_bfree * stat.f_frsize  # the engine runs as root: the reserved blocks are its too
            except OSError:
                free = None
        try:
            needed = image_bytes(client.get_manifest(ref.repository, digest).data)
        except RegistryError:
            needed = 0
        return {"device": socket.gethostname(), "path": path, "free": free, "needed": needed}

    def start_again(self, container, target: dict) -> None:
        """The same deployment, stopped: start it and check it."""
        health = self.waiter.start_and_wait(container)
        self.result["health"] = health
        if health["status"] != "healthy":
            logs = self.keep_logs(container)
            self.engine.stop(container, self.params["stop_timeout"])
            self.result["digest_after"] = ""
            self.fail(target, "failed", health, self.deploy_failure("starting", target, health, logs, None))
        self.write(target, "ok", health)

    # ---- state: rolled_back

    def rollback(self) -> dict:
        engine = self.engine
        self.recover()
        current = engine.container(self.name)
        kept = engine.container(previous_name(self.name))
        current_deployment = deployment_of(current.attrs) if current is not None else None
        self.result.update(
            action="rolled_back",
            digest_before=current_deployment["digest"] if current_deployment else "",
            digest_after=current_deployment["digest"] if current_deployment else "",
            reference=current_deployment["reference"] if current_deployment else "",
            platform=current_deployment["platform"] if current_deployment else "",
            previous=self.previous_info(),
        )
        if current_deployment:
            self.result["container"]["id"] = current_deployment["id"]
            self.result["image"] = current_deployment["image"]
        last = self.history.last(self.name)
        done = (
            last is not None
            and last.get("action") == "rolled_back"
            and last.get("result") == "ok"
            and current_deployment is not None
            and current_deployment["running"]
            and last.get("digest") == current_deployment["digest"]
        )
        if done:
            self.result["action"] = "none"
            self.result["changed"] = self.recovered is not None
            return self.finish()
        if kept is None:
            raise RolloutFailed(
                f"no previous deployment of {self.name} is kept (no container {previous_name(self.name)}), so there is"
                " nothing to roll back to; deploy the wanted image with state started instead"
            )
        target = deployment_of(kept.attrs)
        if self.start_first and current is not None:
            conflict = start_first_conflict(bound_host_ports(kept.attrs), f"the kept container {kept.name}")
            if conflict:
                raise RolloutFailed(conflict)
        self.result.update(
            changed=True,
            digest_after=target["digest"],
            reference=target["reference"],
            platform=target["platform"],
            image=target["image"],
        )
        if self.module._diff:
            self.result["diff"] = {"before": diff_view(current_deployment), "after": diff_view(target)}
        if self.module.check_mode:
            return self.finish()
        policy = target["restart_policy"] or (last or {}).get("previous_restart_policy")
        entry_target = {key: target[key] for key in ("reference", "digest", "platform", "config_hash")}
        self.drop(next_name(self.name))
        self.replace(Swap(kept, current, current_deployment, entry_target, created=False, incoming_policy=policy))
        return self.finish()
