"""The collector inside `registry serve`: every `gc.interval` seconds, in each worker of each replica.

Running it everywhere is what makes it survive any one process: each run takes the leader lock first
(see collector.py), so one runs and the rest skip that round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from registry.config import GcSettings
from registry.events import Dispatcher
from registry.index import MetadataIndex
from registry.lifecycle.collector import Collector
from registry.storage import BlobStore

log = logging.getLogger("registry.gc")


def start_background_gc(
    settings: GcSettings,
    index: MetadataIndex,
    store: BlobStore,
    purge_uploads: Callable[[], Awaitable[int]],
    events: Dispatcher,
) -> asyncio.Task[None] | None:
    """The collector's task, or None when `gc.interval` is 0 (off)."""
    if settings.interval <= 0:
        return None
    grace = timedelta(seconds=settings.grace)
    collector = Collector(index, store, grace, settings.untagged, purge_uploads=purge_uploads, events=events)
    return asyncio.create_task(_collect_forever(collector, settings.interval))


async def _collect_forever(collector: Collector, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            collected = await collector.run()
        except Exception:
            log.exception("gc: the collection failed; the next one retries")
            continue
        if collected is not None:
            log.info("gc: %s", collected)
