# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``fleet.multiarch.release``: the record on the controller, and an unchanged release answered here.

The module (``plugins/modules/release.py``) plans, builds, gates and promotes on the build host and returns the
release record. This plugin, on the controller:

- reads the previous record at ``record_path`` (``ReleaseRecord.load``: a bad file fails the task naming it,
  before anything is built);
- when the build host is the controller itself (``connection: local``, no ``become`` to another user, no task
  ``environment``, no ``async``), runs the module's own code (``run_release`` of ``module_utils/_release.py``) in
  this process with ``write=False``: an unchanged release (and in check mode any release) is answered here
  (``answered_by: controller``), saving the module's start-up (AnsiballZ, a new Python, ``AnsibleModule``); as soon
  as something is to be built or moved it stops, having written nothing, and the module runs as usual;
- writes the new record (``ReleaseRecord.write``, atomically) only when it differs from the file's (``created``
  and ``changed`` aside), keeping ``created`` while the record is of the same release (index and immutable tag);
  ``changed`` also says whether the file was written.
"""

from __future__ import annotations

import os
import pwd

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.fleet.multiarch.plugins.module_utils._image_build import REQUIRED_TOGETHER
from ansible_collections.fleet.multiarch.plugins.module_utils._registry_http import HAS_REQUESTS
from ansible_collections.fleet.multiarch.plugins.module_utils._release import release_argument_spec, run_release
from ansible_collections.fleet.multiarch.plugins.module_utils._release_record import (
    ReleaseRecord,
    ReleaseRecordError,
)
from ansible_collections.fleet.multiarch.plugins.plugin_utils._controller_module import ControllerModule


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False  # the record is written after the module's result

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        validated = ArgumentSpecValidator(release_argument_spec(), required_together=REQUIRED_TOGETHER).validate(
            self._task.args
        )
        if validated.error_messages:
            return merge_hash(result, {"failed": True, "changed": False, "msg": "; ".join(validated.error_messages)})
        params = validated.validated_parameters
        path = os.path.abspath(params["record_path"]) if params["record_path"] else ""
        outcome = {"record_path": path, "record_changed": False}
        try:
            previous = ReleaseRecord.load(path) if path else None
        except ReleaseRecordError as exc:
            return merge_hash(result, {**outcome, "failed": True, "changed": False, "msg": str(exc)})
        answer = self.answer_here(params, previous)
        if answer is None:
            answer = self._execute_module(task_vars=task_vars)
            self._remove_tmp_path(self._connection._shell.tmpdir)
        answer = {**answer, **outcome}
        if answer.get("failed"):
            return merge_hash(result, answer)
        if answer.get("record"):
            answer = self.keep_record(answer, previous, path)
        elif path:  # check mode, the build would run first: a new index, a new record
            answer["record_changed"] = True
        return merge_hash(result, answer)

    def on_controller(self) -> bool:
        """The module would run here, as this user, with this environment."""
        become_other = self._play_context.become and (self._play_context.become_user or "root") != (
            pwd.getpwuid(os.geteuid()).pw_name
        )
        return (
            self._connection.transport == "local"
            and not become_other
            and not any(self._task.environment or [])
            and not self._task.async_val
        )

    def answer_here(self, params: dict, previous):
        """The module's result computed in this process (unchanged, or check mode); None: let the module run."""
        if not (self.on_controller() and HAS_REQUESTS and os.path.isabs(params["context"])):
            return None
        module = ControllerModule(params, bool(self._task.check_mode), bool(self._task.diff))
        try:
            answer = run_release(module, previous, write=False)
        except Exception:  # NeedsModule (what only the module does), or an error the module reports in its words
            return None
        if answer is None:
            return None
        answer["answered_by"] = "controller"
        if module.warnings:
            answer["warnings"] = module.warnings
        return answer

    def keep_record(self, answer: dict, previous, path: str) -> dict:
        """Write the record when it differs from the file's (``created`` and ``changed`` aside); keep ``created``
        while it records the same release (index and immutable tag)."""
        try:
            record = ReleaseRecord.from_dict(answer["record"], "the record the release module returned")
        except ReleaseRecordError as exc:
            return {**answer, "failed": True, "msg": str(exc)}
        if record.same_release(previous):
            record.data["created"] = previous.created
        same = record.same_content(previous)
        answer["record"] = record.to_dict()
        if not path:
            return answer
        if self._task.diff:
            before = previous.text() if previous is not None else ""
            answer["diff"] = {
                "before": before,
                "after": before if same else record.text(),
                "before_header": path,
                "after_header": path,
            }
        if same:
            return answer
        if not self._task.check_mode:
            try:
                record.write(path)
            except OSError as exc:
                return {
                    **answer,
                    "failed": True,
                    "msg": f"the release is published, but its record could not be written to {path}: {exc}. Fix the"
                    " path (record_path) and run again: nothing is built or moved again",
                }
        answer["record_changed"] = answer["changed"] = True
        return answer
