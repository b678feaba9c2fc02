"""The BlobStore contract: one suite, run on every implementation (see conftest.py's `backend`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from registry.errors import ErrorCode, RegistryError
from registry.storage import BeforePublish, BlobStore, BlobUnreadable, FilesystemStore
from registry.storage.content import SMALL_BLOB, SMALL_BLOBS_TOTAL
from registry.storage.verify import Pace, rehash
from registry.types import Digest
from tests.storage.conftest import Backend
from tests.storage.streams import MiB, run, stream

SMALL = 300_000
# Over two S3 parts and over one read piece, so every boundary is crossed.
BIG = 12 * MiB


def blob_path(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


async def read_all(store: BlobStore, digest: Digest, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([piece async for piece in store.read(digest, start, end)])


async def append(store: BlobStore, upload_id: str, data: bytes, **kwargs: int) -> int:
    """One request's worth of bytes into a session, as the service does it: open, write, close."""
    writer = await store.open_upload(upload_id)
    try:
        await writer.write(stream(data, **kwargs))
        return writer.size
    finally:
        await writer.close()


async def commit(store: BlobStore, upload_id: str, digest: Digest) -> int:
    writer = await store.open_upload(upload_id)
    return await writer.commit(digest)


# Just over the single-piece body: on S3 a writer left with only a tail, under one part.
@pytest.mark.parametrize("size", [0, SMALL, 4 * MiB + 1000, BIG])
def test_ingest_stores_a_verified_blob(backend: Backend, size: int) -> None:
    data = os.urandom(size)
    digest = Digest.of(data)

    async def scenario() -> None:
        store = backend.open()
        assert await store.ingest(stream(data), digest) == size
        assert await store.stat(digest) == size
        assert await read_all(store, digest) == data
        # Again: an existing blob is left as it is.
        assert await store.ingest(stream(data), digest) == size

    run(scenario())
    assert backend.contents() == {blob_path(digest)}


@pytest.mark.parametrize("size", [SMALL, BIG])
def test_ingest_with_a_wrong_digest_keeps_nothing(backend: Backend, size: int) -> None:
    data = os.urandom(size)
    wrong = Digest.of(data + b"x")

    async def scenario() -> None:
        store = backend.open()
        with pytest.raises(RegistryError) as raised:
            await store.ingest(stream(data), wrong)
        assert raised.value.code is ErrorCode.DIGEST_INVALID
        assert await store.stat(wrong) is None

    run(scenario())
    assert backend.contents() == set()


def test_ingest_interrupted_keeps_nothing(backend: Backend) -> None:
    data = os.urandom(BIG)

    async def scenario() -> None:
        with pytest.raises(ConnectionResetError):
            await backend.open().ingest(stream(data, fail_after=10 * MiB), Digest.of(data))

    run(scenario())
    assert backend.contents() == set()


@pytest.mark.parametrize(
    ("way", "size"),
    [
        ("ingest", SMALL),
        ("ingest", BIG),
        ("commit", SMALL),
        ("commit elsewhere", SMALL),
        ("publish_whole", BIG),
    ],
)
def test_before_publish_runs_between_the_check_and_the_bytes_appearing(
    backend: Backend, way: str, size: int
) -> None:
    """Where a writer renews its hold on the digest: after every byte is in and verified (never for a
    wrong digest), before anything is at the digest's address; once, however the blob arrives
    ("elsewhere": the session's bytes came through another store instance, so commit re-reads them)."""
    data = os.urandom(size)

    async def publish(store: BlobStore, digest: Digest, before_publish: BeforePublish) -> int:
        if way == "ingest":
            return await store.ingest(stream(data), digest, before_publish)
        writer = await store.open_upload("session-h")
        if way == "publish_whole":
            return await writer.publish_whole(stream(data), digest, before_publish)
        await append(backend.open() if way == "commit elsewhere" else store, "session-h", data)
        writer = await store.open_upload("session-h")
        return await writer.commit(digest, before_publish)

    async def scenario() -> None:
        store = backend.open()
        calls: list[int | None] = []

        async def before_publish() -> None:
            calls.append(await store.stat(Digest.of(data)))

        with pytest.raises(RegistryError):
            await publish(store, Digest.of(data + b"x"), before_publish)
        assert calls == []
        assert await publish(store, Digest.of(data), before_publish) == size
        assert calls == [None]
        assert await store.stat(Digest.of(data)) == size

    run(scenario())
    assert backend.contents() == {blob_path(Digest.of(data))}


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_session_written_by_several_processes(backend: Backend, algorithm: str) -> None:
    """Each request lands on a fresh store instance, so no process saw all the bytes arrive."""
    pieces = [os.urandom(6 * MiB), os.urandom(3 * MiB), os.urandom(1000), os.urandom(3 * MiB)]
    data = b"".join(pieces)
    digest = Digest.of(data, algorithm)

    async def scenario() -> None:
        size = 0
        for piece in pieces:
            size += len(piece)
            assert await append(backend.open(), "session-1", piece) == size
        assert await commit(backend.open(), "session-1", digest) == len(data)
        store = backend.open()
        assert await store.stat(digest) == len(data)
        assert await read_all(store, digest) == data
        assert (await store.open_upload("session-1")).size == 0  # nothing of it left

    run(scenario())
    assert backend.contents() == {blob_path(digest)}


def test_session_in_one_process_in_small_chunks(backend: Backend) -> None:
    """The common case: one connection, many PATCHes, the running hash kept between them."""
    data = os.urandom(BIG + 12345)
    digest = Digest.of(data)
    step = MiB + 7

    async def scenario() -> None:
        store = backend.open()
        for offset in range(0, len(data), step):
            assert await append(store, "session-2", data[offset : offset + step]) == min(
                offset + step, len(data)
            )
        assert await commit(store, "session-2", digest) == len(data)
        assert await read_all(store, digest) == data

    run(scenario())
    assert backend.contents() == {blob_path(digest)}


@pytest.mark.parametrize("failed_size", [MiB, 10 * MiB])
def test_failed_write_keeps_nothing_of_that_call(backend: Backend, failed_size: int) -> None:
    head = os.urandom(6 * MiB + 17)
    rest = os.urandom(4 * MiB)
    digest = Digest.of(head + rest)

    async def scenario() -> None:
        store = backend.open()
        assert await append(store, "session-3", head) == len(head)
        with pytest.raises(ConnectionResetError):
            await append(store, "session-3", os.urandom(failed_size + MiB), fail_after=failed_size)
        writer = await store.open_upload("session-3")
        assert writer.size == len(head)
        await writer.close()
        # The retry, from another process, sees the session exactly as before the failure.
        assert await append(backend.open(), "session-3", rest) == len(head) + len(rest)
        assert await commit(store, "session-3", digest) == len(head) + len(rest)
        assert await read_all(store, digest) == head + rest

    run(scenario())
    assert backend.contents() == {blob_path(digest)}


@pytest.mark.parametrize("size", [SMALL, BIG])
def test_commit_with_a_wrong_digest_discards_the_session(backend: Backend, size: int) -> None:
    data = os.urandom(size)
    wrong = Digest.of(b"something else")

    async def scenario() -> None:
        store = backend.open()
        await append(store, "session-4", data)
        with pytest.raises(RegistryError) as raised:
            await commit(store, "session-4", wrong)
        assert raised.value.code is ErrorCode.DIGEST_INVALID
        assert await store.stat(wrong) is None
        await store.delete_upload("session-4")
        assert (await store.open_upload("session-4")).size == 0

    run(scenario())
    assert backend.contents() == set()


def test_empty_session_commits_the_empty_blob(backend: Backend) -> None:
    digest = Digest.of(b"")

    async def scenario() -> None:
        store = backend.open()
        assert await commit(store, "session-5", digest) == 0
        assert await store.stat(digest) == 0
        assert await read_all(store, digest) == b""

    run(scenario())


@pytest.mark.parametrize("size", [0, SMALL, BIG])
@pytest.mark.parametrize("begun", [False, True])
def test_a_session_with_nothing_staged_publishes_its_body_whole(
    backend: Backend, size: int, begun: bool
) -> None:
    """A POST, then a PUT with every byte: the bytes are never staged in the session; a session begun
    with an empty write (its file there, empty) goes with it."""
    data = os.urandom(size)
    digest = Digest.of(data)

    async def scenario() -> None:
        store = backend.open()
        if begun:
            await append(store, "session-whole", b"")
        writer = await store.open_upload("session-whole", 1)
        assert writer.size == 0
        with pytest.raises(RegistryError) as raised:
            await writer.publish_whole(stream(data), Digest.of(data + b"x"))
        assert raised.value.code is ErrorCode.DIGEST_INVALID
        assert await store.stat(digest) is None
        assert await writer.publish_whole(stream(data), digest) == size
        await writer.close()
        assert await read_all(store, digest) == data
        assert (await store.open_upload("session-whole")).size == 0

    run(scenario())
    assert backend.contents() == {blob_path(digest)}


def test_deleted_and_unknown_sessions(backend: Backend) -> None:
    async def scenario() -> None:
        store = backend.open()
        assert (await store.open_upload("never-created")).size == 0
        await append(store, "session-6", os.urandom(7 * MiB))
        await backend.open().delete_upload("session-6")
        assert (await store.open_upload("session-6")).size == 0
        await store.delete_upload("session-6")

    run(scenario())
    assert backend.contents() == set()


def test_read_ranges(backend: Backend) -> None:
    data = os.urandom(BIG)
    digest = Digest.of(data)
    size = len(data)
    ranges = [
        (0, None),
        (0, 1),
        (3, 3),
        (5, 100),
        (8 * MiB - 3, 8 * MiB + 5),
        (4 * MiB, None),
        (size - 1, None),
        (size - 10, size),
        (size, None),
    ]

    async def scenario() -> None:
        store = backend.open()
        await store.ingest(stream(data), digest)
        for start, end in ranges:
            assert await read_all(store, digest, start, end) == data[start:end], (start, end)

    run(scenario())


@pytest.mark.parametrize("size", [0, SMALL, BIG])
def test_read_of_lost_bytes_fails_before_the_first_piece(backend: Backend, size: int) -> None:
    """The index gives `end`; a blob that is missing or ends before it is damaged, not short."""
    data = os.urandom(size)
    digest = Digest.of(data)

    async def first_piece(start: int, end: int) -> None:
        with pytest.raises(BlobUnreadable, match=digest.hex):
            await anext(aiter(backend.open().read(digest, start, end)))

    async def scenario() -> None:
        store = backend.open()
        await first_piece(0, 1)
        await store.ingest(stream(data), digest)
        await first_piece(0, size + 1)
        await first_piece(size - size // 2, size + 100)

    run(scenario())


def test_small_blobs_are_kept_verified(backend: Backend) -> None:
    """A small blob's bytes, verified, from memory after the first read: what happens to the stored
    copy later changes nothing, since bytes named by their digest never change. Stored bytes that do
    not match their digest are never given."""
    data, rotten, big = os.urandom(SMALL), os.urandom(SMALL), os.urandom(SMALL_BLOB + 1)

    async def scenario() -> None:
        store = backend.open()
        for blob in (data, rotten, big):
            await store.ingest(stream(blob), Digest.of(blob))
        assert await store.small_blob(Digest.of(big), len(big)) is None  # too big to keep
        assert await store.small_blob(Digest.of(data), SMALL) == data
        await store.delete(Digest.of(data))
        assert await store.small_blob(Digest.of(data), SMALL) == data
        with pytest.raises(BlobUnreadable, match=Digest.of(data).hex):
            await backend.open().small_blob(Digest.of(data), SMALL)  # another process never read it

        backend.write_raw(blob_path(Digest.of(rotten)), b"x" + rotten[1:])
        for _ in range(2):
            with pytest.raises(BlobUnreadable, match="do not match"):
                await store.small_blob(Digest.of(rotten), SMALL)

    run(scenario())


def test_small_blobs_kept_are_bounded(backend: Backend) -> None:
    blobs = [os.urandom(SMALL_BLOB) for _ in range(SMALL_BLOBS_TOTAL // SMALL_BLOB + 1)]

    async def scenario() -> None:
        store = backend.open()
        for blob in blobs:
            await store.ingest(stream(blob), Digest.of(blob))
            assert await store.small_blob(Digest.of(blob), len(blob)) == blob
        for blob in blobs:
            await store.delete(Digest.of(blob))
        # The first read went out to make room for the last; the others are still at hand.
        with pytest.raises(BlobUnreadable):
            await store.small_blob(Digest.of(blobs[0]), SMALL_BLOB)
        for blob in blobs[1:]:
            assert await store.small_blob(Digest.of(blob), SMALL_BLOB) == blob

    run(scenario())


def test_stat_and_delete(backend: Backend) -> None:
    data = b"config"
    digest = Digest.of(data)

    async def scenario() -> None:
        store = backend.open()
        assert await store.stat(digest) is None
        await store.delete(digest)
        await store.ingest(stream(data), digest)
        assert await backend.open().stat(digest) == len(data)
        await store.delete(digest)
        assert await store.stat(digest) is None

    run(scenario())
    assert backend.contents() == set()


def test_purge_removes_only_old_ingest_leftovers(backend: Backend) -> None:
    data = b"kept"
    digest = Digest.of(data)

    async def scenario() -> None:
        store = backend.open()
        backend.plant_ingest_leftover()
        await store.ingest(stream(data), digest)
        await append(store, "session-7", b"staged")
        # Not a count: moto reports every multipart upload as begun in 2010, so it goes at once.
        await store.purge_ingest(time.time() - 3600)
        assert "ingest/" in {name.removeprefix("multipart:")[:7] for name in backend.contents()}
        assert await store.purge_ingest(time.time() + 60) >= 1
        assert await store.stat(digest) == len(data)
        assert await append(store, "session-7", b"more") == len(b"stagedmore")
        assert await commit(store, "session-7", Digest.of(b"stagedmore")) == len(b"stagedmore")

    run(scenario())
    assert backend.contents() == {blob_path(digest), blob_path(Digest.of(b"stagedmore"))}


def test_commit_never_trusts_a_hash_another_writer_may_have_invalidated(backend: Backend) -> None:
    """Two writers on one session (what the service's write claim prevents): the hash one of them kept
    describes bytes the other overwrote, so a later commit must hash what is stored."""
    run(_two_writers_then_commit(backend))


async def _two_writers_then_commit(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    await append(first, "session-raced", b"")  # begun: both writers resume the same staged file
    mine, theirs = os.urandom(MiB), os.urandom(MiB)
    writer_one = await first.open_upload("session-raced", 1)
    writer_two = await second.open_upload("session-raced", 2)
    await writer_one.write(stream(mine))
    await writer_two.write(stream(theirs))
    await writer_one.close()
    await writer_two.close()
    final = await first.open_upload("session-raced", 3)
    with pytest.raises(RegistryError) as raised:
        await final.commit(Digest.of(mine))
    assert raised.value.code is ErrorCode.DIGEST_INVALID
    assert await first.stat(Digest.of(mine)) is None


def test_list_blobs_names_committed_blobs_only(backend: Backend) -> None:
    small, big, other = b"config", os.urandom(BIG), b"sha512 content"
    digests = {Digest.of(small), Digest.of(big), Digest.of(other, "sha512")}

    async def scenario() -> None:
        store = backend.open()
        assert [digest async for digest in store.list_blobs()] == []
        await store.ingest(stream(small), Digest.of(small))
        await store.ingest(stream(big), Digest.of(big))
        await append(store, "session-8", other)
        await commit(store, "session-8", Digest.of(other, "sha512"))
        await append(store, "session-9", b"staged, not committed")
        backend.plant_ingest_leftover()
        backend.write_raw("blobs/sha256/zz/not-a-digest", b"stray")
        listed = [digest async for digest in backend.open().list_blobs()]
        assert sorted(listed, key=str) == sorted(digests, key=str)
        await store.quarantine(Digest.of(small))
        assert {digest async for digest in store.list_blobs()} == digests - {Digest.of(small)}

    run(scenario())


def test_quarantine_takes_a_rotten_blob_out_of_service(backend: Backend) -> None:
    good = os.urandom(SMALL)
    digest = Digest.of(good)

    async def scenario() -> None:
        store = backend.open()
        assert await store.quarantine(digest) is None
        await store.ingest(stream(good), digest)
        backend.write_raw(blob_path(digest), b"rotten")
        assert await rehash(store, digest, Pace()) == (Digest.of(b"rotten").hex, 6)

        assert await store.quarantine(digest) is not None
        assert await store.stat(digest) is None
        assert await rehash(store, digest, Pace()) is None
        assert await store.quarantine(digest) is None

        assert await store.ingest(stream(good), digest) == SMALL
        assert await read_all(backend.open(), digest) == good
        assert await rehash(store, digest, Pace()) == (digest.hex, SMALL)

    run(scenario())
    contents = backend.contents()
    (quarantined,) = contents - {blob_path(digest)}
    assert quarantined.startswith(f"quarantine/sha256/{digest.hex}.")
    assert backend.read_raw(quarantined) == b"rotten"


def test_rehash_keeps_to_its_rate(backend: Backend) -> None:
    data = os.urandom(SMALL)
    digest = Digest.of(data)

    async def scenario() -> float:
        store = backend.open()
        await store.ingest(stream(data), digest)
        started = time.monotonic()
        assert await rehash(store, digest, Pace(rate=SMALL * 2)) == (digest.hex, SMALL)
        return time.monotonic() - started

    assert run(scenario()) >= 0.45


def test_delete_is_idempotent(backend: Backend) -> None:
    digest = Digest.of(b"gone twice")

    async def scenario() -> None:
        store = backend.open()
        await store.ingest(stream(b"gone twice"), digest)
        await store.delete(digest)
        await backend.open().delete(digest)
        await store.delete(Digest.of(b"never stored"))
        assert await store.stat(digest) is None

    run(scenario())
    assert backend.contents() == set()


def test_list_blob_times_gives_each_blob_its_publish_time(backend: Backend) -> None:
    small, big = b"config", os.urandom(BIG)

    async def scenario() -> None:
        store = backend.open()
        started = time.time()
        await store.ingest(stream(small), Digest.of(small))
        await append(store, "session-10", big)
        await commit(store, "session-10", Digest.of(big))
        await append(store, "session-11", b"staged, not a blob")
        times = {digest: modified async for digest, modified in backend.open().list_blob_times()}
        assert set(times) == {Digest.of(small), Digest.of(big)}
        # Object stores keep whole seconds.
        assert all(started - 2 <= modified <= time.time() + 2 for modified in times.values())

    run(scenario())


def test_a_republish_restarts_the_grace(tmp_path: Path) -> None:
    """Bytes sitting at a digest's address since long ago are stamped afresh by a new push of them,
    so a collector counting a grace from that time does not take them from under the push."""
    store = FilesystemStore(tmp_path)
    data = os.urandom(SMALL)
    digest = Digest.of(data)

    async def scenario() -> None:
        await store.ingest(stream(data), digest)
        os.utime(store.blob_path(digest), (1000, 1000))
        assert [modified async for _, modified in store.list_blob_times()] == [1000]
        await store.ingest(stream(data), digest)
        assert [modified async for _, modified in store.list_blob_times()] != [1000]
        await append(store, "session-12", data)
        os.utime(store.blob_path(digest), (1000, 1000))
        await commit(store, "session-12", digest)
        (modified,) = [modified async for _, modified in store.list_blob_times()]
        assert modified > time.time() - 60

    run(scenario())


def test_purge_uploads_removes_sessions_the_index_lost(backend: Backend) -> None:
    kept, lost = os.urandom(9 * MiB), os.urandom(9 * MiB)

    async def scenario() -> None:
        store = backend.open()
        for upload_id, data in (("live-one", kept), ("lost-one", lost)):
            await append(store, upload_id, data)
        if backend.kind == "filesystem":  # moto dates every multipart upload 2010: all look old there
            assert await store.purge_uploads(time.time() - 3600, set()) == 0
        assert await backend.open().purge_uploads(time.time() + 60, {"live-one"}) >= 1
        assert (await store.open_upload("lost-one")).size == 0
        assert await append(store, "live-one", b"end") == len(kept) + 3
        assert await commit(store, "live-one", Digest.of(kept + b"end")) == len(kept) + 3

    run(scenario())
    assert backend.contents() == {blob_path(Digest.of(kept + b"end"))}
