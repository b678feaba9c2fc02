"""Lifecycle fixtures: the collector and the services of several "replicas" (each its own index
connections and store client, as separate servers have) on one real database and one real store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from registry.events import Dispatcher
from registry.index import SQLIndex
from registry.index.migrate import upgrade
from registry.lifecycle.collector import Collector
from registry.lifecycle.hooks import Pause, no_pause
from registry.services import BlobService, ManifestService
from tests.storage.conftest import Backend, backend, moto_endpoint

__all__ = ["backend", "moto_endpoint"]


@pytest.fixture(params=["sqlite", "postgresql"])
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated index of the test's own, on SQLite or on the session's PostgreSQL cluster."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'index.db'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    upgrade(url)
    return url


@dataclass
class Replica:
    index: SQLIndex
    blobs: BlobService
    manifests: ManifestService

    def collector(self, grace: float = 0, untagged: bool = False, pause: Pause = no_pause) -> Collector:
        return Collector(
            self.index, self.blobs.store, timedelta(seconds=grace), untagged, self.blobs.purge_expired, pause
        )


@contextlib.asynccontextmanager
async def replicas(
    url: str, backend: Backend, count: int = 2, pauses: tuple[Pause, ...] = ()
) -> AsyncIterator[list[Replica]]:
    """`count` replicas; the i-th's services pause with `pauses[i]` where given."""
    made = []
    for number in range(count):
        index = SQLIndex(url)
        await index.open()
        pause = pauses[number] if number < len(pauses) else no_pause
        blobs = BlobService(index, backend.open(), Dispatcher(), upload_expiry=3600, pause=pause)
        made.append(Replica(index, blobs, ManifestService(index, Dispatcher())))
    try:
        yield made
    finally:
        for replica in made:
            await replica.index.close()


@dataclass
class Barrier:
    """Holds whoever reaches `point` (for `digest`, or any) until released, and says when someone is
    held there: each race test forces one interleaving with it instead of hoping for one."""

    point: str
    digest: str | None = None
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    seen: list[str] = field(default_factory=list)

    async def __call__(self, point: str, digest: str) -> None:
        self.seen.append(f"{point} {digest}")
        if point == self.point and self.digest in (None, digest) and not self.released.is_set():
            self.reached.set()
            await self.released.wait()


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]
