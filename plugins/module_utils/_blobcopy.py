# Copyright: Contributors to the fleet.multiarch project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the fleet.multiarch collection: not a public API, may change without notice.

"""Blob copies between repositories and registries: a cross-repository mount within one registry, else an upload
through a temporary file, so a layer never has to fit in memory."""

from __future__ import annotations

import tempfile

from ansible_collections.fleet.multiarch.plugins.module_utils._concurrent import parallel
from ansible_collections.fleet.multiarch.plugins.module_utils._registry import (
    RegistryClient,
)
from ansible_collections.fleet.multiarch.plugins.module_utils._registry_http import (
    _spool_error,
)


def copy_blob(src: RegistryClient, src_repo: str, dst: RegistryClient, dst_repo: str, digest: str) -> None:
    """Make blob ``digest`` of ``src/src_repo`` exist in ``dst/dst_repo``.

    Within one registry it is a cross-repository mount (no data moves; a blob the repository already
    has is a no-op); across registries it is uploaded unless it is already there, through a temporary file
    (``TMPDIR``), so a layer never has to fit in memory.
    """
    upload_url = ""
    if src.registry == dst.registry:
        upload_url = dst.mount_blob(dst_repo, digest, src_repo)
        if not upload_url:
            return
    elif dst.blob_exists(dst_repo, digest):
        return
    try:
        spool = tempfile.TemporaryFile()
    except OSError as exc:
        raise _spool_error(exc) from None
    with spool:
        src.download_blob(src_repo, digest, spool)
        dst.upload_blob(dst_repo, digest, spool, upload_url)


def copy_manifest_blobs(src: RegistryClient, src_repo: str, dst: RegistryClient, dst_repo: str, manifest: dict) -> None:
    """Copy the config and layers of an image manifest (its parsed JSON) into ``dst/dst_repo``, in parallel.

    Foreign layers (descriptors with ``urls``) stay where their URLs point.
    """
    digests = [
        blob["digest"]
        for blob in [manifest.get("config") or {}, *(manifest.get("layers") or [])]
        if blob.get("digest") and not blob.get("urls")
    ]
    parallel(lambda digest: copy_blob(src, src_repo, dst, dst_repo, digest), digests)
