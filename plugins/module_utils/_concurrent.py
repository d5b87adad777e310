# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""Run independent pieces of work at once (registry requests, per-platform builds)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

MAX_WORKERS = 8


def parallel(func, items, max_workers: int = MAX_WORKERS) -> list:
    """``[func(item) for item in items]`` in order, up to ``max_workers`` at a time.

    The first exception raised by ``func`` is raised here; a single item runs in this thread.
    """
    items = list(items)
    if len(items) <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(max_workers, len(items))) as pool:
        return list(pool.map(func, items))
