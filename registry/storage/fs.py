"""The filesystem blob store, the embedded default.

Layout under the root:

    <root>/
      blobs/
        sha256/
          ab/
            abcdef0123...        one committed blob, named by its digest; only ever replaced by verified bytes
        sha512/...
      uploads/
        <session id>             the staged bytes of one upload session
      ingest/
        <random id>              a blob arriving in one request (POST ?digest=); anything old here
                                 was left by a crash, and is removed by `purge_ingest`
      quarantine/
        sha256/
          abcdef0123....<time>   a blob `registry scrub` found corrupt, moved aside (UTC timestamp)

A session's bytes are hashed as they arrive (sha256, the digest nearly every client uses), gathered
into large pieces and written by a worker thread while the next piece is still being received. Commit
fsyncs the staged file, checks the digest and renames it into place, so a crash at any moment leaves
either no blob or a whole, verified one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import hashlib
import os
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path

import aiofiles
import aiofiles.os

from registry.errors import ErrorCode, RegistryError
from registry.storage.base import BlobUnreadable
from registry.storage.naming import parse_blob_name, quarantine_name
from registry.types import Digest

WRITE_PIECE = 4 * 1024 * 1024
# Pulls: fewer, larger reads cut the per-piece cost through hypercorn (1 MiB: ~1.8 GB/s, 4 MiB: ~2.5).
READ_PIECE = 4 * 1024 * 1024
# Running hashes of sessions whose bytes this process received, so a commit in a later request does
# not re-read the staged file. Bounded: a session evicted here is re-hashed from disk instead.
MAX_CACHED_HASHERS = 4096


class _HashState:
    """A running sha256 over the first `offset` bytes of a staged file, as left by write claim
    `generation` (see BlobStore.open_upload)."""

    def __init__(self, generation: int = 0) -> None:
        self.hasher = hashlib.sha256()
        self.offset = 0
        self.generation = generation


class FilesystemStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "blobs"
        self._uploads = root / "uploads"
        self._ingest = root / "ingest"
        self._hashes: OrderedDict[str, _HashState] = OrderedDict()
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._uploads.mkdir(parents=True, exist_ok=True)
        self._ingest.mkdir(parents=True, exist_ok=True)

    def blob_path(self, digest: Digest) -> Path:
        return self._blobs / digest.algorithm / digest.hex[:2] / digest.hex

    def upload_path(self, upload_id: str) -> Path:
        return self._uploads / upload_id

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        for folder in (self._blobs, self._uploads, self._ingest):
            if not folder.is_dir():
                raise NotADirectoryError(f"{folder} is not a folder")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise PermissionError(f"{folder} is not writable")

    async def stat(self, digest: Digest) -> int | None:
        try:
            return (await aiofiles.os.stat(self.blob_path(digest))).st_size
        except FileNotFoundError:
            return None

    async def read(self, digest: Digest, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        try:
            handle = await aiofiles.open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise BlobUnreadable(digest, "no file in the store") from None
        try:
            if end is not None:
                # The open file's own inode: no path lookup, no disk access, so no worker thread either.
                stored = os.fstat(handle.fileno()).st_size
                if stored < end:
                    raise BlobUnreadable(digest, f"the file holds {stored} bytes, the read needs {end}")
            if start:
                await handle.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                piece = await handle.read(READ_PIECE if remaining is None else min(READ_PIECE, remaining))
                if not piece:
                    if remaining:
                        raise BlobUnreadable(digest, "the file was cut short while being read")
                    break
                if remaining is not None:
                    remaining -= len(piece)
                yield piece
        finally:
            await handle.close()

    def local_path(self, digest: Digest) -> Path:
        return self.blob_path(digest)

    def redirect_url(self, digest: Digest) -> None:
        """Files have no URL of their own: pulls go through the server."""
        return None

    async def delete(self, digest: Digest) -> None:
        with contextlib.suppress(FileNotFoundError):
            await aiofiles.os.remove(self.blob_path(digest))

    async def ingest(self, chunks: AsyncIterator[bytes], expected: Digest) -> int:
        """A whole blob in one request, with no session: verified and published, or nothing kept.

        A body that fits in one piece (most configs and small layers) is hashed, written, fsynced
        and renamed in a single worker-thread call, and not written at all if its digest is wrong.
        """
        first: list[bytes] = []
        buffered = 0
        stream = aiter(chunks)
        async for chunk in stream:
            first.append(chunk)
            buffered += len(chunk)
            if buffered >= WRITE_PIECE:
                break
        else:
            return await asyncio.to_thread(self._ingest_whole, b"".join(first), expected)
        path = self._ingest / uuid.uuid4().hex
        await asyncio.to_thread(path.touch)
        writer = _FileWriter(self, path.name, path, 0, _HashState(), None)
        try:
            await writer.write(_chain(first, stream))
            return await writer.commit(expected)
        finally:
            path.unlink(missing_ok=True)

    def _ingest_whole(self, data: bytes, expected: Digest) -> int:
        actual = hashlib.new(expected.algorithm, data).hexdigest()
        if actual != expected.hex:
            raise _digest_mismatch(expected, actual)
        staged = self._ingest / uuid.uuid4().hex
        with open(staged, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _publish(staged, self.blob_path(expected))
        return len(data)

    async def purge_ingest(self, before: float) -> int:
        """Remove single-request uploads last written before `before` (a crash left them)."""
        return await asyncio.to_thread(self._purge_ingest, before)

    def _purge_ingest(self, before: float) -> int:
        removed = 0
        for path in self._ingest.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < before:
                    path.unlink()
                    removed += 1
        return removed

    async def create_upload(self, upload_id: str) -> None:
        await asyncio.to_thread(self.upload_path(upload_id).touch, exist_ok=False)

    async def open_upload(self, upload_id: str, generation: int | None = None) -> _FileWriter | None:
        path = self.upload_path(upload_id)
        try:
            size = (await aiofiles.os.stat(path)).st_size
        except FileNotFoundError:
            return None
        if generation is None:
            return _FileWriter(self, upload_id, path, size, _HashState(), None)
        state = self._hashes.pop(upload_id, None)
        if state is None or state.generation != generation - 1:
            state = _HashState()
        return _FileWriter(self, upload_id, path, size, state, generation)

    async def delete_upload(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
        with contextlib.suppress(FileNotFoundError):
            await aiofiles.os.remove(self.upload_path(upload_id))

    def _remember(self, upload_id: str, state: _HashState) -> None:
        self._hashes[upload_id] = state
        while len(self._hashes) > MAX_CACHED_HASHERS:
            self._hashes.popitem(last=False)

    # Scrub

    async def list_blobs(self) -> AsyncIterator[Digest]:
        """Walk `blobs/<algorithm>/<xx>/`, one directory listing per worker-thread call."""
        for prefix in await asyncio.to_thread(_subdirectories, self._blobs):
            for name in await asyncio.to_thread(_file_names, prefix):
                digest = parse_blob_name(prefix.parent.name, prefix.name, name)
                if digest is not None:
                    yield digest

    async def quarantine(self, digest: Digest) -> str | None:
        target = self.root / quarantine_name(digest)
        try:
            await asyncio.to_thread(_publish, self.blob_path(digest), target)
        except FileNotFoundError:
            return None
        return str(target)


_SYNC_FILE_RANGE_WRITE = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_sync_file_range = getattr(_libc, "sync_file_range", None)
if _sync_file_range is not None:
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing these pages to disk now, without waiting for it.

    Commit must fsync; started early, the write-back overlaps the rest of the upload instead of
    stalling the final request for seconds on a large blob (and dirty pages stay bounded).
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _publish(staged: Path, target: Path) -> None:
    """Atomically move a fully written, fsynced, verified file to its content address.

    Whatever was there is replaced, never trusted: it may be a corrupt copy (a bad disk, bytes written
    by hand), and a rename costs no more than the check that would have skipped it.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class _FileWriter:
    def __init__(
        self,
        store: FilesystemStore,
        upload_id: str,
        path: Path,
        size: int,
        state: _HashState,
        generation: int | None,
    ) -> None:
        self._store = store
        self._id = upload_id
        self._path = path
        self._size = size
        self._state = state
        # The write claim this writer works under; None for a single-request ingest or a look at the size.
        self._generation = generation

    @property
    def size(self) -> int:
        return self._size

    async def write(self, chunks: AsyncIterator[bytes]) -> int:
        start = self._size
        fd = await asyncio.to_thread(os.open, self._path, os.O_RDWR)
        pending: asyncio.Future[None] | None = None
        buffer: list[bytes] = []
        buffered = 0
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                buffer.append(chunk)
                buffered += len(chunk)
                if buffered >= WRITE_PIECE:
                    # Receive the next piece while a worker thread hashes and writes this one.
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(asyncio.to_thread(self._append, fd, b"".join(buffer)))
                    buffer, buffered = [], 0
            if pending is not None:
                await pending
                pending = None
            if buffer:
                await asyncio.to_thread(self._append, fd, b"".join(buffer))
        except BaseException:
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
            await asyncio.to_thread(self._rollback, fd, start)
            raise
        finally:
            await asyncio.to_thread(os.close, fd)
        return self._size - start

    def _append(self, fd: int, data: bytes) -> None:
        self._catch_up(fd)
        os.pwrite(fd, data, self._size)
        start_writeback(fd, self._size, len(data))
        self._state.hasher.update(data)
        self._size += len(data)
        self._state.offset = self._size

    def _catch_up(self, fd: int) -> None:
        """Hash staged bytes this process did not see arrive (a session resumed in another worker)."""
        state = self._state
        while state.offset < self._size:
            piece = os.pread(fd, min(WRITE_PIECE, self._size - state.offset), state.offset)
            if not piece:
                break
            state.hasher.update(piece)
            state.offset += len(piece)

    def _rollback(self, fd: int, start: int) -> None:
        os.ftruncate(fd, start)
        self._size = start
        self._state = _HashState()

    async def commit(self, expected: Digest) -> int:
        await asyncio.to_thread(self._commit_sync, expected)
        self._store._hashes.pop(self._id, None)
        return self._size

    def _commit_sync(self, expected: Digest) -> None:
        fd = os.open(self._path, os.O_RDWR)
        try:
            if expected.algorithm == "sha256":
                self._catch_up(fd)
                actual = self._state.hasher.hexdigest()
            else:
                actual = _hash_file(fd, expected.algorithm, self._size)
            if actual != expected.hex:
                os.close(fd)
                fd = -1
                self._path.unlink(missing_ok=True)
                raise _digest_mismatch(expected, actual)
            os.fsync(fd)
        finally:
            if fd >= 0:
                os.close(fd)
        _publish(self._path, self._store.blob_path(expected))

    async def close(self) -> None:
        if self._generation is not None:
            self._state.generation = self._generation
            self._store._remember(self._id, self._state)


def _digest_mismatch(expected: Digest, actual_hex: str) -> RegistryError:
    return RegistryError(
        ErrorCode.DIGEST_INVALID, {"expected": str(expected), "actual": f"{expected.algorithm}:{actual_hex}"}
    )


async def _chain(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in first:
        yield chunk
    async for chunk in rest:
        yield chunk


def _hash_file(fd: int, algorithm: str, size: int) -> str:
    hasher = hashlib.new(algorithm)
    offset = 0
    while offset < size:
        piece = os.pread(fd, min(WRITE_PIECE, size - offset), offset)
        if not piece:
            break
        hasher.update(piece)
        offset += len(piece)
    return hasher.hexdigest()


def _subdirectories(blobs: Path) -> list[Path]:
    """The `<algorithm>/<xx>` directories under `blobs/`."""
    return sorted(
        prefix
        for algorithm in blobs.iterdir()
        if algorithm.is_dir()
        for prefix in algorithm.iterdir()
        if prefix.is_dir()
    )


def _file_names(directory: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(directory) if entry.is_file())
