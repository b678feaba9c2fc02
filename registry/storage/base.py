"""The blob store contract.

A store holds two kinds of things: committed blobs, addressed by digest and immutable, and upload
sessions, addressed by an opaque id, whose bytes only become a blob through `BlobWriter.commit`, which
verifies the digest first. A blob is therefore never visible before its digest has been checked.
Everything streams; no method takes or returns a whole blob.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from registry.types import Digest


class BlobWriter(Protocol):
    """An open upload session. Bytes are appended in order; `size` is what has been accepted so far."""

    @property
    def size(self) -> int: ...

    async def write(self, chunks: AsyncIterator[bytes]) -> int:
        """Append a stream of bytes. On failure nothing of this call is kept, so a retry starts clean."""
        ...

    async def commit(self, expected: Digest) -> int:
        """Verify the content against `expected` and make it a blob; returns its size.

        Raises DIGEST_INVALID (and discards the session) when the bytes do not match.
        """
        ...

    async def close(self) -> None:
        """Release resources without committing; the session stays resumable."""
        ...


class BlobStore(Protocol):
    async def stat(self, digest: Digest) -> int | None:
        """Size of a committed blob, or None."""
        ...

    def read(self, digest: Digest, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) of a committed blob; FileNotFoundError when there is none."""
        ...

    async def delete(self, digest: Digest) -> None: ...

    async def ingest(self, chunks: AsyncIterator[bytes], expected: Digest) -> int:
        """Store a whole blob sent in one request, verified against `expected`; returns its size."""
        ...

    async def purge_ingest(self, before: float) -> int:
        """Remove what interrupted `ingest` calls left, last written before the `before` timestamp."""
        ...

    async def create_upload(self, upload_id: str) -> None: ...

    async def open_upload(self, upload_id: str) -> BlobWriter | None:
        """Resume a session, or None when it does not exist."""
        ...

    async def delete_upload(self, upload_id: str) -> None: ...

    # Scrub: the walk over every committed blob and the way a corrupt one is taken out of service.

    def list_blobs(self) -> AsyncIterator[Digest]:
        """Every committed blob's digest, in no promised order (quarantined ones are not blobs)."""
        ...

    async def quarantine(self, digest: Digest) -> str | None:
        """Move a committed blob out of the blobs' namespace, keeping its bytes for inspection.

        Afterwards `stat` says None and a new commit of the right bytes publishes afresh (a store skips
        writing a blob it already holds, so a corrupt one left in place would never be replaced).
        Returns where the bytes went, or None when there was no such blob.
        """
        ...
