"""Blob reads, deletes, mounts and upload sessions.

A blob becomes visible in a repository in one order only: bytes staged, digest verified by the store's
commit, then linked in the index. A crash between any two steps leaves at worst an unreferenced file
that garbage collection removes, never a visible blob that is wrong or incomplete. Before publishing, a
writer holds the digest in the index, so a collector never deletes bytes being published (see
registry/lifecycle/collector.py).
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from registry.errors import ErrorCode, RegistryError
from registry.events import Action, Dispatcher, Event, Target
from registry.index import BytesHold, MetadataIndex, UploadBusy
from registry.lifecycle.guards import Guards
from registry.lifecycle.hooks import LINK, PUBLISH, Pause, no_pause
from registry.services.sessions import SessionClaim, claim_session
from registry.storage import BeforePublish, BlobStore, BlobUnreadable, BlobWriter
from registry.types import Digest

log = logging.getLogger("registry")
# Repositories holding a blob that a mount without `from` considers.
MOUNT_CANDIDATES = 100
# ASCII digits only (\d takes any script's), and at most int64's 19, which int() converts in bounded time.
# How long a writer's hold on a digest keeps a collector from deleting its bytes, should the writer die
# between holding and linking: longer than any store takes to publish a blob. A hold taken before a body
# streamed in is taken again before publishing once it has less than half of this left.
PUBLISH_HOLD = timedelta(hours=1)
_CONTENT_RANGE = re.compile(r"(?:bytes )?([0-9]{1,19})-([0-9]{1,19})(?:/(?:[0-9]{1,19}|\*))?")


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Inclusive first and last byte, as HTTP counts them."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def parse_content_range(header: str) -> ByteRange:
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if not match:
        raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, {"Content-Range": header}, status=416)
    first, last = int(match.group(1)), int(match.group(2))
    if last < first:
        raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, {"Content-Range": header}, status=416)
    return ByteRange(first, last)


def _wrong_offset(size: int, message: str) -> RegistryError:
    return RegistryError(
        ErrorCode.BLOB_UPLOAD_INVALID,
        {"offset": size},
        message=message,
        status=416,
        headers={"Range": f"0-{size - 1}" if size else "0-0"},
    )


def _in_order(body: AsyncIterator[bytes], content_range: str | None, size: int) -> AsyncIterator[bytes]:
    """A chunk's bytes, refused with 416 unless its Content-Range starts where the staged bytes end."""
    if content_range is None:
        return body
    span = parse_content_range(content_range)
    if span.first != size:
        raise _wrong_offset(size, "chunk does not start at the end of the upload")
    return _exactly(body, span.length)


async def _exactly(chunks: AsyncIterator[bytes], expected: int) -> AsyncIterator[bytes]:
    """Pass a body through, failing (so the writer rolls back) if it is not `expected` bytes long."""
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > expected:
            raise RegistryError(ErrorCode.SIZE_INVALID, {"expected": expected, "received": ">" + str(seen)})
        yield chunk
    if seen != expected:
        raise RegistryError(ErrorCode.SIZE_INVALID, {"expected": expected, "received": seen})


async def _resumed(piece: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A stream whose first piece was already taken: that piece, then the rest."""
    if piece:
        yield piece
    async for chunk in rest:
        yield chunk


def _now() -> datetime:
    return datetime.now(UTC)


def _hold_of(digest: Digest) -> BytesHold:
    return BytesHold(str(digest), _now() + PUBLISH_HOLD)


class BlobService:
    def __init__(
        self,
        index: MetadataIndex,
        store: BlobStore,
        events: Dispatcher,
        upload_expiry: int,
        max_uploads: int = 0,
        guards: Guards | None = None,
        link_refresh: float = 1800.0,
        pause: Pause = no_pause,
    ) -> None:
        self.index = index
        # Quotas refuse a blob too large for its namespace before its bytes are read, where its size is
        # known then (see Guards.check_blob).
        self.guards = guards
        self.store = store
        self.events = events
        self.upload_expiry = upload_expiry
        # Open sessions per repository (0: no limit). Checked, not reserved: concurrent POSTs may
        # overshoot by a few, which is fine for a limit meant to stop runaway clients.
        self.max_uploads = max_uploads
        # A HEAD finding a blob linked longer ago than this many seconds (half the collector's grace)
        # moves its link time to now: the client will likely reference it instead of pushing it.
        self.link_refresh = timedelta(seconds=link_refresh)
        self.pause = pause

    async def size(self, repository: str, digest: Digest) -> int:
        size = await self.index.blob_size(repository, str(digest))
        if size is None:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, {"digest": str(digest)})
        return size

    async def found(self, repository: str, digest: Digest) -> tuple[int, float]:
        """`size` for a HEAD: a client about to reference the blob, so its link is kept fresh (a write
        only when the link is older than `link_refresh`); and until when (POSIX seconds) the link stays
        fresh, so that an answer kept until then needs no write."""
        link = await self.index.blob_link(repository, str(digest))
        if link is None:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, {"digest": str(digest)})
        size, linked_at = link
        # Read first: a HEAD of a fresh link writes nothing (a write per HEAD cost half its rate).
        now = datetime.now(UTC)
        if linked_at < now - self.link_refresh:
            await self.index.refresh_link(repository, str(digest), now - self.link_refresh)
            linked_at = now
        return size, (linked_at + self.link_refresh).timestamp()

    async def open(self, repository: str, digest: Digest, first: int, end: int) -> AsyncIterator[bytes]:
        """Bytes [first, end) of a blob, its first piece already read from the store.

        Reading it before the response starts is what lets a blob the index lists but the store lost
        (a dead disk, a file deleted or cut short by hand) answer BLOB_UNKNOWN instead of a 200 and a
        short body; it costs no extra round trip, since that piece is the one sent first anyway.
        """
        stream = self.store.read(digest, first, end)
        try:
            piece = await anext(stream, b"")
        except BlobUnreadable as error:
            raise _unreadable(repository, digest, error) from None
        self.pulled(repository, digest, end - first)
        return _resumed(piece, stream)

    async def small(self, repository: str, digest: Digest, size: int, first: int, end: int) -> bytes | None:
        """Bytes [first, end) of a blob of `size` bytes small enough to be kept in memory (see
        `BlobStore.small_blob`), or None for a larger one. As with `open`, bytes the store lost or
        that do not match their digest answer BLOB_UNKNOWN before any status line."""
        try:
            data = await self.store.small_blob(digest, size)
        except BlobUnreadable as error:
            raise _unreadable(repository, digest, error) from None
        if data is None:
            return None
        self.pulled(repository, digest, end - first)
        return data[first:end]  # the whole blob is `data` itself, not a copy

    def redirect(self, repository: str, digest: Digest, size: int) -> str | None:
        """Where the client may fetch a whole blob itself (a presigned S3 URL), or None to serve it.
        The store is not asked whether it still has the bytes: a lost object is the bucket's 404."""
        url = self.store.redirect_url(digest)
        if url is not None:
            self.pulled(repository, digest, size)
        return url

    def pulled(self, repository: str, digest: Digest, size: int) -> None:
        """A pull event: once per GET of the blob's bytes, one answered from a kept answer included."""
        self.events.emit(Event.now(Target.BLOB, Action.PULL, repository, digest=str(digest), size=size))

    async def local_file(self, repository: str, digest: Digest, size: int) -> Path | None:
        """The file a server may send itself for a whole blob of `size` bytes, or None when the store
        has no local files. As with `open`, a file that is missing or not `size` bytes long answers
        BLOB_UNKNOWN before any status line, never a short or overlong body."""
        path = self.store.local_path(digest)
        if path is None:
            return None
        stored = await self.store.stat(digest)
        if stored != size:
            found = "no file in the store" if stored is None else f"the file holds {stored} bytes"
            raise _unreadable(repository, digest, f"{found}, the index says {size}")
        # A pull as much as `open`'s (metrics and webhooks once missed the file sends).
        self.pulled(repository, digest, size)
        return path

    async def delete(self, repository: str, digest: Digest) -> None:
        event = Event.now(Target.BLOB, Action.DELETE, repository, digest=str(digest))
        if not await self.index.unlink_blob(repository, str(digest), self.events.outbox([event])):
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, {"digest": str(digest)})
        self.events.emit(event)

    async def mount(self, repository: str, digest: Digest, source: str) -> bool:
        """Link a blob of `source` into `repository`; False when it must be uploaded instead."""
        size = await self.index.blob_size(source, str(digest))  # for the event; the mount re-checks
        if size is None:
            return False
        mounted = Event.now(
            Target.BLOB, Action.MOUNT, repository, digest=str(digest), size=size, from_repository=source
        )
        if (
            await self.index.mount_blob(source, repository, str(digest), self.events.outbox([mounted]))
            is None
        ):
            return False  # forgotten by a collector since: the client uploads it
        self.events.emit(mounted)
        return True

    async def mount_readable(self, repository: str, digest: Digest, readable: Callable[[str], bool]) -> bool:
        """A mount without `from`: from a repository holding the blob that `readable` (the caller's
        pull rights) admits, so a digest alone never reaches another team's content.

        Only the first MOUNT_CANDIDATES holders, in name order, are looked at: one bounded query even for
        a base layer in thousands of repositories; past them the client simply uploads the blob.
        """
        holders = await self.index.repositories_holding(str(digest), MOUNT_CANDIDATES)
        source = next((holder for holder in holders if readable(holder)), None)
        return source is not None and await self.mount(repository, digest, source)

    # Upload sessions

    async def start_upload(self, repository: str) -> str:
        if self.max_uploads and await self.index.count_uploads(repository) >= self.max_uploads:
            raise RegistryError(
                ErrorCode.TOOMANYREQUESTS,
                {"repository": repository, "maxUploads": self.max_uploads},
                message=f"{repository} already has {self.max_uploads} open upload sessions: "
                "finish or cancel some first",
            )
        upload_id = str(uuid.uuid4())
        # The store has nothing of a session until its first bytes (see Session in storage/content.py).
        await self.index.create_upload(upload_id, repository)
        return upload_id

    @contextlib.asynccontextmanager
    async def _writing(
        self, repository: str, upload_id: str, hold: BytesHold | None = None
    ) -> AsyncIterator[tuple[SessionClaim, BlobWriter]]:
        """Hold the session's write claim (with `hold`, taken in the same transaction) and an open
        writer; the claim is released on the way out.

        A second writer gets 416 with the session's current Range, as for a chunk at the wrong offset.
        """
        try:
            claim = await claim_session(self.index, upload_id, repository, hold)
        except UploadBusy:
            size = await self._staged_size(upload_id)
            raise _wrong_offset(size, "the upload session is being written by another request") from None
        if claim is None:
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"upload": upload_id})
        writer = None
        try:
            writer = await self.store.open_upload(upload_id, claim.generation)
            yield claim, writer
        finally:
            if writer is not None:
                await writer.close()
            await claim.release()

    async def _staged_size(self, upload_id: str) -> int:
        return (await self.store.open_upload(upload_id)).size

    async def upload_size(self, repository: str, upload_id: str) -> int:
        if not await self.index.upload_exists(upload_id, repository):
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"upload": upload_id})
        return await self._staged_size(upload_id)

    async def append(
        self, repository: str, upload_id: str, body: AsyncIterator[bytes], content_range: str | None
    ) -> int:
        """Stream a chunk (or, without Content-Range, the rest of the blob) into a session."""
        async with self._writing(repository, upload_id) as (claim, writer):
            await writer.write(claim.fenced(_in_order(body, content_range, writer.size)))
            return writer.size

    async def finish(
        self,
        repository: str,
        upload_id: str,
        digest: Digest,
        body: AsyncIterator[bytes],
        content_range: str | None,
        length: int | None = None,
    ) -> None:
        """Take the last bytes (`length` of them, when the request said), verify the digest and publish
        the blob; the session ends either way, but for a last chunk at the wrong offset, refused (416)
        before anything is written, as a PATCH's is, or one over a quota (403).

        The claim holds the digest's bytes (see `publish_hold`) in its own transaction. When nothing is
        staged (a POST, then this PUT with every byte: what docker and skopeo do for each layer), the
        body is published as a single-request upload is, never staged in the session: one claim, one
        write and one link in all.
        """
        hold = _hold_of(digest)
        async with self._writing(repository, upload_id, hold) as (claim, writer):
            if length is not None:
                await self._check_room(repository, digest, writer.size + length)
            body = claim.fenced(_in_order(body, content_range, writer.size))
            held = self.publish_hold(digest, hold)
            try:
                if writer.size == 0:
                    size = await writer.publish_whole(body, digest, held)
                else:
                    await writer.write(body)
                    claim.check()
                    size = await writer.commit(digest, held)
            except RegistryError as error:
                if error.code is ErrorCode.DIGEST_INVALID:
                    await self._discard(upload_id)
                raise
            await self._link_pushed(repository, digest, size, upload_id)
            claim.ended = True

    async def upload(
        self, repository: str, digest: Digest, body: AsyncIterator[bytes], length: int | None = None
    ) -> None:
        """A monolithic upload (`length` bytes, when the request said): no session is recorded, the
        store takes the bytes in one go."""
        if length is not None:
            await self._check_room(repository, digest, length)
        size = await self.store.ingest(body, digest, self.publish_hold(digest))
        await self._link_pushed(repository, digest, size)

    def publish_hold(self, digest: Digest, taken: BytesHold | None = None) -> BeforePublish:
        """What a writer has the store await right before it publishes the digest's bytes: a hold that
        keeps collectors off them until our link (or PUBLISH_HOLD), and waits for a delete of them in
        progress to finish. A hold `taken` earlier (with a session's claim, sparing a transaction), or by
        an earlier call of the same callable, is taken again only once it has less than half of
        PUBLISH_HOLD left: a body may stream for longer than the hold lasts, and bytes published after
        it lapsed could be deleted before their link."""
        held = taken

        async def hold() -> None:
            nonlocal held
            if held is None or _now() > held.until - PUBLISH_HOLD / 2:
                held = _hold_of(digest)
                await self.index.hold_bytes(held)
            await self.pause(PUBLISH, str(digest))

        return hold

    async def adopt(self, repository: str, digest: Digest, size: int) -> None:
        """Link bytes put in the store by something other than a push (the importer), which held the
        digest first (`publish_hold`); no event: nobody pushed them."""
        await self.pause(LINK, str(digest))
        await self.index.link_blob(repository, str(digest), size)

    async def _link_pushed(
        self, repository: str, digest: Digest, size: int, upload_id: str | None = None
    ) -> None:
        """Link a committed blob, its push event stored in the same transaction, then emit that event."""
        pushed = Event.now(Target.BLOB, Action.PUSH, repository, digest=str(digest), size=size)
        await self.pause(LINK, str(digest))
        await self.index.link_blob(repository, str(digest), size, upload_id, self.events.outbox([pushed]))
        self.events.emit(pushed)

    async def _check_room(self, repository: str, digest: Digest, size: int) -> None:
        if self.guards is not None:
            await self.guards.check_blob(repository, str(digest), size)

    async def cancel(self, repository: str, upload_id: str) -> None:
        if not await self.index.upload_exists(upload_id, repository):
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"upload": upload_id})
        await self._discard(upload_id)

    async def _discard(self, upload_id: str) -> None:
        await self.index.delete_upload(upload_id)
        await self.store.delete_upload(upload_id)

    async def purge_expired(self) -> int:
        before = datetime.now(UTC) - timedelta(seconds=self.upload_expiry)
        expired = await self.index.expired_uploads(before)
        for upload_id in expired:
            await self._discard(upload_id)
        # What sessions whose index row went without them left (a crash between the two deletes),
        # S3 multipart uploads included: only staged bytes as old as an expired session's.
        leftovers = await self.store.purge_uploads(before.timestamp(), set(await self.index.upload_ids()))
        return len(expired) + leftovers + await self.store.purge_ingest(before.timestamp())


def _unreadable(repository: str, digest: Digest, reason: BlobUnreadable | str) -> RegistryError:
    """What a blob the index lists but the store cannot give answers: one integrity line, and
    BLOB_UNKNOWN for the client."""
    log.error("integrity: blob %s of repository %s is unreadable: %s", digest, repository, reason)
    return RegistryError(ErrorCode.BLOB_UNKNOWN, {"digest": str(digest)})
