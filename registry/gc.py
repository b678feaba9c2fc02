"""Garbage collection: remove the bytes of blobs that nothing references any more.

A blob deleted from a repository (or one left behind when its manifests went) keeps its bytes until
this runs. It runs while no push can happen: with every server stopped, or serving with
`read_only: true`, as Distribution's garbage collector does. That is what makes it safe: a push may
find a blob's bytes already stored and skip writing them, and a collector running beside it could
remove those bytes between that check and the push linking the blob.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.index import MetadataIndex
from registry.storage import BlobStore
from registry.types import Digest


@dataclass(frozen=True, slots=True)
class Collected:
    blobs: int
    bytes: int


async def collect_garbage(index: MetadataIndex, store: BlobStore, dry_run: bool = False) -> Collected:
    """Forget each unreferenced blob in the index, then delete its bytes; with dry_run, only count."""
    blobs = size = 0
    for text in await index.unreferenced_blobs():
        digest = Digest.parse(text)
        stored = await store.stat(digest) or 0
        if dry_run or await index.forget_blob(text):
            if not dry_run:
                await store.delete(digest)
            blobs += 1
            size += stored
    return Collected(blobs, size)
