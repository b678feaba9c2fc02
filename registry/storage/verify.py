"""Re-hashing a committed blob, as `registry scrub` does, at a bounded read rate.

The bytes are hashed as `BlobStore.read` delivers them, so what is checked is exactly what a pull would
be sent. Each piece is hashed in a worker thread (hashlib releases the GIL on large buffers), which keeps
a scrub running inside a server from stalling its event loop.
"""

from __future__ import annotations

import asyncio
import time

from registry.storage.base import BlobStore, BlobUnreadable
from registry.types import Digest


class Pace:
    """Spreads reads out to at most `rate` bytes per second on average; 0 means as fast as possible."""

    def __init__(self, rate: int = 0) -> None:
        self.rate = rate
        self._spent = 0
        self._started = time.monotonic()

    async def spend(self, size: int) -> None:
        """Account for `size` bytes just read, sleeping while the reads so far run ahead of the rate."""
        if self.rate <= 0:
            return
        self._spent += size
        ahead = self._spent / self.rate - (time.monotonic() - self._started)
        if ahead > 0:
            await asyncio.sleep(ahead)


async def rehash(store: BlobStore, digest: Digest, pace: Pace) -> tuple[str, int] | None:
    """The hex digest (in `digest`'s algorithm) and size of the stored bytes; None when there are none."""
    hasher = digest.hasher()
    size = 0
    try:
        async for piece in store.read(digest):
            await asyncio.to_thread(hasher.update, piece)
            size += len(piece)
            await pace.spend(len(piece))
    except BlobUnreadable:  # read to the end, so only a missing blob
        return None
    return hasher.hexdigest(), size
