"""Garbage collection: remove the bytes of blobs that nothing references any more.

Reachability comes from manifests, as in every other registry: each manifest present in a repository,
tagged or not, keeps alive what it references (configs, layers, child manifests, whose own references
count in turn). A repository's link to a blob protects it only for a grace period after the last push
or mount that made it, since a push in progress uploads its blobs before its manifest. So the layers of
a deleted image are reclaimed once their links are older than the grace period.

It runs while no push can happen: with every server stopped, or serving with `read_only: true`, as
Distribution's garbage collector does. That is what makes it safe: a push may find a blob's bytes
already stored and skip writing them, and a collector running beside it could remove those bytes between
that check and the push's manifest referencing the blob. (Each blob is still re-checked, and its links
and record dropped, in one transaction before its bytes go.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from registry.index import MetadataIndex
from registry.storage import BlobStore
from registry.types import Digest

DEFAULT_GRACE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Collected:
    blobs: int
    bytes: int


async def collect_garbage(
    index: MetadataIndex, store: BlobStore, grace: timedelta = DEFAULT_GRACE, dry_run: bool = False
) -> Collected:
    """Forget each blob that is garbage (see above) in the index, then delete its bytes; with dry_run,
    only count."""
    linked_before = datetime.now(UTC) - grace
    blobs = size = 0
    for text in await index.unreferenced_blobs(linked_before):
        digest = Digest.parse(text)
        stored = await store.stat(digest) or 0
        if dry_run or await index.forget_blob(text, linked_before):
            if not dry_run:
                await store.delete(digest)
            blobs += 1
            size += stored
    return Collected(blobs, size)
