"""The filesystem blob store, the embedded default: the content layer on the filesystem driver."""

from __future__ import annotations

from pathlib import Path

from registry.storage.content import INGEST, SMALL_BLOBS_TOTAL, ContentStore, blob_path
from registry.storage.drivers.filesystem import FilesystemDriver
from registry.types import Digest


class FilesystemStore(ContentStore):
    def __init__(self, root: Path, small_total: int = SMALL_BLOBS_TOTAL) -> None:
        self.root = root
        self._files = FilesystemDriver(root, scratch=INGEST)
        super().__init__(self._files, small_total)

    def blob_path(self, digest: Digest) -> Path:
        """The file of a blob: where tests and file sends find it."""
        return self._files.local_path(blob_path(digest))
