# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Test helper, not shipped: tests/integration/helpers.py enables it for `run_module`.

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_result
type: notification
short_description: Write every task result, whole, as JSON lines to a file (integration tests only)
description:
  - Appends one JSON object per task result to the file named by E(FLEET_TEST_RESULT_FILE), with the
    host name and the outcome (V(ok), V(failed), V(skipped), V(unreachable)) beside the module's own
    return values, including C(diff), which stdout callbacks drop below -vvv.
requirements:
  - the E(FLEET_TEST_RESULT_FILE) environment variable
"""

import json
import os

from ansible.module_utils.common.json import AnsibleJSONEncoder
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "fleet_result"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, outcome: str) -> None:
        path = os.environ.get("FLEET_TEST_RESULT_FILE")
        if not path:
            return
        data = dict(result._result)
        data["_host"] = result._host.get_name()
        data["_outcome"] = outcome
        data["failed"] = outcome == "failed" or bool(data.get("failed"))
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(data, cls=AnsibleJSONEncoder) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")
