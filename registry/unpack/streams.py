"""A layer blob as its uncompressed tar stream, digested on the way through and bounded in size.

The compression is read from the blob's first bytes rather than trusted from the media type (registries
and tools mislabel layers); both the blob digest and the diff_id are computed while the bytes stream, so
a layer is never held in memory nor read twice.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import zstandard

from registry.unpack.errors import UnpackError

# What a truncated or corrupt blob raises while it is read (BadGzipFile is an OSError: test it first).
CORRUPT = (tarfile.TarError, EOFError, zlib.error, zstandard.ZstdError, gzip.BadGzipFile)
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20


class HashingReader(io.RawIOBase):
    """Hashes (and reports to `on_read`, which may refuse by raising) every byte read through it."""

    def __init__(
        self, source: BinaryIO, algorithm: str, on_read: Callable[[int], None] | None = None
    ) -> None:
        super().__init__()
        self._source = source
        self._algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self._source.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            if self._on_read is not None:
                self._on_read(count)
            self._hash.update(memoryview(buffer)[:count])
        return count or 0

    def drain(self) -> None:
        """Read to the end: trailing bytes after the tar's end marker still belong to the digest."""
        buffer = bytearray(CHUNK)
        while self.readinto(buffer):
            pass

    @property
    def digest(self) -> str:
        return f"{self._algorithm}:{self._hash.hexdigest()}"


def _algorithm(digest: str) -> str:
    algorithm = digest.partition(":")[0]
    if algorithm not in ("sha256", "sha512"):
        raise ValueError(f"unsupported digest algorithm in {digest!r}")
    return algorithm


class LayerStream:
    """Open a layer blob; `tar` is its uncompressed stream. `verify()` after reading checks both digests."""

    def __init__(self, path: Path, digest: str, diff_id: str, on_read: Callable[[int], None]) -> None:
        self.digest = digest
        self.diff_id = diff_id
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close(), the stream outlives this call
        magic = self._file.read(4)
        self._file.seek(0)
        self._compressed = HashingReader(self._file, _algorithm(digest))  # type: ignore[arg-type]
        decompressed: BinaryIO
        if magic.startswith(GZIP_MAGIC):
            decompressed = gzip.GzipFile(fileobj=self._compressed, mode="rb")
        elif magic == ZSTD_MAGIC:
            decompressed = zstandard.ZstdDecompressor().stream_reader(  # type: ignore[assignment]
                self._compressed, read_across_frames=True, closefd=False
            )
        else:
            decompressed = self._compressed  # type: ignore[assignment]
        self._decompressed = decompressed
        self.tar = HashingReader(decompressed, _algorithm(diff_id), on_read)

    def verify(self) -> None:
        try:
            self.tar.drain()
        except CORRUPT as error:
            raise UnpackError(self.digest, f"corrupt compressed stream: {error}") from error
        self._compressed.drain()
        if self._compressed.digest != self.digest:
            raise UnpackError(
                self.digest, f"blob digest mismatch: the file hashes to {self._compressed.digest}"
            )
        if self.tar.digest != self.diff_id:
            raise UnpackError(
                self.digest, f"diff_id mismatch: the config says {self.diff_id}, the tar is {self.tar.digest}"
            )

    def close(self) -> None:
        self._decompressed.close()
        self._file.close()
