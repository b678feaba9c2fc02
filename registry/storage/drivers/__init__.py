"""What a storage driver is: path I/O and nothing about digests, sessions or visibility.

A driver stores plain objects under `/`-separated paths relative to its root (a folder, or a bucket
and key prefix). Every rule about content (hashing, verification, which bytes become a blob and when)
lives in `registry.storage.content`, once for all drivers, as Distribution keeps them in its one
blob writer above its `StorageDriver`. A driver adds only what its medium makes fast: the filesystem
writes large pieces off the event loop, starts their write-back early and names a local file for
the HTTP server to send itself; S3 streams multipart uploads and copies server-side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Entry:
    """One stored object: its path (relative to the driver's root), size and last-modified time."""

    path: str
    size: int
    modified: float


class Writer(Protocol):
    """An object being written in one or more calls, possibly from several processes in turn.

    A writer's bytes are not an object yet: `commit` makes them one at `path`, `cancel` drops them.
    """

    path: str

    @property
    def size(self) -> int:
        """How many bytes earlier calls have appended."""
        ...

    async def write(self, chunks: AsyncIterator[bytes], observe: Callable[[bytes], None]) -> int:
        """Append a stream; returns how many bytes it held.

        Every byte kept passes once through `observe`, in order (perhaps in a worker thread, in
        pieces of the driver's choosing): that is how the content layer hashes without reading
        back. On failure nothing of this call is kept, so a retry starts from `size` as it was.
        """
        ...

    async def commit(self) -> None:
        """Make the bytes a durable, plain object at `path` (readable with `Driver.read`).

        Afterwards the writer is spent: no bookkeeping of it is left, and it cannot be resumed.
        """
        ...

    async def publish(self, target: str) -> None:
        """`commit`, then `Driver.move` to `target`, in one step where the medium allows it (the
        filesystem: one worker-thread call instead of two). For bytes already verified."""
        ...

    async def cancel(self) -> None:
        """Remove what this writer stored so far, bookkeeping included. Idempotent."""
        ...


class Driver(Protocol):
    async def check(self) -> None:
        """Raise unless the storage can be read and written now; cheap, no object is touched."""
        ...

    async def stat(self, path: str) -> Entry | None:
        """The object at `path`, or None."""
        ...

    def read(self, path: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) of an object.

        Raises FileNotFoundError when it is missing and EOFError when it ends before `end`, both
        before the first piece whenever the driver can tell.
        """
        ...

    async def put(self, path: str, data: bytes) -> None:
        """Store a whole (small) object durably and atomically: a reader sees the old one or the new
        one, and a crash leaves no part of `data` at `path`."""
        ...

    async def writer(self, path: str, *, resume: bool) -> Writer:
        """Begin an empty writer at `path`, or with `resume` take up the one there (FileNotFoundError
        when there is none). Paths of new writers are fresh names; the filesystem also refuses one
        already there (FileExistsError)."""
        ...

    async def move(self, source: str, target: str) -> None:
        """Move a committed object to `target`, replacing whatever is there; durable on return.

        The target's modified time is the time of the move: publishing restarts any grace a
        collector counts from it.
        """
        ...

    async def delete(self, path: str) -> None:
        """Remove the object at `path`; a missing one is not an error."""
        ...

    def list(self, prefix: str) -> AsyncIterator[Entry]:
        """Every object below the folder `prefix`, in no promised order; writers' data is not listed
        by every driver (see `abort_writers`)."""
        ...

    async def abort_writers(self, prefix: str, before: float, keep: Callable[[str], bool]) -> int:
        """Cancel writers below `prefix` begun before `before` whose path `keep` rejects, where their
        bytes are not objects `list` sees (S3's multipart uploads); returns how many."""
        ...

    def local_path(self, path: str) -> Path | None:
        """The local file holding an object, for file sends; None when there is no such file."""
        ...

    def where(self, path: str) -> str:
        """Where `path` is, spelled for an operator (an absolute file path, a bucket's key)."""
        ...

    def url(self, path: str) -> str | None:
        """A short-lived URL a client may fetch the object from itself, sparing the server the transfer
        (S3's presigned GET, when redirects are on); None when reads go through the server."""
        ...
