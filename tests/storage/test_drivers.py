"""The driver contract: the primitives under the content layer, one suite run on every driver."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from registry.storage.drivers import Driver
from registry.storage.drivers.filesystem import FilesystemDriver
from tests.storage.conftest import Backend
from tests.storage.streams import MiB, run, stream

# Over one S3 part (8 MiB) and one filesystem piece (4 MiB), with a tail short of S3's 5 MiB minimum.
BIG = 9 * MiB + 123


async def read_all(driver: Driver, path: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([piece async for piece in driver.read(path, start, end)])


async def listed(driver: Driver, prefix: str) -> dict[str, int]:
    return {entry.path: entry.size async for entry in driver.list(prefix)}


def test_put_stat_read_delete(backend: Backend) -> None:
    async def scenario() -> None:
        driver = backend.driver()
        assert await driver.stat("a/b/object") is None
        started = time.time()
        await driver.put("a/b/object", b"first")
        await driver.put("a/b/object", b"second")
        entry = await backend.driver().stat("a/b/object")
        assert entry is not None and entry.size == 6 and entry.path == "a/b/object"
        assert started - 2 <= entry.modified <= time.time() + 2
        assert await read_all(driver, "a/b/object") == b"second"
        assert await read_all(driver, "a/b/object", 2, 4) == b"co"
        await driver.delete("a/b/object")
        assert await driver.stat("a/b/object") is None
        await driver.delete("a/b/object")  # idempotent

    run(scenario())
    assert backend.contents() == set()


def test_read_of_missing_or_short_objects(backend: Backend) -> None:
    async def scenario() -> None:
        driver = backend.driver()
        with pytest.raises(FileNotFoundError):
            await read_all(driver, "absent")
        await driver.put("short", b"12345")
        with pytest.raises(EOFError):
            await anext(aiter(driver.read("short", 0, 6)))

    run(scenario())


def test_writer_resumed_by_another_instance_then_committed(backend: Backend) -> None:
    pieces = [os.urandom(BIG), os.urandom(1000), os.urandom(6 * MiB)]
    data = b"".join(pieces)

    async def scenario() -> None:
        await backend.driver().writer("staged/one", resume=False)
        seen: list[bytes] = []
        size = 0
        for piece in pieces:
            writer = await backend.driver().writer("staged/one", resume=True)
            assert writer.size == size
            assert await writer.write(stream(piece), seen.append) == len(piece)
            size += len(piece)
            assert writer.size == size
        # Every byte passed through `observe` once, in order.
        assert b"".join(seen) == data
        driver = backend.driver()
        writer = await driver.writer("staged/one", resume=True)
        await writer.commit()
        assert await read_all(driver, "staged/one") == data
        # Spent: nothing of the writer is left but the object.
        assert await listed(driver, "staged") == {"staged/one": len(data)}

    run(scenario())
    assert backend.contents() == {"staged/one"}


@pytest.mark.parametrize("failed_size", [MiB, BIG])
def test_failed_write_keeps_nothing_of_that_call(backend: Backend, failed_size: int) -> None:
    head = os.urandom(6 * MiB + 17)

    async def scenario() -> None:
        driver = backend.driver()
        writer = await driver.writer("staged/two", resume=False)
        await writer.write(stream(head), lambda _: None)
        with pytest.raises(ConnectionResetError):
            await writer.write(stream(os.urandom(failed_size + MiB), fail_after=failed_size), lambda _: None)
        assert writer.size == len(head)
        again = await backend.driver().writer("staged/two", resume=True)
        assert again.size == len(head)
        await again.write(stream(b"tail"), lambda _: None)
        await again.commit()
        assert await read_all(driver, "staged/two") == head + b"tail"

    run(scenario())
    assert backend.contents() == {"staged/two"}


def test_cancel_removes_a_writer_and_resuming_nothing_fails(backend: Backend) -> None:
    async def scenario() -> None:
        driver = backend.driver()
        with pytest.raises(FileNotFoundError):
            await driver.writer("staged/none", resume=True)
        writer = await driver.writer("staged/three", resume=False)
        await writer.write(stream(os.urandom(BIG)), lambda _: None)
        await (await backend.driver().writer("staged/three", resume=True)).cancel()
        with pytest.raises(FileNotFoundError):
            await driver.writer("staged/three", resume=True)

    run(scenario())
    assert backend.contents() == set()


def test_move_replaces_the_target(backend: Backend) -> None:
    async def scenario() -> None:
        driver = backend.driver()
        await driver.put("target/x", b"old, maybe rotten")
        writer = await driver.writer("staged/four", resume=False)
        await writer.write(stream(b"verified"), lambda _: None)
        await writer.commit()
        started = time.time()
        await driver.move("staged/four", "target/x")
        assert await read_all(driver, "target/x") == b"verified"
        entry = await driver.stat("target/x")
        assert entry is not None and entry.modified >= started - 2
        with pytest.raises(FileNotFoundError):
            await driver.move("staged/four", "target/y")

    run(scenario())
    assert backend.contents() == {"target/x"}


@pytest.mark.parametrize("size", [0, 1000, BIG])
def test_publish_commits_and_moves_in_one_step(backend: Backend, size: int) -> None:
    data = os.urandom(size)

    async def scenario() -> None:
        driver = backend.driver()
        await driver.put("target/p", b"old, maybe rotten")
        writer = await driver.writer("staged/five", resume=False)
        await writer.write(stream(data), lambda _: None)
        resumed = await backend.driver().writer("staged/five", resume=True)
        started = time.time()
        await resumed.publish("target/p")
        assert await read_all(driver, "target/p") == data
        entry = await driver.stat("target/p")
        assert entry is not None and entry.modified >= started - 2
        # Spent: nothing of the writer is left, its bookkeeping included.
        with pytest.raises(FileNotFoundError):
            await driver.writer("staged/five", resume=True)

    run(scenario())
    assert backend.contents() == {"target/p"}


def test_a_move_stamps_the_time_of_the_move(tmp_path: Path) -> None:
    """The filesystem keeps a renamed file's mtime; the collector's grace needs the publish time."""
    root = tmp_path
    driver = FilesystemDriver(root, scratch="scratch")

    async def scenario() -> float:
        await driver.put("staged", b"bytes")
        os.utime(root / "staged", (1000, 1000))
        await driver.move("staged", "target")
        entry = await driver.stat("target")
        assert entry is not None
        return entry.modified

    assert run(scenario()) > time.time() - 60


def test_list_by_prefix(backend: Backend) -> None:
    async def scenario() -> None:
        driver = backend.driver()
        assert await listed(driver, "tree") == {}
        await driver.put("tree/a", b"1")
        await driver.put("tree/deep/er/b", b"22")
        await driver.put("treetop", b"not below tree/")
        await driver.put("other/c", b"333")
        assert await listed(backend.driver(), "tree") == {"tree/a": 1, "tree/deep/er/b": 2}
        assert await listed(driver, "tree/deep") == {"tree/deep/er/b": 2}

    run(scenario())


def test_abort_writers_takes_only_old_rejected_ones(backend: Backend) -> None:
    async def scenario() -> None:
        driver = backend.driver()
        for name in ("kept", "dropped"):
            writer = await driver.writer(f"staged/{name}", resume=False)
            await writer.write(stream(os.urandom(BIG)), lambda _: None)
        assert await driver.abort_writers("staged", time.time() + 60, lambda _: True) == 0
        # moto reports every multipart upload as begun in 2010: not a test of `before` on S3.
        aborted = await driver.abort_writers("staged", time.time() + 60, lambda path: path == "staged/kept")
        assert aborted == (1 if backend.kind == "s3" else 0)
        writer = await driver.writer("staged/kept", resume=True)
        await writer.write(stream(b"more"), lambda _: None)
        await writer.commit()
        assert (await driver.stat("staged/kept")) is not None

    run(scenario())
    assert not {name for name in backend.contents() if name.startswith("multipart:")}


def test_local_path_and_where(backend: Backend) -> None:
    driver = backend.driver()
    local = driver.local_path("blobs/x")
    if backend.kind == "filesystem":
        assert local is not None and local.name == "x" and driver.where("blobs/x") == str(local)
    else:
        assert local is None and driver.where("blobs/x").endswith("team/registry/blobs/x")


def test_no_url_unless_redirects_are_asked_for(backend: Backend) -> None:
    """Pulls go through the server by default; only S3 with redirects on names a URL of its own."""
    assert backend.driver().url("blobs/x") is None
