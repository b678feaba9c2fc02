"""The background scrub a server runs every `scrub_interval` seconds, reading at most `scrub_rate` bytes/s.

Off the hot path: reads are paced and hashed in worker threads, and only one worker process per host
scrubs (an flock on `<data_dir>/scrub.lock`, held for the process's life, so the next worker takes over
when that one exits). Servers on several hosts sharing a bucket each scrub: set the interval on one.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from pathlib import Path

from registry.config import Settings
from registry.index import MetadataIndex
from registry.scrub.check import scrub
from registry.storage import BlobStore

log = logging.getLogger("registry.scrub")


def start_background_scrub(
    settings: Settings, index: MetadataIndex, store: BlobStore
) -> asyncio.Task[None] | None:
    """The scrub task, or None when `scrub_interval` is 0 (off)."""
    if settings.scrub.interval <= 0:
        return None
    lock = settings.data_dir / "scrub.lock"
    return asyncio.create_task(
        _scrub_forever(index, store, settings.scrub.interval, settings.scrub.rate, lock)
    )


async def _scrub_forever(
    index: MetadataIndex, store: BlobStore, interval: float, rate: int, lock: Path
) -> None:
    held: int | None = None
    try:
        while True:
            await asyncio.sleep(interval)
            held = held if held is not None else _try_lock(lock)
            if held is None:
                continue
            try:
                scrubbed = await scrub(index, store, rate=rate, report=lambda f: log.warning("scrub: %s", f))
                log.info("%s", scrubbed)
            except Exception:
                log.exception("scrub failed")
    finally:
        if held is not None:
            os.close(held)


def _try_lock(path: Path) -> int | None:
    """An exclusive lock on `path` (its descriptor), or None while another process holds it."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
