# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""Controller-side helpers of the action plugins: what a module's code needs of ``AnsibleModule``, in-process."""

from __future__ import annotations

import os
import subprocess

from ansible.module_utils.common.process import get_bin_path


class NeedsModule(Exception):
    """The check asked for something only the module does: let the module answer."""


class ControllerModule:
    """What the release's code (``_release.py``, :class:`ImageBuilder`'s assessment) uses of ``AnsibleModule``, for
    an unchanged release answered in the controller's process.

    Used by the release's action plugin (``plugins/action/release.py``) only; anything beyond that raises
    :class:`NeedsModule`, and the module runs instead.
    """

    def __init__(self, params: dict, check_mode: bool, diff: bool):
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []

    def warn(self, warning: str) -> None:
        self.warnings.append(warning)

    def run_command(self, args: list, environ_update=None, data=None, **kwargs):
        """``AnsibleModule.run_command`` for an argv list, as the docker CLI calls of the check use it."""
        if kwargs or not isinstance(args, list):
            raise NeedsModule(f"run_command with {sorted(kwargs)}")
        argv = [os.path.expanduser(os.path.expandvars(str(arg))) for arg in args]
        proc = subprocess.run(
            argv,
            input=data,
            capture_output=True,
            text=True,
            env={**os.environ, **(environ_update or {})},
            check=False,
        )
        return proc.returncode, proc.stdout, proc.stderr

    @staticmethod
    def get_bin_path(arg: str, required: bool = False, opt_dirs=None):
        try:
            return get_bin_path(arg, opt_dirs=opt_dirs or [])
        except ValueError:
            if required:
                raise NeedsModule(f"{arg} not found") from None
            return None
