"""The content store: every rule about digests and visibility, once, over any storage driver.

Layout, in paths relative to the driver's root (a folder, or a bucket's key prefix):

    blobs/
      sha256/
        ab/
          abcdef0123...        one committed blob, named by its digest; only ever replaced by verified bytes
      sha512/...
    uploads/
      <session id>             the staged bytes of one upload session, from its first write on (a
                               session written in one PUT never has any); on S3 a multipart upload of that
      <session id>.state       key, with its bookkeeping and its tail (the bytes short of a 5 MiB part)
      <session id>.tail.<r>    beside it (see drivers/s3.py)
    ingest/
      <random id>              a blob arriving in one request (POST ?digest=) too large for one piece,
                               and the filesystem's staged small writes; anything old here was left by
                               a crash, and is removed (S3 multipart uploads aborted) by `purge_ingest`
    quarantine/
      sha256/
        abcdef0123....<time>   a blob `registry scrub` found corrupt, moved aside (UTC timestamp)

The rules, for every driver:
- A blob is never visible before its digest has been checked: bytes reach `blobs/` only by a driver's
  move of a committed object, or its atomic put of a small body, after the check.
- What already sits at a digest's address is never trusted (a bad disk, bytes written by hand): the
  verified bytes replace it, which costs no more than the check that would have skipped it.
- Publishing sets the blob's modified time (`Driver.move`, `Driver.put`). A crash between publish and
  the index's link leaves bytes no index row names; a collector finds them with `list_blob_times` and
  may remove one only once it is older than a grace longer than any publish-to-link step, so a push
  in flight never loses its bytes.
- A writer's `before_publish` is awaited after the check, right before the bytes appear: there it
  holds the digest against collectors (services/blobs.py), however long the body took to arrive.
- Bytes are hashed as they arrive (in the driver's worker thread where it has one). The running sha256
  of a session stays in the process that received the bytes, and is trusted by a later request only
  under the write-claim generation rule of `BlobStore.open_upload`; anywhere else (or for another
  algorithm) commit hashes what is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection
from datetime import UTC, datetime
from pathlib import Path

from registry.errors import ErrorCode, RegistryError
from registry.storage.base import BeforePublish, BlobUnreadable
from registry.storage.drivers import Driver, Writer
from registry.types import Digest

BLOBS = "blobs"
UPLOADS = "uploads"
INGEST = "ingest"
# A single-request body up to this size is hashed and stored in one go, and not at all when wrong.
SMALL_BODY = 4 * 1024 * 1024
# A body up to this size is hashed on the event loop (about 40 us for sha256), not in a worker thread.
INLINE_HASH = 64 * 1024
# Whole blobs up to this size are kept in memory once read (verified), `SMALL_BLOBS_TOTAL` bytes of
# them at most, the least recently read going first: see `ContentStore.small_blob`.
SMALL_BLOB = 1024 * 1024
SMALL_BLOBS_TOTAL = 16 * 1024 * 1024
# Running hashes of sessions whose bytes this process received, so a commit in a later request does
# not re-read the staged bytes. Bounded: a session evicted here is re-hashed from storage instead.
MAX_CACHED_HASHERS = 4096


def blob_path(digest: Digest) -> str:
    return f"{BLOBS}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def _blob_digest(path: str) -> Digest | None:
    """The digest a listed `blobs/<algorithm>/<shard>/<name>` stands for; None for a stray entry."""
    parts = path.split("/")
    if len(parts) != 4:
        return None
    _, algorithm, shard, name = parts
    try:
        digest = Digest.parse(f"{algorithm}:{name}")
    except RegistryError:
        return None
    return digest if digest.hex[:2] == shard else None


def _quarantine_path(digest: Digest) -> str:
    """`quarantine/<algorithm>/<hex>.<UTC time>`: sortable, and a blob quarantined twice keeps both."""
    return f"quarantine/{digest.algorithm}/{digest.hex}.{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}"


def _upload_path(upload_id: str) -> str:
    return f"{UPLOADS}/{upload_id}"


def _upload_id(path: str) -> str:
    """The session a path below `uploads/` belongs to (its bookkeeping included)."""
    return path.removeprefix(UPLOADS + "/").partition("/")[0].partition(".")[0]


def _verify(expected: Digest, actual_hex: str) -> None:
    if actual_hex != expected.hex:
        raise RegistryError(
            ErrorCode.DIGEST_INVALID,
            {"expected": str(expected), "actual": f"{expected.algorithm}:{actual_hex}"},
        )


def _hex(algorithm: str, data: bytes) -> str:
    return hashlib.new(algorithm, data).hexdigest()


async def _hex_soon(algorithm: str, data: bytes) -> str:
    """`_hex`, on the event loop for a small body (less than the hop to a worker thread and back)."""
    if len(data) <= INLINE_HASH:
        return _hex(algorithm, data)
    return await asyncio.to_thread(_hex, algorithm, data)


def _ignore(_: bytes) -> None:
    """What a writer's bytes pass through when nobody keeps a running hash of them."""


class _HashState:
    """A running sha256 over the first `offset` bytes of a session, as left by write claim
    `generation` (see BlobStore.open_upload)."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.offset = 0
        self.generation = 0


class ContentStore:
    """A `BlobStore` on any `Driver`."""

    def __init__(self, driver: Driver, small_total: int = SMALL_BLOBS_TOTAL) -> None:
        """`small_total`: the bytes of small blobs kept in memory (`small_blob`); 0 keeps none."""
        self.driver = driver
        self._hashes: OrderedDict[str, _HashState] = OrderedDict()
        self._small: OrderedDict[Digest, bytes] = OrderedDict()
        self._small_total = 0
        self._small_limit = small_total

    async def check(self) -> None:
        await self.driver.check()

    async def stat(self, digest: Digest) -> int | None:
        entry = await self.driver.stat(blob_path(digest))
        return None if entry is None else entry.size

    async def read(self, digest: Digest, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        try:
            async for piece in self.driver.read(blob_path(digest), start, end):
                yield piece
        except FileNotFoundError:
            raise BlobUnreadable(digest, "no bytes in the store") from None
        except EOFError as error:
            raise BlobUnreadable(digest, str(error)) from None

    async def small_blob(self, digest: Digest, size: int) -> bytes | None:
        """A whole blob of at most SMALL_BLOB bytes, from memory after its first read here.

        Content named by its digest never changes, so what was read once and verified is the blob's
        bytes for as long as this process runs, whatever happens to the stored copy. Only verified
        bytes are kept or returned: stored bytes that do not match their digest raise BlobUnreadable.
        Sending a kept blob costs one copy into the server; sending a file costs a read per 128 KiB in
        granian's worker threads, two and a half times slower for a 1 MiB blob (bench.py).
        """
        if size > SMALL_BLOB:
            return None
        data = self._small.get(digest)
        if data is not None:
            self._small.move_to_end(digest)
            return data
        data = b"".join([piece async for piece in self.read(digest, 0, size)])
        if len(data) != size or await _hex_soon(digest.algorithm, data) != digest.hex:
            raise BlobUnreadable(digest, "the stored bytes do not match the digest")
        if digest not in self._small:  # another request may have read it meanwhile
            self._small[digest] = data
            self._small_total += size
            while self._small_total > self._small_limit:
                _, oldest = self._small.popitem(last=False)
                self._small_total -= len(oldest)
        return data

    def local_path(self, digest: Digest) -> Path | None:
        return self.driver.local_path(blob_path(digest))

    def redirect_url(self, digest: Digest) -> str | None:
        return self.driver.url(blob_path(digest))

    async def delete(self, digest: Digest) -> None:
        await self.driver.delete(blob_path(digest))

    async def ingest(
        self, chunks: AsyncIterator[bytes], expected: Digest, before_publish: BeforePublish | None = None
    ) -> int:
        """A whole blob in one request, with no session: verified and published, or nothing kept.

        A body that fits in one piece (most configs and small layers) is hashed and then stored with
        one atomic put, and not stored at all if its digest is wrong.
        """
        first: list[bytes] = []
        buffered = 0
        stream = aiter(chunks)
        async for chunk in stream:
            first.append(chunk)
            buffered += len(chunk)
            if buffered >= SMALL_BODY:
                break
        else:
            data = b"".join(first)
            _verify(expected, await _hex_soon(expected.algorithm, data))
            await _ready(before_publish)
            await self.driver.put(blob_path(expected), data)
            return len(data)
        hasher = expected.hasher()
        file = await self.driver.writer(f"{INGEST}/{uuid.uuid4().hex}", resume=False)
        try:
            await file.write(_chain(first, stream), hasher.update)
        except BaseException:
            await asyncio.gather(file.cancel(), return_exceptions=True)
            raise
        try:
            return await self._publish(file, expected, hasher.hexdigest, before_publish)
        finally:
            await self.driver.delete(file.path)

    async def _publish(
        self,
        file: Writer,
        expected: Digest,
        known: Callable[[], str] | None,
        before_publish: BeforePublish | None,
    ) -> int:
        """Commit a writer, verify its bytes (`known`: their running hash) and move them into place."""
        size = file.size
        if known is not None:
            try:
                _verify(expected, known())
            except RegistryError:
                await file.cancel()  # never committed: its bookkeeping (S3's multipart upload) goes too
                raise
            await _ready(before_publish)
            await file.publish(blob_path(expected))
            return size
        await file.commit()
        _verify(expected, await self._hash_stored(file.path, expected.algorithm))
        await _ready(before_publish)
        await self.driver.move(file.path, blob_path(expected))
        return size

    async def _hash_stored(self, path: str, algorithm: str) -> str:
        hasher = hashlib.new(algorithm)
        async for piece in self.driver.read(path):
            await asyncio.to_thread(hasher.update, piece)
        return hasher.hexdigest()

    async def purge_ingest(self, before: float) -> int:
        """Remove single-request uploads last written before `before` (a crash left them)."""
        removed = await self.driver.abort_writers(INGEST, before, lambda _: False)
        async for entry in self.driver.list(INGEST):
            if entry.modified < before:
                await self.driver.delete(entry.path)
                removed += 1
        return removed

    async def purge_uploads(self, before: float, live: Collection[str]) -> int:
        """Remove the staged bytes of sessions not in `live`, last written before `before`.

        For a collector: `live` are the sessions the index knows, so this takes what a session
        left when its index row went without it (a crash, an expiry purge cut short), S3 multipart
        uploads included. Returns how many objects and multipart uploads went.
        """
        removed = await self.driver.abort_writers(UPLOADS, before, lambda path: _upload_id(path) in live)
        async for entry in self.driver.list(UPLOADS):
            if entry.modified < before and _upload_id(entry.path) not in live:
                await self.driver.delete(entry.path)
                removed += 1
        return removed

    async def open_upload(self, upload_id: str, generation: int | None = None) -> Session:
        try:
            file: Writer | None = await self.driver.writer(_upload_path(upload_id), resume=True)
        except FileNotFoundError:
            file = None  # nothing staged yet: the first write begins the file
        size = 0 if file is None else file.size
        state = None
        if generation is not None:
            state = self._hashes.pop(upload_id, None)
            if state is not None and (state.generation != generation - 1 or state.offset != size):
                # Another writer came in between; commit hashes what is stored.
                state = None
            if state is None and size == 0:
                # Still empty: this writer can hash every byte itself.
                state = _HashState()
        return Session(self, upload_id, file, state, generation)

    async def delete_upload(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
        path = _upload_path(upload_id)
        try:
            file = await self.driver.writer(path, resume=True)
        except FileNotFoundError:
            pass
        else:
            await file.cancel()
        # A session committed but not yet moved is a plain object.
        await self.driver.delete(path)

    def _remember(self, upload_id: str, state: _HashState) -> None:
        self._hashes[upload_id] = state
        while len(self._hashes) > MAX_CACHED_HASHERS:
            self._hashes.popitem(last=False)

    # Scrub and collector

    async def list_blob_times(self) -> AsyncIterator[tuple[Digest, float]]:
        async for entry in self.driver.list(BLOBS):
            digest = _blob_digest(entry.path)
            if digest is not None:
                yield digest, entry.modified

    async def list_blobs(self) -> AsyncIterator[Digest]:
        async for digest, _ in self.list_blob_times():
            yield digest

    async def quarantine(self, digest: Digest) -> str | None:
        target = _quarantine_path(digest)
        try:
            await self.driver.move(blob_path(digest), target)
        except FileNotFoundError:
            return None
        return self.driver.where(target)


class Session:
    """An open upload session (a `BlobWriter`): a driver's writer with the session's running hash.

    A session has no file (no driver writer) until its first write: most clients push a layer with a
    POST and one PUT carrying every byte, and those bytes go straight to `ingest` (`publish_whole`)
    without ever being staged, which spares a file's creation and deletion.
    """

    def __init__(
        self,
        store: ContentStore,
        upload_id: str,
        file: Writer | None,
        state: _HashState | None,
        generation: int | None,
    ) -> None:
        self._store = store
        self._id = upload_id
        self._file = file
        # None when bytes of this session arrived under another writer: commit re-reads them.
        self._state = state
        # The write claim this writer works under; None for a look at the size.
        self._generation = generation

    @property
    def size(self) -> int:
        return 0 if self._file is None else self._file.size

    async def write(self, chunks: AsyncIterator[bytes]) -> int:
        if self._file is None:
            self._file = await self._store.driver.writer(_upload_path(self._id), resume=False)
        state = self._state
        if state is None:
            return await self._file.write(chunks, _ignore)
        # A copy, so bytes of a failed call (which the driver drops) never reach the kept hash.
        hasher = state.hasher.copy()
        written = await self._file.write(chunks, hasher.update)
        state.hasher = hasher
        state.offset = self._file.size
        return written

    async def commit(self, expected: Digest, before_publish: BeforePublish | None = None) -> int:
        """Verify and publish; on a mismatch the session is deleted."""
        if self._file is None:
            return await self.publish_whole(_no_bytes(), expected, before_publish)
        state = self._state
        known = state.hasher.hexdigest if state is not None and expected.algorithm == "sha256" else None
        try:
            size = await self._store._publish(self._file, expected, known, before_publish)
        except RegistryError:
            await self._store.delete_upload(self._id)
            raise
        self._spent()
        return size

    async def publish_whole(
        self, chunks: AsyncIterator[bytes], expected: Digest, before_publish: BeforePublish | None = None
    ) -> int:
        """With nothing staged: publish `chunks` as the whole blob (`ContentStore.ingest`), and end the
        session, its empty file included if it has one. A wrong digest keeps nothing."""
        size = await self._store.ingest(chunks, expected, before_publish)
        if self._file is not None:
            await self._store.delete_upload(self._id)
        self._spent()
        return size

    def _spent(self) -> None:
        self._store._hashes.pop(self._id, None)
        self._generation = None  # nothing for `close` to keep

    async def close(self) -> None:
        if self._state is not None and self._generation is not None:
            self._state.generation = self._generation
            self._store._remember(self._id, self._state)


async def _ready(before_publish: BeforePublish | None) -> None:
    if before_publish is not None:
        await before_publish()


async def _no_bytes() -> AsyncIterator[bytes]:
    """An empty body: what a session that never staged a byte commits."""
    for piece in ():
        yield piece


async def _chain(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in first:
        yield chunk
    async for chunk in rest:
        yield chunk
