"""Unit tests for the rollout role's filters: what devices pull, one device's result, the fleet report.

The registered results come from a real run (tests/unit/fixtures/rollout/registered-amd64.json: device_facts and
container_rollout on the test host, and device_facts registered with ignore_unreachable against a closed port).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from ansible.module_utils import _internal as module_utils_internal

# Importing controller code (ansible.errors, which a filter plugin needs) marks the whole process as the controller,
# after which AnsibleModule.warn() in the module tests collected later goes to the display instead of the result.
# Put the flag back once this file's imports are done, so the unit tests do not depend on collection order.
_WAS_CONTROLLER = module_utils_internal.is_controller
from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.fleet.multiarch.plugins.filter import rollout as rf  # noqa: E402

module_utils_internal.is_controller = _WAS_CONTROLLER

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rollout"
REGISTERED = json.loads((FIXTURES / "registered-amd64.json").read_text())
INDEX = "sha256:" + "1" * 64
ARM64 = "sha256:" + "2" * 64
ARMV7 = "sha256:" + "3" * 64
RECORD = {
    "schema": 1,
    "name": "demo-app",
    "repository": "127.0.0.1:5000/fleet/demo-app",
    "tag": "1.2.0-4",
    "moving_tags": ["latest", "1.2.0"],
    "index_digest": INDEX,
    "platforms": {"linux/amd64": "sha256:" + "4" * 64, "linux/arm64": ARM64, "linux/arm/v7": ARMV7},
    "fingerprint": "sha256:" + "5" * 64,
    "created": "2026-11-28T12:00:00Z",
    "changed": True,
}
T0 = "2026-11-28T12:00:00.000000"
T1 = "2026-11-28T12:00:42.250000"


def reg(name: str) -> dict:
    return copy.deepcopy(REGISTERED[name])


# --------------------------------------------------------------------------- rollout_target


def test_target_from_a_record_is_the_index_digest_under_the_device_side_registry():
    target = rf.rollout_target(RECORD, "10.0.2.2:5000")
    assert target["reference"] == f"10.0.2.2:5000/fleet/demo-app@{INDEX}"
    assert target["published"] == f"127.0.0.1:5000/fleet/demo-app@{INDEX}"
    assert target["repository"] == "10.0.2.2:5000/fleet/demo-app"
    assert (target["name"], target["tag"], target["source"]) == ("demo-app", "1.2.0-4", "release record")
    assert target["platforms"]["linux/arm64"] == ARM64


def test_target_without_alias_keeps_the_registry_and_a_name_can_be_given():
    target = rf.rollout_target(RECORD, "", "sensor-api")
    assert target["reference"] == f"127.0.0.1:5000/fleet/demo-app@{INDEX}"
    assert target["name"] == "sensor-api"


def test_target_from_an_image_reference_keeps_tag_and_names_the_container_after_the_repository():
    target = rf.rollout_target("127.0.0.1:5000/fleet/sensor-api:1.4", "10.0.2.2:5000/")
    assert target["reference"] == "10.0.2.2:5000/fleet/sensor-api:1.4"
    assert (target["name"], target["tag"], target["index_digest"], target["platforms"]) == ("sensor-api", "1.4", "", {})
    assert target["source"] == "image"


@pytest.mark.parametrize(
    ("source", "alias", "message"),
    [
        ("", "", "nothing to roll out"),
        (None, "", "nothing to roll out"),
        ({**RECORD, "schema": 2}, "", "schema 2"),
        ({**RECORD, "index_digest": ""}, "", "no index_digest"),
        ({**RECORD, "repository": "127.0.0.1:5000/fleet/demo-app:1.2"}, "", "without a tag or digest"),
        ({**RECORD, "index_digest": "sha256:short"}, "", "index_digest must be a digest"),
        ({**RECORD, "platforms": {"linux/arm64": "latest"}}, "", "platforms[linux/arm64] must be a digest"),
        ("busybox:latest", "", "no registry host"),
        (RECORD, "10.0.2.2:5000/fleet", "registry host[:port]"),
    ],
)
def test_target_refuses_what_it_cannot_deploy(source, alias, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rf.rollout_target(source, alias)


# --------------------------------------------------------------------------- rollout_host_result


def test_updated_device_from_real_results():
    row = rf.rollout_host_result(
        "pi-1",
        reg("device_facts_amd64"),
        reg("rollout_updated"),
        started=T0,
        finished=T1,
        batch=["pi-1"],
        expected={"linux/amd64": "x"},
    )
    deploy = REGISTERED["rollout_updated"]
    assert row["result"] == "updated"
    assert row["platform"] == "linux/amd64"
    assert row["machine"] == "x86_64"
    assert row["digest"] == deploy["digest_after"]
    assert row["previous_digest"] == deploy["digest_before"]
    assert row["seconds"] == 42.2
    assert row["started"] == "2026-11-28T12:00:00+00:00"
    assert row["expected_digest"] == "x"
    assert row["message"] == ""


def test_unchanged_device():
    row = rf.rollout_host_result(
        "pi-1", reg("device_facts_amd64"), reg("rollout_unchanged"), started=T0, finished=T1, batch=["pi-1"]
    )
    assert row["result"] == "unchanged"
    assert row["digest"] == row["previous_digest"] == REGISTERED["rollout_unchanged"]["digest_after"]


def test_rolled_back_device_keeps_the_restored_digest_and_names_the_one_it_tried():
    deploy = reg("rollout_rolled_back")
    row = rf.rollout_host_result("pi-1", reg("device_facts_amd64"), deploy, started=T0, finished=T1, batch=["pi-1"])
    assert row["result"] == "rolled_back"
    assert row["digest"] == deploy["digest_before"]  # the previous container runs again
    assert row["attempted_digest"] == deploy["image"].rsplit("@", 1)[1]
    assert row["attempted_digest"] != row["digest"]
    assert row["message"].startswith("deploying rollout-dev from")
    assert "\n" not in row["message"] and len(row["message"]) <= rf.MESSAGE_CHARS


def test_failed_without_rollback():
    deploy = reg("rollout_rolled_back")
    deploy.update(rolled_back=False, digest_after="", msg="there was no previous container")
    row = rf.rollout_host_result("pi-1", reg("device_facts_amd64"), deploy, started=T0, finished=T1, batch=["pi-1"])
    assert (row["result"], row["digest"], row["message"]) == ("failed", "", "there was no previous container")


def test_unreachable_device_from_a_real_registered_result():
    row = rf.rollout_host_result(
        "pi-3", reg("device_facts_unreachable"), None, started=T0, finished=T1, batch=["pi-2", "pi-3"]
    )
    assert row["result"] == "unreachable"
    assert "Failed to connect to the host via ssh" in row["message"]
    assert row["platform"] == "" and row["digest"] == ""
    assert row["batch_hosts"] == ["pi-2", "pi-3"]


def test_device_lost_during_the_deployment_is_unreachable():
    deploy = {"unreachable": True, "changed": False, "msg": "Data could not be sent to remote host"}
    row = rf.rollout_host_result("pi-3", reg("device_facts_amd64"), deploy, started=T0, finished=T1, batch=["pi-3"])
    assert row["result"] == "unreachable"
    assert row["platform"] == "linux/amd64"  # what was learned before it went away


def test_facts_failure_is_a_failure():
    facts = {"failed": True, "msg": "sparc64 is not a platform this collection knows", "changed": False}
    row = rf.rollout_host_result("pi-9", facts, None, started=T0, finished=T1, batch=["pi-9"])
    assert row["result"] == "failed" and "sparc64" in row["message"]


@pytest.mark.parametrize(
    "deploy", [None, {}, {"skipped": True, "changed": False, "skip_reason": "Conditional result was False"}]
)
def test_device_stopped_before_it_deployed_is_not_reached(deploy):
    row = rf.rollout_host_result(
        "pi-2", reg("device_facts_amd64"), deploy, started=T0, finished=T1, batch=["pi-1", "pi-2"]
    )
    assert row["result"] == "not_reached"


def test_bad_times_give_no_seconds():
    row = rf.rollout_host_result(
        "pi-1", reg("device_facts_amd64"), reg("rollout_unchanged"), started="yesterday", finished=T1
    )
    assert row["seconds"] is None and row["started"] == ""


# --------------------------------------------------------------------------- rollout_report

HOSTS = ["pi-arm64-1", "pi-arm64-2", "pi-armhf-1"]


def row(host: str, result: str, batch: list, *, digest: str = "", expected: str = "", check: bool = False) -> dict:
    return {
        "host": host,
        "batch_hosts": batch,
        "board": "",
        "machine": "aarch64",
        "platform": "linux/arm64",
        "platform_match": "linux/arm64",
        "digest": digest,
        "previous_digest": "",
        "attempted_digest": "",
        "expected_digest": expected,
        "health": "",
        "started": "2026-11-28T12:00:00+00:00",
        "finished": "2026-11-28T12:01:00+00:00",
        "seconds": 60.0,
        "check_mode": check,
        "message": "",
        "result": result,
    }


def results(*rows) -> list:
    by_host = {r["host"]: r for r in rows}
    return [by_host.get(h, {}) for h in HOSTS]


def test_complete_rollout_numbers_batches_in_play_order():
    report = rf.rollout_report(
        HOSTS,
        results(
            row("pi-arm64-1", "updated", ["pi-arm64-1"], digest=ARM64, expected=ARM64),
            row("pi-arm64-2", "updated", ["pi-arm64-2", "pi-armhf-1"], digest=ARM64, expected=ARM64),
            row("pi-armhf-1", "unchanged", ["pi-arm64-2", "pi-armhf-1"]),
        ),
        max_fail_percentage=0,
        target={"name": "demo-app"},
        generated="2026-11-28T12:02:00Z",
    )
    assert report["state"] == "complete"
    assert report["batches"] == [["pi-arm64-1"], ["pi-arm64-2", "pi-armhf-1"]]
    assert [r["batch"] for r in report["rows"]] == [1, 2, 2]
    assert [r["label"] for r in report["rows"]] == ["updated", "updated", "unchanged"]
    assert report["counts"]["updated"] == 2 and report["counts"]["unchanged"] == 1
    assert report["summary"] == "3 devices: 2 updated, 1 unchanged"
    assert report["seconds"] == 60.0 and report["generated"] == "2026-11-28T12:02:00+00:00"
    assert not any(r["mismatch"] for r in report["rows"])
    assert "batch_hosts" not in report["rows"][0]


def test_canary_failure_stops_the_rollout_and_the_rest_is_not_reached():
    report = rf.rollout_report(HOSTS, results(row("pi-arm64-1", "rolled_back", ["pi-arm64-1"])), 0)
    assert report["state"] == "stopped"
    assert report["stopped_after_batch"] == 1
    assert [r["result"] for r in report["rows"]] == ["rolled_back", "not_reached", "not_reached"]
    assert report["rows"][1]["label"] == "not reached (the rollout stopped)"
    assert report["rows"][1]["batch"] is None
    assert report["failed"] == 1
    assert report["summary"].endswith("the rollout stopped after batch 1 of the play")


def test_a_failed_canary_stops_even_without_max_fail_percentage():
    report = rf.rollout_report(HOSTS, results(row("pi-arm64-1", "unreachable", ["pi-arm64-1"])), None)
    assert report["state"] == "stopped"


def test_between_batches_the_rest_is_pending():
    report = rf.rollout_report(HOSTS, results(row("pi-arm64-1", "updated", ["pi-arm64-1"])), 0)
    assert report["state"] == "in progress"
    assert [r["result"] for r in report["rows"]] == ["updated", "pending", "pending"]


@pytest.mark.parametrize(("percentage", "state"), [(50, "complete with failures"), (49, "complete with failures")])
def test_failure_within_max_fail_percentage_of_the_last_batch(percentage, state):
    rows = results(
        row("pi-arm64-1", "updated", ["pi-arm64-1"]),
        row("pi-arm64-2", "updated", ["pi-arm64-2", "pi-armhf-1"]),
        row("pi-armhf-1", "unreachable", ["pi-arm64-2", "pi-armhf-1"]),
    )
    report = rf.rollout_report(HOSTS, rows, percentage)
    assert report["state"] == state  # nothing is left, so nothing is "not reached"
    assert [r["result"] for r in report["rows"]] == ["updated", "updated", "unreachable"]
    assert report["summary"] == "3 devices: 2 updated, 1 unreachable"


@pytest.mark.parametrize(("percentage", "state"), [(50, "in progress"), (49, "stopped"), (0, "stopped")])
def test_max_fail_percentage_decides_whether_the_next_batch_runs(percentage, state):
    hosts = [*HOSTS, "pi-armhf-2"]
    rows = [
        row("pi-arm64-1", "updated", ["pi-arm64-1"]),
        row("pi-arm64-2", "updated", ["pi-arm64-2", "pi-armhf-1"]),
        row("pi-armhf-1", "unreachable", ["pi-arm64-2", "pi-armhf-1"]),
        {},
    ]
    report = rf.rollout_report(hosts, rows, percentage)
    assert report["state"] == state
    assert report["rows"][3]["result"] == ("pending" if state == "in progress" else "not_reached")


def test_hosts_ansible_failed_in_a_stopped_batch_count_as_failures_of_it():
    # max_fail_percentage 0, batch of two: one rolled back, Ansible failed the other before it deployed
    rows = results(
        row("pi-arm64-1", "updated", ["pi-arm64-1"]),
        row("pi-arm64-2", "rolled_back", ["pi-arm64-2", "pi-armhf-1"]),
        row("pi-armhf-1", "not_reached", ["pi-arm64-2", "pi-armhf-1"]),
    )
    report = rf.rollout_report(HOSTS, rows, 0)
    assert report["state"] == "complete with failures"
    assert report["failed"] == 1
    assert report["counts"]["not_reached"] == 1


def test_check_mode_labels_and_digest_mismatch():
    rows = results(
        row("pi-arm64-1", "updated", ["pi-arm64-1"], digest=ARM64, expected=ARM64, check=True),
        row("pi-arm64-2", "updated", ["pi-arm64-2", "pi-armhf-1"], digest=ARMV7, expected=ARM64),
        row("pi-armhf-1", "unchanged", ["pi-arm64-2", "pi-armhf-1"], check=True),
    )
    report = rf.rollout_report(HOSTS, rows, 0, check_mode=True)
    assert [r["label"] for r in report["rows"]] == ["would be updated", "updated", "unchanged"]
    assert [r["mismatch"] for r in report["rows"]] == [False, True, False]
    assert report["check_mode"] is True
    assert report["summary"] == "3 devices: 2 would be updated, 1 unchanged"


def test_no_results_yet_and_misaligned_input():
    report = rf.rollout_report(HOSTS, [{}, None, {}], 0)
    assert report["state"] == "in progress" and report["batches"] == []
    assert report["started"] == "" and report["seconds"] is None
    assert rf.rollout_report([], [], 0)["summary"] == "no devices"
    with pytest.raises(AnsibleFilterError, match="3 hosts but 2 results"):
        rf.rollout_report(HOSTS, [{}, {}], 0)


def test_filters_are_registered():
    assert set(rf.FilterModule().filters()) == {"rollout_target", "rollout_host_result", "rollout_report"}
