"""The blob store contract.

A store holds two kinds of things: committed blobs, addressed by digest and immutable, and upload
sessions, addressed by an opaque id, whose bytes only become a blob through `BlobWriter.commit`, which
verifies the digest first. A blob is therefore never visible before its digest has been checked.
Everything streams; no method takes or returns a whole blob.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from pathlib import Path
from typing import Protocol

from registry.types import Digest

# Awaited once a blob's bytes are all in and verified, right before they appear at the digest's address:
# where a writer renews its hold on the digest, however long the body took to arrive.
BeforePublish = Callable[[], Awaitable[None]]


class BlobUnreadable(Exception):
    """A committed blob whose bytes the store cannot give: missing, or shorter than the read asks for.

    The index, not the store, says which blobs exist; this is what a lost disk or a file deleted or
    truncated by hand looks like from a read. `read` raises it before its first piece whenever it can,
    so the API can still answer with an error instead of a status line and a body cut short.
    """

    def __init__(self, digest: Digest, reason: str) -> None:
        super().__init__(f"{digest}: {reason}")


class BlobWriter(Protocol):
    """An open upload session. Bytes are appended in order; `size` is what has been accepted so far."""

    @property
    def size(self) -> int: ...

    async def write(self, chunks: AsyncIterator[bytes]) -> int:
        """Append a stream of bytes. On failure nothing of this call is kept, so a retry starts clean."""
        ...

    async def commit(self, expected: Digest, before_publish: BeforePublish | None = None) -> int:
        """Verify the content against `expected` and make it a blob; returns its size.

        Raises DIGEST_INVALID (and discards the session) when the bytes do not match. An object already
        at the digest's address is never trusted: the verified bytes replace it.
        """
        ...

    async def publish_whole(
        self, chunks: AsyncIterator[bytes], expected: Digest, before_publish: BeforePublish | None = None
    ) -> int:
        """With nothing staged (`size` 0): verify `chunks` as the whole blob and make it one, as
        `BlobStore.ingest` does, and end the session; returns the blob's size. A wrong digest
        (DIGEST_INVALID) keeps nothing of `chunks` and leaves the session as it was."""
        ...

    async def close(self) -> None:
        """Release resources without committing; the session stays resumable."""
        ...


class BlobStore(Protocol):
    async def check(self) -> None:
        """Raise unless the store can be read and written now (readiness): cheap, no blob is touched."""
        ...

    async def stat(self, digest: Digest) -> int | None:
        """Size of a committed blob, or None."""
        ...

    def read(self, digest: Digest, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) of a committed blob.

        Raises BlobUnreadable, at the latest when the first piece is asked for, when the blob's bytes
        are missing or end before `end`.
        """
        ...

    async def small_blob(self, digest: Digest, size: int) -> bytes | None:
        """A whole committed blob of `size` bytes, verified, when it is small enough to be kept in
        memory (later calls answer from there); None when it is not. Raises BlobUnreadable when the
        stored bytes are missing, short, or not the digest's."""
        ...

    def local_path(self, digest: Digest) -> Path | None:
        """Where a committed blob's bytes sit as a local file, for a server that sends files itself
        (pathsend); None when the store keeps no such file. Only names the place: the file may be
        missing or damaged, which the caller checks with `stat`."""
        ...

    def redirect_url(self, digest: Digest) -> str | None:
        """A short-lived URL the client may fetch a committed blob's bytes from itself, sparing the
        server the transfer (`storage.redirect.disable: false`); None when pulls go through the server."""
        ...

    async def delete(self, digest: Digest) -> None:
        """Remove a committed blob's bytes. Idempotent: deleting a missing blob is not an error."""
        ...

    async def ingest(
        self, chunks: AsyncIterator[bytes], expected: Digest, before_publish: BeforePublish | None = None
    ) -> int:
        """Store a whole blob sent in one request, verified against `expected`; returns its size.

        As for `commit`, the verified bytes replace whatever was at the digest's address.
        """
        ...

    async def purge_ingest(self, before: float) -> int:
        """Remove what interrupted `ingest` calls left, last written before the `before` timestamp."""
        ...

    async def purge_uploads(self, before: float, live: Collection[str]) -> int:
        """Remove staged session bytes last written before `before` whose session id is not in `live`
        (S3 multipart uploads aborted too): what a session left when its index row went without it.
        Sessions the index still knows are removed with `delete_upload`. Returns how many things went.
        """
        ...

    async def open_upload(self, upload_id: str, generation: int | None = None) -> BlobWriter:
        """Resume a session. The index says which sessions exist; the store has a session's bytes
        only once some were written, and a session it has none of is empty.

        `generation` is the number of the caller's write claim on the session (see
        services/sessions.py). A running hash this process kept is only trusted when it was left by the
        claim just before (`generation - 1`); otherwise some other writer may have changed the stored
        bytes since, and commit hashes what is stored instead. Without a generation the writer is for
        looking at the size only.
        """
        ...

    async def delete_upload(self, upload_id: str) -> None: ...

    # Scrub and collector: the walk over every committed blob and the way a corrupt one is taken out
    # of service.

    def list_blobs(self) -> AsyncIterator[Digest]:
        """Every committed blob's digest, in no promised order (quarantined ones are not blobs)."""
        ...

    def list_blob_times(self) -> AsyncIterator[tuple[Digest, float]]:
        """Every committed blob's digest with the time (POSIX seconds) it was last published.

        For a collector of bytes no index row names (a crash between publish and link leaves them):
        every publish, a re-push of the same bytes included, sets this time, so removing only blobs
        older than a grace never takes bytes from a push still on its way to its link.
        """
        ...

    async def quarantine(self, digest: Digest) -> str | None:
        """Move a committed blob out of the blobs' namespace, keeping its bytes for inspection.

        Afterwards `stat` says None and nothing serves those bytes; a new commit of the right bytes
        publishes afresh. Returns where the bytes went, or None when there was no such blob.
        """
        ...
