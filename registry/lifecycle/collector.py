"""Online garbage collection: index rows go first, in transactions that re-check; bytes go after the grace.

No read-only mode and no global lock: every step is one short index transaction on the rows concerned,
and writers take the same rows' locks, so each race below has one winner and a safe loser.

What is garbage
  * A blob that no manifest references and that no repository linked within the grace (a push uploads
    its blobs before its manifest; HEAD and mount refresh the link time, so a blob a client just found is
    inside the grace when its manifest arrives).
  * An untagged manifest that is a referrer (has a `subject`) whose subject is gone from its repository:
    signatures and SBOMs go with what they describe. With `untagged`, also every other untagged manifest
    that no index in its repository references (an index's children stay while it lives). Each only once
    pushed before the grace. Collecting a manifest can make more garbage (an index's children, its
    referrers, its blobs): the manifest pass repeats until it finds nothing, then the blob pass runs.
  * Bytes in the store that neither a blob record nor a queued delete describes (a crash between
    publishing and linking): queued like a forgotten blob's.
  * Upload sessions idle past `upload_expiry` (with their staged bytes and S3 multipart uploads) and
    interrupted monolithic uploads: the upload purger's job, which a collection runs too.

Index rows first
  The candidates come from a plain query; each is then forgotten in ONE transaction (blobs in batches
  of BATCH) that locks its row, re-checks the condition in a later statement (on PostgreSQL, read
  committed, that statement sees what any writer that held the row committed) and deletes it. A row a
  writer holds at that moment is skipped (SKIP LOCKED: it is being referenced, and the next run looks
  again), so the collector never waits for a writer and cannot deadlock with one. Deleting a blob drops
  its links and queues its bytes in `gc_pending_deletes` for after the grace; deleting a manifest drops
  its references. Writers that depend on a row hold it for their transaction (`FOR SHARE`; SQLite's
  writes are serialised by `BEGIN IMMEDIATE`):
  * a manifest PUT holds the blobs and child manifests it references. The collector either forgot one
    first, and the PUT fails with MANIFEST_BLOB_UNKNOWN (MANIFEST_UNKNOWN for a child) and the client
    pushes again, or finds the row held (or, locking it after the PUT committed, the new reference)
    and keeps the blob: never both succeed;
  * a mount holds the source's blob row, and fails (the client uploads instead) if it was forgotten;
  * a push of a manifest already there (a tag move onto it) holds its row, and inserts it afresh if
    the collector deleted it meanwhile; tag and manifest deletes only ever make more garbage.

Bytes after
  A writer about to publish bytes at digest D (an upload's commit, a monolithic upload; a future store
  that skips writing bytes already present) first commits a hold: D's queue row set to an hour ahead
  (never earlier than it was), taken right before the publish, or taken again there when the body
  streamed in for over half an hour after it. Its link clears the row. The collector deletes D's
  bytes only while holding D's due queue row (PostgreSQL: `FOR UPDATE SKIP LOCKED` in a transaction
  kept open across the store's delete; SQLite: inside the write transaction) and only if no blob
  record for D exists; then it drops the row and commits. A hold therefore either waits for a delete
  in progress and publishes after it (the bytes are there), or makes the row not due (nothing is
  deleted). Store deletes are idempotent, so a crash before the commit leaves the row, and the next
  run deletes again.

One collector at a time
  A leader lock (PostgreSQL: a session advisory lock; SQLite: an flock beside the database) is held
  for the whole run. A collector that finds it taken does nothing and says so: `run` returns None, and
  `registry gc` prints one line and exits 0, since a collection is running and will do the work.
  (The queue's SKIP LOCKED would let two collectors delete bytes side by side; the lock keeps the
  forget passes from doing the same work twice and keeps the counts meaningful.)

Times are the collector's and writers' clocks (UTC); replicas' clocks should agree to well within the
grace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from registry.events import CollectionFinished, Dispatcher
from registry.index import MetadataIndex
from registry.lifecycle.hooks import (
    DELETE_BYTES,
    FORGET_BLOB,
    FORGET_MANIFEST,
    STORE_PASSES,
    Pause,
    no_pause,
)
from registry.storage import BlobStore
from registry.types import Digest

log = logging.getLogger("registry.gc")
DEFAULT_GRACE = timedelta(hours=1)
# Rounds of the manifest pass: each may expose another level (an index, then its children).
MANIFEST_ROUNDS = 16
# Blobs re-checked and forgotten, and queued byte deletes done, per transaction: few enough that a
# writer waiting for the lock (SQLite's write lock, or a row's) waits milliseconds, enough that a large
# collection is not a transaction per blob.
BATCH = 100


@dataclass(frozen=True, slots=True)
class Collection:
    """What one run removed (or, dry, would remove): counts for the operator and for metrics."""

    manifests: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    orphans: int = 0
    deleted: int = 0
    freed: int = 0
    uploads: int = 0
    dry_run: bool = False

    def __str__(self) -> str:
        if self.dry_run:
            return (
                f"would remove {self.manifests} manifest(s) and {self.blobs} blob(s)"
                f" ({self.blob_bytes} bytes) from the index; {self.orphans} stored blob(s) have no"
                f" record; {self.deleted} queued byte delete(s) are due"
            )
        return (
            f"removed {self.manifests} manifest(s) and {self.blobs} blob(s) ({self.blob_bytes} bytes) from"
            f" the index; queued {self.orphans} orphan(s); deleted {self.deleted} blob(s) from the store,"
            f" {self.freed} bytes freed; purged {self.uploads} expired upload(s)"
        )


async def stored_digests(store: BlobStore, published_before: datetime) -> AsyncIterator[Digest]:
    """Every blob the store holds that was published before `published_before`: the orphan sweep's one
    view of the store, which leaves out the bytes of a push still on its way to its record."""
    limit = published_before.timestamp()
    async for digest, published in store.list_blob_times():
        if published <= limit:
            yield digest


class Collector:
    def __init__(
        self,
        index: MetadataIndex,
        store: BlobStore,
        grace: timedelta = DEFAULT_GRACE,
        untagged: bool = False,
        purge_uploads: Callable[[], Awaitable[int]] | None = None,
        pause: Pause = no_pause,
        events: Dispatcher | None = None,
    ) -> None:
        self.index = index
        self.store = store
        self.grace = grace
        self.untagged = untagged
        self.purge_uploads = purge_uploads
        self.pause = pause
        # Where a finished run is announced (CollectionFinished: the gc metrics count it).
        self.events = events

    async def run(self, dry_run: bool = False) -> Collection | None:
        """One collection under the leader lock; None when another collector holds it."""
        async with self.index.collector_lock() as leader:
            if not leader:
                return None
            if dry_run:
                return await self._survey()
            started = time.monotonic()
            collected = await self._collect()
            if self.events is not None:
                seconds = time.monotonic() - started
                self.events.emit(CollectionFinished(collected.deleted, collected.freed, seconds))
            return collected

    async def _collect(self) -> Collection:
        manifests = await self._forget_manifests()
        blobs, blob_bytes = await self._forget_blobs()
        await self.pause(STORE_PASSES, "")
        orphans = await self._queue_orphans()
        freed = 0

        async def delete(text: str) -> None:
            nonlocal freed
            await self.pause(DELETE_BYTES, text)
            digest = Digest.parse(text)
            size = await self.store.stat(digest) or 0  # awaited before the sum: deletes run side by side
            await self.store.delete(digest)
            freed += size

        deleted = await self.index.delete_due_bytes(_now(), delete, BATCH)
        uploads = await self.purge_uploads() if self.purge_uploads is not None else 0
        return Collection(manifests, blobs, blob_bytes, orphans, len(deleted), freed, uploads)

    async def _forget_manifests(self) -> int:
        forgotten = 0
        for _ in range(MANIFEST_ROUNDS):
            created_before = _now() - self.grace
            found = 0
            for repository, digest in await self.index.garbage_manifests(created_before, self.untagged):
                await self.pause(FORGET_MANIFEST, digest)
                if await self.index.forget_manifest(repository, digest, created_before, self.untagged):
                    log.info("gc: removed manifest %s@%s", repository, digest)
                    found += 1
            forgotten += found
            if not found:
                break
        return forgotten

    async def _forget_blobs(self) -> tuple[int, int]:
        now = _now()
        linked_before, delete_after = now - self.grace, now + self.grace
        candidates = await self.index.unreferenced_blobs(linked_before)
        blobs = size = 0
        for start in range(0, len(candidates), BATCH):
            batch = candidates[start : start + BATCH]
            await self.pause(FORGET_BLOB, batch[0])
            forgotten = await self.index.forget_blobs(batch, linked_before, delete_after)
            blobs += len(forgotten)
            size += sum(stored for _, stored in forgotten)
        return blobs, size

    async def _queue_orphans(self) -> int:
        known = set(await self.index.blob_digests(None))
        delete_after = _now() + self.grace
        queued = 0
        async for digest in stored_digests(self.store, _now() - self.grace):
            if str(digest) not in known and await self.index.queue_orphan(str(digest), delete_after):
                log.info("gc: stored blob %s has no record: queued for deletion", digest)
                queued += 1
        return queued

    async def _survey(self) -> Collection:
        """A dry run: the first manifest pass's and the blob pass's candidates, unrecorded bytes and the
        queued deletes due now; nothing changes (so what collecting manifests would expose is not seen)."""
        now = _now()
        manifests = await self.index.garbage_manifests(now - self.grace, self.untagged)
        blobs = await self.index.unreferenced_blobs(now - self.grace)
        sizes = [await self.index.any_blob_size(digest) or 0 for digest in blobs]
        known = set(await self.index.blob_digests(None))
        orphans = [
            digest
            async for digest in stored_digests(self.store, now - self.grace)
            if str(digest) not in known
        ]
        due = await self.index.due_deletes(now)
        return Collection(len(manifests), len(blobs), sum(sizes), len(orphans), due, dry_run=True)


def _now() -> datetime:
    return datetime.now(UTC)
