# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``fleet.multiarch.image_build``: an unchanged release is answered on the controller.

When the build host is the controller itself (``connection: local``, no ``become``, no task
``environment``), the module would run in a new Python on this very machine, as this very user, with
the same files and the same registry in reach. Most of an unchanged release's time is that start-up
(AnsiballZ, the interpreter, ``AnsibleModule``: 0.4-0.7 s here), not the check itself (0.05 s).

So in that case this plugin runs the module's own check, :meth:`ImageBuilder.assess` from
``module_utils/_image_build.py``, in this process: the same code, the same options (validated with the
module's argument spec), the same registry requests. When every tag already holds the build, that is the
result (``answered_by: controller``); in check mode, whatever the check finds is (check mode builds and
writes nothing). In every other case (something to build or tag, ``force``, ``load``, any error, another
host, ``become``, ``async``) the module runs as usual and gives the answer (``answered_by: module``),
errors included - except a registry error of the check: the module's first step is the same check against
the same registry, so that failure is the answer (a registry answering 503 costs one retry cycle, not two).
"""

from __future__ import annotations

import os

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.fleet.multiarch.plugins.module_utils._buildx import DockerCLI
from ansible_collections.fleet.multiarch.plugins.module_utils._image_build import (
    REQUIRED_TOGETHER,
    ImageBuilder,
    image_build_argument_spec,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._reference import RegistryError, parse_reference
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import ClientPool
from ansible_collections.fleet.multiarch.plugins.module_utils._registry_http import HAS_REQUESTS
from ansible_collections.fleet.multiarch.plugins.plugin_utils._controller_module import ControllerModule


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        answer = self.answer_here()
        if answer is not None:
            return merge_hash(result, answer)
        wrap_async = self._task.async_val
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def on_controller(self) -> bool:
        """The module would run here, as this user, with this environment."""
        return (
            self._connection.transport == "local"
            and not self._play_context.become
            and not any(self._task.environment or [])
            and not self._task.async_val
        )

    def answer_here(self):
        """The module's result for an unchanged release (any result in check mode), from this process; else None."""
        if not (self.on_controller() and HAS_REQUESTS):  # without requests here, the module's Python may have it
            return None
        validated = ArgumentSpecValidator(image_build_argument_spec(), required_together=REQUIRED_TOGETHER).validate(
            self._task.args
        )
        params = validated.validated_parameters
        if validated.error_messages or not params["push"] or params["load"] or params["force"]:
            return None
        if not (params["tags"] and os.path.isabs(params["context"])):
            return None  # no tag to compare with; a relative context is the module's working directory's
        # check mode and diff exactly as ActionBase passes them to the module (_ansible_check_mode, _ansible_diff)
        module = ControllerModule(params, bool(self._task.check_mode), bool(self._task.diff))
        builder = None
        try:
            primary = parse_reference(params["tags"][0])
            builder = ImageBuilder(module, DockerCLI.from_module(module), ClientPool(params, primary.registry))
            if module.check_mode:
                answer = builder.run()  # in check mode, run() goes no further than the check: it writes nothing
            elif builder.assess():
                answer = builder.finish()
            else:
                return None
        except RegistryError as exc:
            # what the module's own check would meet, after the same retries: its failure, as the module reports it
            extra = builder.finish(failed=True) if builder is not None else {}
            answer = {**extra, "failed": True, "changed": False, "msg": str(exc)}
        except Exception:  # the module runs and reports it, with its own message
            return None
        answer["answered_by"] = "controller"
        if module.warnings:
            answer["warnings"] = module.warnings
        return answer
