"""A detached container's output, stdout and stderr kept apart in one file, in the order they came.

Each chunk is a frame as Docker's attach stream frames them: one byte for the stream (1 stdout,
2 stderr), three zero bytes, the length as 4 bytes big-endian, then the bytes. One file (not one per
stream) keeps the interleaving, so `logs` replays each stream to its own descriptor in order.
"""

from __future__ import annotations

import errno
import os
import select
import struct
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, Final

STDOUT: Final = 1
STDERR: Final = 2
_HEADER: Final = struct.Struct(">B3xI")
_CHUNK: Final = 65536
_POLL: Final = 0.1


def record(sources: dict[int, int], log: int) -> None:
    """Copy each descriptor of `sources` (descriptor -> stream) into `log` as frames until all end.
    A terminal's master end ends with EIO once the last process closed it."""
    open_sources = dict(sources)
    while open_sources:
        try:
            ready, _, _ = select.select(list(open_sources), [], [])
        except InterruptedError:
            continue
        for fd in ready:
            try:
                data = os.read(fd, _CHUNK)
            except OSError as error:
                if error.errno != errno.EIO:
                    raise
                data = b""
            if not data:
                del open_sources[fd]
                continue
            frame = memoryview(_HEADER.pack(open_sources[fd], len(data)) + data)
            while frame:
                frame = frame[os.write(log, frame) :]


def replay(log: BinaryIO, more: Callable[[], bool]) -> Iterator[tuple[int, bytes]]:
    """(stream, bytes) of each frame; at the end, wait for more while `more()` says the container runs."""
    while True:
        alive = more()  # asked before reading: output written before it stopped is still read below
        start = log.tell()
        header = log.read(_HEADER.size)
        if len(header) == _HEADER.size:
            stream, length = _HEADER.unpack(header)
            data = log.read(length)
            if len(data) == length:
                yield stream, data
                continue
        if not alive:
            return
        log.seek(start)  # a frame still being written: read it whole later
        time.sleep(_POLL)
