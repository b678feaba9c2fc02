"""Blob reads, deletes, mounts and upload sessions.

A blob becomes visible in a repository in one order only: bytes staged, digest verified by the store's
commit, then linked in the index. A crash between any two steps leaves at worst an unreferenced file
that garbage collection removes, never a visible blob that is wrong or incomplete.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from registry.errors import ErrorCode, RegistryError
from registry.index import MetadataIndex
from registry.storage import BlobStore, BlobWriter
from registry.types import Digest

# At most 19 digits an offset: more is past any upload, and int() refuses numbers over 4300 digits long.
_CONTENT_RANGE = re.compile(r"(?:bytes )?(\d{1,19})-(\d{1,19})(?:/(?:\d{1,19}|\*))?")


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


class BlobService:
    def __init__(self, index: MetadataIndex, store: BlobStore, upload_expiry: int) -> None:
        self.index = index
        self.store = store
        self.upload_expiry = upload_expiry

    async def size(self, repository: str, digest: Digest) -> int:
        size = await self.index.blob_size(repository, str(digest))
        if size is None:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, {"digest": str(digest)})
        return size

    def read(self, digest: Digest, first: int, end: int) -> AsyncIterator[bytes]:
        return self.store.read(digest, first, end)

    async def delete(self, repository: str, digest: Digest) -> None:
        if not await self.index.unlink_blob(repository, str(digest)):
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, {"digest": str(digest)})

    async def mount(self, repository: str, digest: Digest, source: str | None) -> bool:
        """Link a blob the registry holds into `repository`; False when it must be uploaded instead."""
        if source is not None:
            size = await self.index.blob_size(source, str(digest))
        else:
            size = await self.index.any_blob_size(str(digest))
        if size is None:
            return False
        await self.index.link_blob(repository, str(digest), size)
        return True

    # Upload sessions

    async def start_upload(self, repository: str) -> str:
        upload_id = str(uuid.uuid4())
        await self.store.create_upload(upload_id)
        await self.index.create_upload(upload_id, repository)
        return upload_id

    async def _open(self, repository: str, upload_id: str) -> BlobWriter:
        writer = None
        if await self.index.upload_exists(upload_id, repository):
            writer = await self.store.open_upload(upload_id)
        if writer is None:
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"upload": upload_id})
        return writer

    async def upload_size(self, repository: str, upload_id: str) -> int:
        writer = await self._open(repository, upload_id)
        await writer.close()
        return writer.size

    async def append(
        self, repository: str, upload_id: str, body: AsyncIterator[bytes], content_range: str | None
    ) -> int:
        """Stream a chunk (or, without Content-Range, the rest of the blob) into a session."""
        writer = await self._open(repository, upload_id)
        try:
            if content_range is not None:
                span = parse_content_range(content_range)
                if span.first != writer.size:
                    raise RegistryError(
                        ErrorCode.BLOB_UPLOAD_INVALID,
                        {"offset": writer.size, "Content-Range": content_range},
                        message="chunk does not start at the end of the upload",
                        status=416,
                        headers={"Range": f"0-{writer.size - 1}" if writer.size else "0-0"},
                    )
                body = _exactly(body, span.length)
            await writer.write(body)
            await self.index.touch_upload(upload_id)
            return writer.size
        finally:
            await writer.close()

    async def finish(
        self, repository: str, upload_id: str, digest: Digest, body: AsyncIterator[bytes]
    ) -> None:
        """Take the last bytes, verify the digest and publish the blob; the session ends either way."""
        writer = await self._open(repository, upload_id)
        try:
            await writer.write(body)
            size = await writer.commit(digest)
        except RegistryError as error:
            if error.code is ErrorCode.DIGEST_INVALID:
                await self._discard(upload_id)
            else:
                await writer.close()
            raise
        await self.index.link_blob(repository, str(digest), size, upload_id)

    async def upload(self, repository: str, digest: Digest, body: AsyncIterator[bytes]) -> None:
        """A monolithic upload: no session is recorded, the store takes the bytes in one go."""
        size = await self.store.ingest(body, digest)
        await self.index.link_blob(repository, str(digest), size)

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
        return len(expired) + await self.store.purge_ingest(before.timestamp())
