"""Every race between the online collector and writers, each interleaving forced by the collector's and the
services' pause points (registry/lifecycle/hooks.py), on SQLite and PostgreSQL; where the store takes part,
on the filesystem and on S3. Replicas are separate index connections and store clients on the same
database and store, as separate servers are."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from registry.errors import ErrorCode, RegistryError
from registry.index.sql import create_engine
from registry.lifecycle import collector as collector_module
from registry.lifecycle.collector import Collection, Collector
from registry.lifecycle.hooks import (
    DELETE_BYTES,
    FORGET_BLOB,
    FORGET_MANIFEST,
    LINK,
    PUBLISH,
    STORE_PASSES,
    no_pause,
)
from registry.services import blobs as blobs_module
from registry.services.manifests import parse_manifest
from registry.types import Digest
from tests.lifecycle.conftest import Barrier, Replica, body, replicas
from tests.storage.conftest import Backend
from tests.support.oci import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, descriptor, sha256

FILESYSTEM_ONLY = pytest.mark.parametrize("backend", ["filesystem"], indirect=True)
LAYER = b"a layer that two pushes share"


async def _blocked_on_a_lock(url: str, task: asyncio.Task[object]) -> None:
    """Return once `task` waits for a lock the collector holds: observed in pg_stat_activity on
    PostgreSQL; on SQLite (whose busy wait shows nowhere) after giving it the chance to get there. The
    outcome asserted afterwards is the same whether or not it got there first."""
    if url.startswith("sqlite"):
        await asyncio.sleep(0.3)
        assert not task.done()
        return
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            while not await conn.scalar(text(query)):
                assert not task.done(), "the writer finished without waiting for the collector"
                await conn.rollback()
                await asyncio.sleep(0.02)
    finally:
        await engine.dispose()


async def _push_blob(replica: Replica, repository: str, data: bytes) -> Digest:
    digest = Digest.parse(sha256(data))
    await replica.blobs.upload(repository, digest, body(data))
    return digest


async def _push_blobs(replica: Replica, repository: str, blobs: list[bytes]) -> None:
    for blob in blobs:
        await _push_blob(replica, repository, blob)


async def _paused(collector: Collector, held: Barrier) -> asyncio.Task[Collection | None]:
    """A collection running until `held` holds it."""
    collecting = asyncio.create_task(collector.run())
    await held.reached.wait()
    return collecting


def _image(layers: list[bytes], name: str = "image") -> tuple[bytes, list[bytes]]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "name": name}).encode()
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config, OCI_CONFIG),
        "layers": [descriptor(layer, OCI_LAYER) for layer in layers],
    }
    return json.dumps(document).encode(), [config, *layers]


async def _push_image(
    replica: Replica, repository: str, reference: str, layers: list[bytes], name: str = "image"
) -> bytes:
    manifest, blobs = _image(layers, name)
    await _push_blobs(replica, repository, blobs)
    await _put(replica, repository, reference, manifest)
    return manifest


async def _put(
    replica: Replica, repository: str, reference: str, manifest: bytes, kind: str = OCI_MANIFEST
) -> None:
    await replica.manifests.put(repository, parse_manifest(manifest, kind, reference))


async def _stored(backend: Backend, data: bytes) -> bool:
    return await backend.open().stat(Digest.parse(sha256(data))) == len(data)


# Bytes: a publish and a delete of the same digest.


def test_a_publish_waits_for_a_delete_of_its_bytes_in_progress(index_url: str, backend: Backend) -> None:
    """The collector holds a queued delete and is about to delete the bytes; a push of the same blob on
    another replica waits for it, then publishes: the blob is there, whole."""

    async def scenario() -> None:
        held = Barrier(DELETE_BYTES)
        async with replicas(index_url, backend) as (a, b):
            digest = await _push_blob(a, "race/one", LAYER)
            await a.blobs.delete("race/one", digest)
            collecting = await _paused(a.collector(pause=held), held)
            pushing = asyncio.create_task(_push_blob(b, "race/two", LAYER))
            await _blocked_on_a_lock(index_url, pushing)
            held.released.set()
            collected = await collecting
            await pushing
            assert collected is not None and (collected.blobs, collected.deleted) == (1, 1)
            assert await b.blobs.size("race/two", digest) == len(LAYER)
            assert await _stored(backend, LAYER)
            assert (await a.collector(grace=60).run()).deleted == 0  # type: ignore[union-attr]
            assert await _stored(backend, LAYER)

    asyncio.run(scenario())


def test_a_publish_in_progress_keeps_its_bytes_from_the_collector(index_url: str, backend: Backend) -> None:
    """A push holds the digest before publishing; the collector forgets the old record of the same blob
    meanwhile but leaves the bytes, and the push links them."""

    async def scenario() -> None:
        held = Barrier(PUBLISH)
        async with replicas(index_url, backend, pauses=(no_pause, held)) as (a, b):
            digest = await _push_blob(a, "race/one", LAYER)
            await a.blobs.delete("race/one", digest)
            pushing = asyncio.create_task(_push_blob(b, "race/two", LAYER))
            await held.reached.wait()
            collected = await a.collector().run()
            assert collected is not None and (collected.blobs, collected.deleted) == (1, 0)
            held.released.set()
            await pushing
            assert await b.blobs.size("race/two", digest) == len(LAYER)
            assert await _stored(backend, LAYER)
            assert (await a.collector(grace=60).run()).deleted == 0  # type: ignore[union-attr]
            assert await _stored(backend, LAYER)

    asyncio.run(scenario())


@pytest.mark.parametrize("way", ["monolithic", "session, whole body", "session, last chunk"])
def test_a_hold_that_lapsed_while_the_body_streamed_is_taken_again(
    index_url: str, backend: Backend, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push's body takes longer than the hold taken before it (the clocks are moved on while it
    streams); the blob it re-pushes was deleted meanwhile. Between the publish and the link a collector
    forgets the old record and finds the digest's queued delete: the hold taken again before publishing
    keeps it from deleting the bytes just published."""
    later = datetime.now(UTC) + 2 * blobs_module.PUBLISH_HOLD

    async def streamed_for_hours() -> AsyncIterator[bytes]:
        yield LAYER[5:10]
        monkeypatch.setattr(blobs_module, "_now", lambda: later)
        yield LAYER[10:]

    async def scenario() -> None:
        held = Barrier(LINK)
        async with replicas(index_url, backend, pauses=(no_pause, held)) as (a, b):
            digest = await _push_blob(a, "race/one", LAYER)
            await a.blobs.delete("race/one", digest)
            if way == "monolithic":
                pushing = b.blobs.upload("race/two", digest, _chain(LAYER[:5], streamed_for_hours()))
            else:
                session = await b.blobs.start_upload("race/two")
                rest = streamed_for_hours()
                if way == "session, last chunk":
                    await b.blobs.append("race/two", session, body(LAYER[:5]), None)
                else:
                    rest = _chain(LAYER[:5], rest)
                pushing = b.blobs.finish("race/two", session, digest, rest, None)
            push = asyncio.create_task(pushing)
            await held.reached.wait()
            monkeypatch.setattr(collector_module, "_now", lambda: later)
            collected = await a.collector().run()
            assert collected is not None and (collected.blobs, collected.deleted) == (1, 0)
            held.released.set()
            await push
            assert await b.blobs.size("race/two", digest) == len(LAYER)
            assert await _stored(backend, LAYER)

    asyncio.run(scenario())


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for piece in rest:
        yield piece


def test_orphaned_bytes_go_and_held_ones_stay(index_url: str, backend: Backend) -> None:
    async def scenario() -> None:
        async with replicas(index_url, backend, count=1) as (a,):
            store = a.blobs.store
            orphan = Digest.parse(sha256(b"published, then the writer died"))
            await store.ingest(body(b"published, then the writer died"), orphan)
            publishing = Digest.parse(sha256(b"published, not linked yet"))
            await a.blobs.publish_hold(publishing)()
            await store.ingest(body(b"published, not linked yet"), publishing)
            collected = await a.collector().run()
            assert collected is not None and (collected.orphans, collected.deleted) == (1, 1)
            assert await store.stat(orphan) is None
            assert await store.stat(publishing) is not None
            await a.index.link_blob("race/one", str(publishing), 25)
            assert await a.index.blob_size("race/one", str(publishing)) == 25

    asyncio.run(scenario())


# Records: a manifest PUT or a mount and the forgetting of what it references.


@FILESYSTEM_ONLY
def test_a_manifest_put_after_its_blobs_are_forgotten_fails_and_a_repush_works(
    index_url: str, backend: Backend
) -> None:
    async def scenario() -> None:
        held = Barrier(STORE_PASSES)
        async with replicas(index_url, backend) as (a, b):
            manifest, blobs = _image([LAYER])
            await _push_blobs(a, "race/app", blobs)
            collecting = await _paused(a.collector(pause=held), held)
            with pytest.raises(RegistryError) as refused:
                await _put(b, "race/app", "v1", manifest)
            assert refused.value.code is ErrorCode.MANIFEST_BLOB_UNKNOWN
            held.released.set()
            await collecting
            # The client pushes the blobs again, then the manifest.
            await _push_image(b, "race/app", "v1", [LAYER])
            assert all([await _stored(backend, blob) for blob in blobs])
            collected = await a.collector().run()
            assert collected is not None and (collected.blobs, collected.deleted) == (0, 0)

    asyncio.run(scenario())


@FILESYSTEM_ONLY
def test_a_manifest_put_before_the_forget_keeps_its_blobs(index_url: str, backend: Backend) -> None:
    async def scenario() -> None:
        held = Barrier(FORGET_BLOB)
        async with replicas(index_url, backend) as (a, b):
            manifest, blobs = _image([LAYER])
            await _push_blobs(a, "race/app", blobs)
            collecting = await _paused(a.collector(pause=held), held)
            await _put(b, "race/app", "v1", manifest)
            held.released.set()
            collected = await collecting
            assert collected is not None and (collected.blobs, collected.deleted) == (0, 0)
            assert all([await _stored(backend, blob) for blob in blobs])
            assert (await b.manifests.find("race/app", "v1", [])).payload == manifest

    asyncio.run(scenario())


@FILESYSTEM_ONLY
def test_a_mount_of_a_forgotten_blob_asks_for_an_upload(index_url: str, backend: Backend) -> None:
    async def scenario() -> None:
        held = Barrier(STORE_PASSES)
        async with replicas(index_url, backend) as (a, b):
            digest = await _push_blob(a, "race/source", LAYER)
            collecting = await _paused(a.collector(pause=held), held)
            assert not await b.blobs.mount("race/target", digest, "race/source")
            held.released.set()
            await collecting
            assert not await _stored(backend, LAYER)

    asyncio.run(scenario())


@FILESYSTEM_ONLY
def test_a_mount_before_the_forget_keeps_the_blob(index_url: str, backend: Backend) -> None:
    async def scenario() -> None:
        held = Barrier(FORGET_BLOB)
        async with replicas(index_url, backend) as (a, b):
            digest = await _push_blob(a, "race/source", LAYER)
            collecting = await _paused(a.collector(pause=held), held)
            assert await b.blobs.mount("race/target", digest, "race/source")
            held.released.set()
            collected = await collecting
            assert collected is not None and collected.blobs == 0
            assert await b.blobs.size("race/target", digest) == len(LAYER)
            assert await _stored(backend, LAYER)

    asyncio.run(scenario())


# Manifests: tag moves, re-tags, deletes and indexes on other replicas, with the untagged policy.


@FILESYSTEM_ONLY
def test_a_manifest_re_tagged_while_being_collected_stays(index_url: str, backend: Backend) -> None:
    async def scenario() -> None:
        async with replicas(index_url, backend) as (a, b):
            old = await _push_image(a, "race/tags", "latest", [b"base", b"old top"], "old")
            new = await _push_image(b, "race/tags", "latest", [b"base", b"new top"], "new")  # tag moved
            held = Barrier(FORGET_MANIFEST, sha256(old))
            collecting = await _paused(a.collector(untagged=True, pause=held), held)
            await _put(b, "race/tags", "previous", old)
            held.released.set()
            collected = await collecting
            assert collected is not None and (collected.manifests, collected.blobs) == (0, 0)
            for reference, manifest in (("previous", old), ("latest", new)):
                assert (await a.manifests.find("race/tags", reference, [])).payload == manifest
            assert all([await _stored(backend, blob) for blob in (b"base", b"old top", b"new top")])

            assert await b.index.delete_tag("race/tags", "previous")
            collected = await a.collector(untagged=True).run()
            assert collected is not None and (collected.manifests, collected.blobs) == (1, 2)
            assert not await _stored(backend, b"old top")
            assert await _stored(backend, b"base") and await _stored(backend, b"new top")
            assert await a.index.get_manifest("race/tags", sha256(old)) is None

    asyncio.run(scenario())


@FILESYSTEM_ONLY
def test_an_index_pushed_while_its_child_is_being_collected_keeps_it(
    index_url: str, backend: Backend
) -> None:
    async def scenario() -> None:
        async with replicas(index_url, backend) as (a, b):
            child, blobs = _image([b"amd64 layer"], "amd64")
            await _push_blobs(a, "race/multi", blobs)
            await _put(a, "race/multi", sha256(child), child)
            index = json.dumps(
                {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(child, OCI_MANIFEST)]}
            ).encode()
            held = Barrier(FORGET_MANIFEST, sha256(child))
            collecting = await _paused(a.collector(untagged=True, pause=held), held)
            await _put(b, "race/multi", "v1", index, OCI_INDEX)
            held.released.set()
            collected = await collecting
            assert collected is not None and (collected.manifests, collected.blobs) == (0, 0)
            assert await _stored(backend, b"amd64 layer")

            # The index goes; its child, then the child's blobs, in the same collection.
            assert await b.index.delete_manifest("race/multi", sha256(index))
            collected = await a.collector(untagged=True).run()
            assert collected is not None and (collected.manifests, collected.blobs) == (1, 2)
            assert not await _stored(backend, b"amd64 layer")

    asyncio.run(scenario())


@FILESYSTEM_ONLY
def test_an_index_refers_to_a_collected_child_in_vain(index_url: str, backend: Backend) -> None:
    async def scenario() -> None:
        held = Barrier(STORE_PASSES)
        async with replicas(index_url, backend) as (a, b):
            child, blobs = _image([b"arm64 layer"], "arm64")
            await _push_blobs(a, "race/multi", blobs)
            await _put(a, "race/multi", sha256(child), child)
            index = json.dumps(
                {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(child, OCI_MANIFEST)]}
            ).encode()
            collecting = await _paused(a.collector(untagged=True, pause=held), held)
            with pytest.raises(RegistryError) as refused:
                await _put(b, "race/multi", "v1", index, OCI_INDEX)
            assert refused.value.code is ErrorCode.MANIFEST_UNKNOWN
            held.released.set()
            await collecting

    asyncio.run(scenario())


@FILESYSTEM_ONLY
def test_referrers_go_with_their_subject(index_url: str, backend: Backend) -> None:
    async def scenario() -> None:
        async with replicas(index_url, backend) as (a, b):
            image = await _push_image(a, "race/signed", "v1", [b"signed layer"], "signed")
            signature = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "artifactType": "application/vnd.example.signature",
                    "config": descriptor(b"{}", "application/vnd.oci.empty.v1+json"),
                    "layers": [descriptor(b"a signature", OCI_LAYER)],
                    "subject": descriptor(image, OCI_MANIFEST),
                }
            ).encode()
            await _push_blob(b, "race/signed", b"{}")
            await _push_blob(b, "race/signed", b"a signature")
            await _put(b, "race/signed", sha256(signature), signature)
            # Untagged, but its subject is here: it stays, even with the untagged policy.
            collected = await a.collector(untagged=True).run()
            assert collected is not None and (collected.manifests, collected.blobs) == (0, 0)
            assert await b.index.delete_manifest("race/signed", sha256(image))
            collected = await a.collector().run()
            assert collected is not None and (collected.manifests, collected.blobs) == (1, 4)
            assert not await _stored(backend, b"a signature")
            assert await a.index.get_manifest("race/signed", sha256(signature)) is None

    asyncio.run(scenario())


# Two collectors at once.


@FILESYSTEM_ONLY
def test_one_collector_at_a_time(index_url: str, backend: Backend) -> None:
    async def scenario() -> None:
        held = Barrier(FORGET_BLOB)
        async with replicas(index_url, backend) as (a, b):
            await _push_blob(a, "race/one", LAYER)
            first = await _paused(a.collector(pause=held), held)
            assert await b.collector().run() is None
            held.released.set()
            collected = await first
            assert collected is not None and collected.deleted == 1
            second = await b.collector().run()
            assert second is not None and second.deleted == 0

    asyncio.run(scenario())


@FILESYSTEM_ONLY
def test_a_dry_run_changes_nothing(index_url: str, backend: Backend) -> None:
    async def scenario() -> None:
        async with replicas(index_url, backend, count=1) as (a,):
            digest = await _push_blob(a, "race/one", LAYER)
            surveyed = await a.collector().run(dry_run=True)
            assert surveyed is not None and (surveyed.blobs, surveyed.blob_bytes) == (1, len(LAYER))
            assert await a.blobs.size("race/one", digest) == len(LAYER)
            assert await _stored(backend, LAYER)

    asyncio.run(scenario())


@FILESYSTEM_ONLY
def test_a_head_keeps_an_old_blob_through_the_grace(index_url: str, backend: Backend) -> None:
    """A client that finds a blob with HEAD skips pushing it and references it next: the HEAD moves the
    link time of a link older than half the grace to now, so the collector spares the blob."""

    async def scenario() -> None:
        async with replicas(index_url, backend, count=1) as (a,):
            found, forgotten = (
                await _push_blob(a, "race/old", b"found by HEAD"),
                await _push_blob(a, "race/old", LAYER),
            )
            engine = create_engine(index_url)
            async with engine.begin() as conn:
                await conn.execute(
                    text("UPDATE repository_blobs SET linked_at = :then"),
                    {"then": datetime(2000, 1, 1, tzinfo=UTC)},
                )
            await engine.dispose()
            size, fresh_until = await a.blobs.found("race/old", found)
            assert size == len(b"found by HEAD")
            # Refreshed now: an answer kept for the HEAD holds until the new link needs refreshing.
            assert time.time() < fresh_until <= time.time() + a.blobs.link_refresh.total_seconds()
            collected = await a.collector(grace=3600).run()
            assert collected is not None and collected.blobs == 1
            assert await a.blobs.size("race/old", found) == len(b"found by HEAD")
            assert await a.index.blob_size("race/old", str(forgotten)) is None

    asyncio.run(scenario())
