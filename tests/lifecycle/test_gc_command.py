"""`registry gc` against a live registry, and the collector `registry serve` runs in the background."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from registry.index import SQLIndex
from tests.support.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    image_manifest,
    push_blob,
    put_manifest,
    sha256,
)
from tests.support.server import RegistryProcess
from tests.support.tools import run_registry


def _gc(data_dir: Path, database: str, *flags: str) -> subprocess.CompletedProcess[str]:
    args = ["gc", "--data-dir", str(data_dir), *flags]
    return run_registry(*args, *(["--database-url", database] if database else []))


def _collect(data_dir: Path, database: str, *flags: str) -> str:
    result = _gc(data_dir, database, *flags)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _stored(data_dir: Path, digest: str) -> bool:
    algorithm, hexdigest = digest.split(":")
    return (data_dir / "blobs" / "blobs" / algorithm / hexdigest[:2] / hexdigest).exists()


def _config(name: str) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "name": name}).encode()


def _removed(manifests: int, blobs: int, size: int, deleted: int | None = None) -> str:
    deleted = blobs if deleted is None else deleted
    return (
        f"removed {manifests} manifest(s) and {blobs} blob(s) ({size} bytes) from the index; queued 0"
        f" orphan(s); deleted {deleted} blob(s) from the store, {size} bytes freed;"
        " purged 0 expired upload(s)"
    )


def test_gc_collects_beside_a_serving_registry(tmp_path: Path, own_database: str) -> None:
    data_dir, database = tmp_path / "data", own_database
    server = RegistryProcess(data_dir, database).start()
    try:
        with server.client() as client:
            doomed = image_manifest(
                client, "gc/app", layers=[b"shared base", b"doomed top"], config=_config("a")
            )
            kept = image_manifest(client, "gc/app", layers=[b"shared base", b"kept top"], config=_config("b"))
            assert put_manifest(client, "gc/app", "old", doomed).status_code == 201
            assert put_manifest(client, "gc/app", "new", kept).status_code == 201
            assert client.delete(f"/v2/gc/app/manifests/{sha256(doomed)}").status_code == 202
            pushing = push_blob(client, "gc/app", b"a push in progress, no manifest yet")
            garbage = [sha256(b"doomed top"), sha256(_config("a"))]
            alive = [sha256(b"shared base"), sha256(b"kept top"), sha256(_config("b"))]

            # The default grace (1h) protects every blob linked just now, the deleted image's included.
            assert _collect(data_dir, database) == _removed(0, 0, 0)
            size = len(b"doomed top") + len(_config("a")) + len(b"a push in progress, no manifest yet")
            surveyed = _collect(data_dir, database, "--grace", "0s", "--dry-run")
            assert surveyed.startswith(f"would remove 0 manifest(s) and 3 blob(s) ({size} bytes)")
            assert all(_stored(data_dir, digest) for digest in [*garbage, pushing])
            assert _collect(data_dir, database, "--grace", "0s") == _removed(0, 3, size)
            assert not any(_stored(data_dir, digest) for digest in [*garbage, pushing])
            assert all(_stored(data_dir, digest) for digest in alive)
            assert _collect(data_dir, database, "--grace", "0s") == _removed(0, 0, 0)

            # The server went on serving throughout.
            assert client.get("/v2/gc/app/manifests/new").content == kept
            for digest in alive:
                assert sha256(client.get(f"/v2/gc/app/blobs/{digest}").content) == digest
            for digest in garbage:
                assert client.head(f"/v2/gc/app/blobs/{digest}").status_code == 404
            assert push_blob(client, "gc/app", b"doomed top") == garbage[0]
            assert client.get(f"/v2/gc/app/blobs/{garbage[0]}").content == b"doomed top"
    finally:
        server.stop()


def test_gc_untagged_keeps_what_a_live_index_reaches(tmp_path: Path, own_database: str) -> None:
    data_dir, database = tmp_path / "data", own_database
    server = RegistryProcess(data_dir, database).start()
    try:
        with server.client() as client:
            children = []
            for arch in ("amd64", "arm64"):
                body = image_manifest(client, "gc/multi", layers=[arch.encode()], config=_config(arch))
                assert put_manifest(client, "gc/multi", sha256(body), body).status_code == 201
                children.append(descriptor(body, OCI_MANIFEST))
            index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
            assert put_manifest(client, "gc/multi", "v1", index, OCI_INDEX).status_code == 201
            stray = image_manifest(client, "gc/multi", layers=[b"untagged"], config=_config("stray"))
            assert put_manifest(client, "gc/multi", sha256(stray), stray).status_code == 201

            # Without the policy untagged manifests stay; with it, only the stray one (no index has it) goes.
            assert _collect(data_dir, database, "--grace", "0s") == _removed(0, 0, 0)
            size = len(b"untagged") + len(_config("stray"))
            assert _collect(data_dir, database, "--grace", "0s", "--untagged") == _removed(1, 2, size)
            assert client.get(f"/v2/gc/multi/manifests/{sha256(stray)}").status_code == 404
            for arch in ("amd64", "arm64"):
                assert _stored(data_dir, sha256(arch.encode())) and _stored(data_dir, sha256(_config(arch)))
            assert client.get("/v2/gc/multi/manifests/v1").content == index
    finally:
        server.stop()


def test_a_second_collector_does_nothing_and_says_so(tmp_path: Path, own_database: str) -> None:
    data_dir, database = tmp_path / "data", own_database
    RegistryProcess(data_dir, database).start().stop()
    url = database or f"sqlite+aiosqlite:///{data_dir}/index.db"

    async def while_another_runs() -> subprocess.CompletedProcess[str]:
        index = SQLIndex(url)
        async with index.collector_lock() as held:
            assert held
            result = await asyncio.to_thread(_gc, data_dir, database, "--grace", "0s")
        await index.close()
        return result

    result = asyncio.run(while_another_runs())
    assert (result.returncode, result.stdout) == (0, "another collection is running: nothing done\n")


def test_serve_collects_in_the_background(tmp_path: Path, own_database: str) -> None:
    data_dir = tmp_path / "data"
    server = RegistryProcess(
        data_dir, own_database, {"REGISTRY_GC_INTERVAL": "0.2", "REGISTRY_GC_GRACE": "0"}
    )
    server.start()
    try:
        with server.client() as client:
            orphan = push_blob(client, "gc/bg", b"unlinked at once")
            assert client.delete(f"/v2/gc/bg/blobs/{orphan}").status_code == 202
            body = image_manifest(client, "gc/bg", layers=[b"tagged layer"])
            assert put_manifest(client, "gc/bg", "v1", body).status_code == 201
            deadline = time.monotonic() + 30
            while _stored(data_dir, orphan):
                assert time.monotonic() < deadline, server.log.read_text()
                time.sleep(0.1)
            assert client.get("/v2/gc/bg/manifests/v1").content == body
            assert client.get(f"/v2/gc/bg/blobs/{sha256(b'tagged layer')}").content == b"tagged layer"
            # Each finished run is counted (CollectionFinished), the bytes it freed with it.
            metrics = client.get("/metrics").text
            runs = re.search(r"^registry_gc_runs_total ([0-9.e+]+)$", metrics, re.M)
            freed = re.search(r"^registry_gc_reclaimed_bytes_total ([0-9.e+]+)$", metrics, re.M)
            assert runs and float(runs.group(1)) >= 1, metrics
            assert freed and float(freed.group(1)) >= len(b"unlinked at once"), metrics
    finally:
        server.stop()


@pytest.mark.parametrize("grace", ["soon", "-1h", "1y", "", "1h 30m"])
def test_gc_refuses_a_bad_grace_in_one_line(tmp_path: Path, grace: str) -> None:
    result = _gc(tmp_path / "data", "", f"--grace={grace}")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "--grace" in result.stderr and "Traceback" not in result.stderr
