"""Helpers for the lifecycle tests: rules as the environment gives them to a server or a command, pushes
of small images, the server's own index opened in the test for what only time can show; and for the
collector's races, the services of several "replicas" (each its own index connections and store client,
as separate servers have) on one real database and one real store."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.config import Settings
from registry.events import Dispatcher
from registry.index import SQLIndex
from registry.index.migrate import upgrade
from registry.lifecycle.collector import Collector
from registry.lifecycle.guards import Guards
from registry.lifecycle.hooks import Pause, no_pause
from registry.lifecycle.settings import ImmutableTagSettings, QuotaSettings
from registry.services import BlobService, ManifestService
from tests.e2e.test_skopeo import busybox, skopeo
from tests.storage.conftest import Backend, backend, moto_endpoint
from tests.support.oci import image_manifest, put_manifest, sha256
from tests.support.server import RegistryProcess

__all__ = ["backend", "busybox", "moto_endpoint", "skopeo"]


def rules(**sections: list[dict[str, Any]]) -> dict[str, str]:
    """`REGISTRY_<SECTION>_RULES` variables: rules(quotas=[{"repositories": "a/*", "limit": 10}])."""
    return {f"REGISTRY_{name.upper()}_RULES": json.dumps(value) for name, value in sections.items()}


def push_image(
    client: httpx.Client, repo: str, reference: str, name: str, layers: list[bytes] | None = None
) -> str:
    """Push an image whose config names it (so each name is a manifest of its own); return its digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "name": name}).encode()
    body = image_manifest(
        client, repo, layers=layers if layers is not None else [b"layer of " + name.encode()], config=config
    )
    response = put_manifest(client, repo, reference, body)
    assert response.status_code == 201, response.text
    return sha256(body)


@asynccontextmanager
async def opened_index(server: RegistryProcess) -> AsyncIterator[SQLIndex]:
    """The index the server uses, opened here beside it."""
    index = SQLIndex(
        Settings()
        .with_overrides({"data_dir": server.data_dir, "database.url": server.database_url})
        .index_url
    )
    await index.open()
    try:
        yield index
    finally:
        await index.close()


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
        guards = Guards(index, ImmutableTagSettings(), QuotaSettings())  # no rules: nothing refused
        made.append(Replica(index, blobs, ManifestService(index, Dispatcher(), guards)))
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
