# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback: how long each task took, as Ansible sees it, with the result, as JSON lines."""

from __future__ import annotations

import json
import os
import time

from ansible.module_utils.common.json import AnsibleJSONEncoder
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: bench_timer
type: notification
short_description: Write each task's duration and result to the file named by E(BENCH_TIMER_FILE)
description:
  - One JSON object per host and task, with C(task_seconds) from the start of the task to its result on that
    host (module transfer, interpreter start, the module itself, the result coming back), beside the result.
  - Used by bench/ only, to tell Ansible's own start-up apart from the time of a task.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._started = {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._started[task._uuid] = time.perf_counter()

    def _record(self, result, outcome: str) -> None:
        path = os.environ.get("BENCH_TIMER_FILE")
        if not path:
            return
        start = self._started.get(result._task._uuid)
        data = {
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "outcome": outcome,
            "task_seconds": round(time.perf_counter() - start, 4) if start is not None else None,
            "result": dict(result._result),
        }
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(data, cls=AnsibleJSONEncoder) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")
