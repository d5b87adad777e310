# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""How a module leaves: one exit path and one failure path (``exit_json`` / ``fail_json`` are called here only)."""

from __future__ import annotations

import traceback


def run_manager(module, make_manager, errors: tuple) -> None:
    """Make the manager (it checks every option before anything is touched), run it, ``exit_json`` its result.

    The manager has ``run()``, ``result`` (a dict) and ``diff`` (None for none). An exception of ``errors`` fails
    the task with its message, the manager's result so far and the exception's own fields (``to_result()``, for
    example the command and its output); any other one fails as unexpected, with its traceback.
    """
    manager = None
    try:
        manager = make_manager()
        manager.run()
    except errors as exc:
        extra = dict(manager.result) if manager is not None else {}
        extra.update(exc.to_result() if hasattr(exc, "to_result") else {})
        module.fail_json(msg=str(exc), **extra)
    except Exception as exc:  # report anything unexpected with its traceback
        unexpected(module, exc, **(manager.result if manager is not None else {}))
    result = dict(manager.result)
    if manager.diff is not None:
        result["diff"] = manager.diff
    module.exit_json(**result)


def run_task(module, work, errors: tuple, **fail_with) -> None:
    """``exit_json(**work())``; an exception of ``errors`` fails the task with its message and ``fail_with``, any
    other one as unexpected, with its traceback."""
    try:
        result = work()
    except errors as exc:
        module.fail_json(msg=str(exc), **fail_with)
    except Exception as exc:  # report anything unexpected with its traceback
        unexpected(module, exc)
    module.exit_json(**result)


def unexpected(module, exc: Exception, **extra) -> None:
    """Fail for an exception no module foresaw: its class, its message and the traceback."""
    module.fail_json(
        msg=f"unexpected error: {exc.__class__.__name__}: {exc}", exception=traceback.format_exc(), **extra
    )
