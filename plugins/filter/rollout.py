# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters of the ``rollout`` role: what a device pulls, what happened on a device, the fleet report.

Documented in ``rollout_target.yml``, ``rollout_host_result.yml`` and ``rollout_report.yml`` beside this file.
The logic is pure (no I/O): the role passes registered results and host lists in, and renders the report
returned here with its Markdown and HTML templates.
"""

from __future__ import annotations

import datetime
import math

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.fleet.multiarch.plugins.module_utils._reference import (
    ImageReferenceError,
    Reference,
    parse_reference,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._release_record import ReleaseRecord, ReleaseRecordError

# result key -> what the report says
LABELS = {
    "updated": "updated",
    "unchanged": "unchanged",
    "rolled_back": "rolled back",
    "failed": "failed",
    "unreachable": "unreachable",
    "not_reached": "not reached (the rollout stopped)",
    "pending": "pending (its batch has not run yet)",
}
CHECK_LABELS = {"updated": "would be updated", "unchanged": "unchanged"}
# results that count against max_fail_percentage (a host Ansible marked failed is "not_reached")
FAILURES = ("rolled_back", "failed", "unreachable", "not_reached")
ORDER = ("updated", "unchanged", "rolled_back", "failed", "unreachable", "not_reached", "pending")
MESSAGE_CHARS = 800


def _registry_alias(alias) -> str:
    alias = to_text(alias or "").strip().rstrip("/")
    if alias and ("/" in alias or "@" in alias):
        raise AnsibleFilterError(
            f"rollout_registry_alias must be a registry host[:port] such as 10.0.2.2:5000, not {alias!r}"
        )
    return alias


def _record_reference(record: dict) -> tuple:
    """The release record read through its one reader (``_release_record``): (reference, tag, platforms)."""
    try:
        data = ReleaseRecord.from_dict(record).data
    except ReleaseRecordError as exc:
        raise AnsibleFilterError(str(exc)) from None
    ref = parse_reference(f"{data['repository']}@{data['index_digest']}")
    return ref, data["tag"], dict(data["platforms"])


def rollout_target(source, registry_alias="", container_name="") -> dict:
    """What the devices deploy, from a release record (dict) or an image reference (str).

    A release record is deployed by its index digest (``repository@sha256:...``), which is immutable; each
    device's ``container_rollout`` picks the manifest of its own platform inside it. ``registry_alias``
    replaces the registry host for the devices (they may see ``127.0.0.1:5000`` as ``10.0.2.2:5000``).
    """
    alias = _registry_alias(registry_alias)
    if isinstance(source, dict):
        ref, tag, platforms = _record_reference(source)
        kind = "release record"
        name = source.get("name") or ""
    elif isinstance(source, str) and source.strip():
        try:
            ref = parse_reference(source)
        except ImageReferenceError as exc:
            raise AnsibleFilterError(str(exc)) from None
        tag, platforms, kind, name = ref.tag, {}, "image", ""
    else:
        raise AnsibleFilterError(
            "nothing to roll out: set rollout_release_record (a release record file on the controller) or"
            " rollout_image (an image reference with its registry host)"
        )
    device_ref = Reference(alias or ref.registry, ref.repository, ref.tag, ref.digest)
    return {
        "source": kind,
        "name": to_text(container_name or "").strip() or name or ref.repository.rsplit("/", 1)[-1],
        "published": str(ref),
        "reference": str(device_ref),
        "repository": device_ref.name,
        "tag": tag,
        "index_digest": ref.digest,
        "platforms": platforms,
    }


def _parse_time(text):
    """An ISO 8601 time; one without a zone is UTC (Ansible's ``now(utc=true)`` has none)."""
    if not text:
        return None
    try:
        when = datetime.datetime.fromisoformat(to_text(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def _time_text(when) -> str:
    return when.isoformat(timespec="seconds") if when is not None else ""


def _seconds(started, finished):
    begin, end = _parse_time(started), _parse_time(finished)
    if begin is None or end is None:
        return None
    return round(max((end - begin).total_seconds(), 0.0), 1)


def _first_line(text) -> str:
    text = to_text(text or "").strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 3] + "..."


def _ran(result) -> bool:
    return isinstance(result, dict) and bool(result) and not result.get("skipped")


def _blank_row(host: str, check_mode) -> dict:
    """A device's report line before anything is known of it."""
    return {
        "host": host,
        "board": "",
        "machine": "",
        "platform": "",
        "platform_match": "",
        "digest": "",
        "previous_digest": "",
        "attempted_digest": "",
        "expected_digest": "",
        "health": "",
        "started": "",
        "finished": "",
        "seconds": None,
        "check_mode": bool(check_mode),
        "message": "",
    }


def rollout_host_result(
    host, facts=None, deploy=None, *, started="", finished="", batch=None, check_mode=False, expected=None
) -> dict:
    """One device's line of the report, from the registered results of ``device_facts`` and ``container_rollout``.

    ``facts``/``deploy`` are ``None`` (or skipped) when the task did not run for the host: a host that Ansible
    failed because its batch passed ``max_fail_percentage`` before it deployed is ``not_reached``.
    ``expected`` maps platform -> digest (the release record's ``platforms``).
    """
    facts = facts if _ran(facts) else None
    deploy = deploy if _ran(deploy) else None
    device = ((facts or {}).get("ansible_facts") or {}).get("fleet_device") or {}
    row = _blank_row(to_text(host), check_mode)
    row.update(
        batch_hosts=[to_text(h) for h in (batch or [])],
        board=(device.get("board") or {}).get("model") or "",
        machine=device.get("machine") or "",
        platform=device.get("platform") or "",
        started=_time_text(_parse_time(started)),
        finished=_time_text(_parse_time(finished)),
        seconds=_seconds(started, finished),
    )
    unreachable = next((r for r in (facts, deploy) if r and r.get("unreachable")), None)
    if unreachable is not None:
        row.update(result="unreachable", message=_first_line(unreachable.get("msg")))
        return row
    if facts is None or facts.get("failed"):
        if facts is None:
            row.update(result="not_reached")
        else:
            row.update(result="failed", message=_first_line(facts.get("msg")))
        return row
    if deploy is None:
        row["result"] = "not_reached"
        return row
    row.update(
        platform=deploy.get("platform") or row["platform"],
        platform_match=deploy.get("platform_match") or "",
        digest=deploy.get("digest_after") or "",
        previous_digest=deploy.get("digest_before") or "",
        health=((deploy.get("health") or {}).get("detail")) or "",
    )
    expected = expected or {}
    row["expected_digest"] = expected.get(row["platform_match"]) or expected.get(row["platform"]) or ""
    if deploy.get("failed"):
        image = deploy.get("image") or ""
        row["attempted_digest"] = image.rsplit("@", 1)[-1] if "@" in image else ""
        row["result"] = "rolled_back" if deploy.get("rolled_back") else "failed"
        row["message"] = _first_line(deploy.get("msg"))
        return row
    row["result"] = "updated" if deploy.get("changed") else "unchanged"
    return row


def _batches(hosts: list, rows: dict) -> list:
    """The batches that ran, in play order, each a list of hosts (from what each host recorded)."""
    seen = []
    for host in hosts:
        row = rows.get(host)
        batch = tuple(row.get("batch_hosts") or [host]) if row else None
        if batch and batch not in seen:
            seen.append(batch)
    position = {host: index for index, host in enumerate(hosts)}
    return [list(b) for b in sorted(seen, key=lambda b: min(position.get(h, math.inf) for h in b))]


def _stopped(batch: list, rows: dict, max_fail_percentage) -> bool:
    """Did Ansible stop the play after ``batch``? (as the linear strategy and the playbook executor decide)"""
    if not batch:
        return False
    failed = sum(1 for h in batch if (rows.get(h) or {}).get("result", "not_reached") in FAILURES)
    if failed == len(batch):
        return True
    if max_fail_percentage is None or max_fail_percentage == "":
        return False
    return failed / len(batch) > float(max_fail_percentage) / 100.0


def rollout_report(hosts, results, max_fail_percentage=None, *, target=None, check_mode=False, generated="") -> dict:
    """The fleet report: one row per host of the play, the batches, counts and the state of the rollout.

    ``hosts`` is every host of the play in play order (``ansible_play_hosts_all``); ``results`` is aligned with
    it (each host's ``rollout_result`` fact, or an empty value for a host whose batch has not run). The last
    batch that ran decides whether the rollout ``stopped`` (its failures passed ``max_fail_percentage``, or
    every host of it failed); hosts without a result are then ``not_reached``, else ``pending``. With every
    host done the state is ``complete``, or ``complete with failures``.
    """
    hosts = [to_text(h) for h in (hosts or [])]
    results = list(results or [])
    if len(results) != len(hosts):
        raise AnsibleFilterError(f"rollout_report: {len(hosts)} hosts but {len(results)} results")
    rows = {h: dict(r) for h, r in zip(hosts, results) if isinstance(r, dict) and r.get("result")}
    batches = _batches(hosts, rows)
    batch_of = {h: index + 1 for index, batch in enumerate(batches) for h in batch}
    stopped = _stopped(batches[-1], rows, max_fail_percentage) if batches else False
    waiting = [h for h in hosts if h not in rows]
    if stopped and waiting:
        state = "stopped"
    elif waiting:
        state = "in progress"
    elif any(rows[h]["result"] in FAILURES for h in rows):
        state = "complete with failures"
    else:
        state = "complete"

    out_rows = []
    for host in hosts:
        row = rows.get(host) or dict(
            _blank_row(host, check_mode), result="not_reached" if state == "stopped" else "pending"
        )
        row = dict(row)
        row.pop("batch_hosts", None)
        row["batch"] = batch_of.get(host)
        labels = CHECK_LABELS if row.get("check_mode") else {}
        row["label"] = labels.get(row["result"]) or LABELS.get(row["result"], row["result"])
        row["ok"] = row["result"] in ("updated", "unchanged")
        row["mismatch"] = bool(row["ok"] and row.get("expected_digest") and row["digest"] != row["expected_digest"])
        out_rows.append(row)

    counts = {key: sum(1 for r in out_rows if r["result"] == key) for key in ORDER}
    starts = [t for t in (_parse_time(r.get("started")) for r in out_rows) if t is not None]
    ends = [t for t in (_parse_time(r.get("finished")) for r in out_rows) if t is not None]
    words = {**LABELS, **(CHECK_LABELS if check_mode else {})}
    parts = [f"{counts[key]} {words[key].split(' (')[0]}" for key in ORDER if counts[key]]
    devices = f"{len(hosts)} device" + ("" if len(hosts) == 1 else "s")
    summary = f"{devices}: " + ", ".join(parts) if hosts else "no devices"
    if state == "stopped":
        summary += f"; the rollout stopped after batch {len(batches)} of the play"
    return {
        "state": state,
        "stopped_after_batch": len(batches) if state == "stopped" else None,
        "summary": summary,
        "check_mode": bool(check_mode),
        "max_fail_percentage": max_fail_percentage,
        "target": dict(target or {}),
        "generated": _time_text(_parse_time(generated)),
        "started": _time_text(min(starts)) if starts else "",
        "finished": _time_text(max(ends)) if ends else "",
        "seconds": round((max(ends) - min(starts)).total_seconds(), 1) if starts and ends else None,
        "batches": batches,
        "counts": counts,
        "failed": sum(1 for r in out_rows if r["result"] in FAILURES and r["result"] != "not_reached"),
        "rows": out_rows,
    }


class FilterModule:
    """Filters of the rollout role."""

    def filters(self):
        return {
            "rollout_target": rollout_target,
            "rollout_host_result": rollout_host_result,
            "rollout_report": rollout_report,
        }
