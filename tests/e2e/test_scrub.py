"""`registry scrub`: rotten or missing content is reported, taken out of service, and a push restores it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from registry.index.sql import create_engine
from tests.support.oci import errors, image_manifest, push_blob, put_manifest, sha256
from tests.support.scrub import blob_file, blob_unknown, push_chunked, run_scrub
from tests.support.server import RegistryProcess

TAMPERED = b'{"tampered": true}'


def test_a_rotten_blob_is_quarantined_and_a_push_restores_it(tmp_path: Path, own_database: str) -> None:
    data_dir, database = tmp_path / "data", own_database
    layer = os.urandom(300_000)
    digest = sha256(layer)
    server = RegistryProcess(data_dir, database).start()
    try:
        with server.client() as client:
            manifest = image_manifest(client, "scrub/a", layers=[layer])
            assert put_manifest(client, "scrub/a", "v1", manifest).status_code == 201
            push_blob(client, "scrub/b", layer)
            assert run_scrub(data_dir, database) == (
                0,
                "scrubbed 2 blob(s) (300040 bytes) and 1 manifest(s): 0 problem(s)\n",
            )

            blob_file(data_dir, digest).write_bytes(b"rotten")
            assert client.head(f"/v2/scrub/a/blobs/{digest}").status_code == 200  # still claimed, so far

            status, report = run_scrub(data_dir, database, "--dry-run")
            assert status == 1
            assert report.splitlines()[0] == (
                f"corrupt blob {digest} (repositories: scrub/a, scrub/b): expected {digest}, "
                f"actual {sha256(b'rotten')} (6 bytes); would quarantine it and remove it from the index"
            )
            assert blob_file(data_dir, digest).read_bytes() == b"rotten"
            assert client.head(f"/v2/scrub/a/blobs/{digest}").status_code == 200

            status, report = run_scrub(data_dir, database)
            assert status == 1
            assert "repositories: scrub/a, scrub/b" in report and "quarantined to " in report
            (quarantined,) = (data_dir / "blobs" / "quarantine" / "sha256").iterdir()
            assert quarantined.name.startswith(digest.split(":")[1] + ".")
            assert quarantined.read_bytes() == b"rotten"
            assert blob_unknown(client, "scrub/a", digest) and blob_unknown(client, "scrub/b", digest)

            push_blob(client, "scrub/a", layer)
            push_chunked(client, "scrub/b", layer)
            for repo in ("scrub/a", "scrub/b"):
                assert client.get(f"/v2/{repo}/blobs/{digest}").content == layer
            assert client.get("/v2/scrub/a/manifests/v1").content == manifest
            status, report = run_scrub(data_dir, database)
            assert (status, report.count("problem(s)"), "0 problem(s)" in report) == (0, 1, True)
    finally:
        server.stop()


def test_repository_limits_the_scope_and_missing_bytes_are_found(tmp_path: Path, own_database: str) -> None:
    data_dir, database = tmp_path / "data", own_database
    server = RegistryProcess(data_dir, database).start()
    try:
        with server.client() as client:
            rotten = push_blob(client, "scope/x", b"in x, to rot")
            gone = push_blob(client, "scope/y", b"in y, to vanish")
            blob_file(data_dir, rotten).write_bytes(b"rotten")
            blob_file(data_dir, gone).unlink()

            status, report = run_scrub(data_dir, database, "--repository", "scope/x")
            assert status == 1
            assert report.splitlines()[:-1] == [
                f"corrupt blob {rotten} (repositories: scope/x): expected {rotten}, "
                f"actual {sha256(b'rotten')} (6 bytes); quarantined to "
                + report.split("quarantined to ")[1].split(",")[0]
                + ", removed from the index"
            ]
            assert client.head(f"/v2/scope/y/blobs/{gone}").status_code == 200  # out of scope: untouched

            status, report = run_scrub(data_dir, database, "--repository", "scope/y")
            assert status == 1
            assert report.splitlines()[0] == (
                f"missing blob {gone} (repositories: scope/y): expected {gone}, "
                "actual: no bytes in the store; removed from the index"
            )
            assert blob_unknown(client, "scope/y", gone)
            push_blob(client, "scope/y", b"in y, to vanish")
            assert run_scrub(data_dir, database)[0] == 0
    finally:
        server.stop()


def _corrupt_payload(data_dir: Path, database: str, digest: str) -> None:
    url = database or f"sqlite+aiosqlite:///{data_dir / 'index.db'}"

    async def update() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            statement = text("UPDATE manifests SET payload = :payload WHERE digest = :digest")
            await conn.execute(statement, {"payload": TAMPERED, "digest": digest})
        await engine.dispose()

    asyncio.run(update())


def test_a_manifest_corrupted_in_the_index_is_caught(tmp_path: Path, own_database: str) -> None:
    data_dir, database = tmp_path / "data", own_database
    server = RegistryProcess(data_dir, database).start()
    try:
        with server.client() as client:
            manifest = image_manifest(client, "scrub/m")
            assert put_manifest(client, "scrub/m", "v1", manifest).status_code == 201
            digest = sha256(manifest)
            _corrupt_payload(data_dir, database, digest)

            status, report = run_scrub(data_dir, database, "--dry-run")
            assert status == 1
            assert report.splitlines()[0] == (
                f"corrupt manifest {digest} (repository scrub/m, tags: v1): expected {digest}, "
                f"actual {sha256(TAMPERED)} (18 bytes); would delete it"
            )
            assert client.head("/v2/scrub/m/manifests/v1").status_code == 200

            assert run_scrub(data_dir, database)[0] == 1
            for reference in ("v1", digest):
                response = client.get(f"/v2/scrub/m/manifests/{reference}")
                assert response.status_code == 404 and errors(response) == ["MANIFEST_UNKNOWN"]
            assert put_manifest(client, "scrub/m", "v1", manifest).status_code == 201
            assert client.get("/v2/scrub/m/manifests/v1").content == manifest
            assert run_scrub(data_dir, database)[0] == 0
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--data-dir", "/nonexistent/registry"], "registry: no blob store at /nonexistent/registry/blobs"),
        (["--database-url", "nonsense"], "registry: setting 'database.url'"),
        (
            ["--database-url", "postgresql+asyncpg://u:secret@127.0.0.1:1/x"],
            "registry: cannot reach the index at postgresql+asyncpg://u:***@127.0.0.1:1/x",
        ),
    ],
)
def test_operator_mistakes_are_one_line(tmp_path: Path, flags: list[str], message: str) -> None:
    (tmp_path / "blobs").mkdir()
    command = [sys.executable, "-m", "registry", "scrub", "--data-dir", str(tmp_path), *flags]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr


def test_the_server_scrubs_in_the_background(tmp_path: Path, own_database: str) -> None:
    data_dir = tmp_path / "data"
    env = {"REGISTRY_SCRUB_INTERVAL": "0.5", "REGISTRY_SCRUB_RATE": "1000000", "REGISTRY_SERVER_WORKERS": "2"}
    server = RegistryProcess(data_dir, own_database, env).start()
    try:
        with server.client() as client:
            digest = push_blob(client, "bg/a", b"rots while served")
            blob_file(data_dir, digest).write_bytes(b"rotten")
            deadline = time.monotonic() + 30
            while client.head(f"/v2/bg/a/blobs/{digest}").status_code == 200:
                assert time.monotonic() < deadline, server.log.read_text()
                time.sleep(0.2)
            assert blob_unknown(client, "bg/a", digest)
            push_blob(client, "bg/a", b"rots while served")
            assert client.get(f"/v2/bg/a/blobs/{digest}").content == b"rots while served"
    finally:
        server.stop()
    log = server.log.read_text()
    # One worker of the two scrubs (the other finds the lock taken): the blob is reported once.
    assert log.count(f"scrub: corrupt blob {digest} (repositories: bg/a)") == 1, log
    assert len(list((data_dir / "blobs" / "quarantine" / "sha256").iterdir())) == 1
