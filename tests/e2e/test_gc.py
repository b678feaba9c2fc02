"""`registry gc` and read-only mode: unreferenced bytes go, everything still referenced stays."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.oci import errors, image_manifest, push_blob, put_manifest, sha256
from tests.support.server import RegistryProcess


def _gc(data_dir: Path, database: str, *flags: str) -> str:
    command = [sys.executable, "-m", "registry", "gc", "--data-dir", str(data_dir), *flags]
    if database:
        command += ["--database-url", database]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _stored(data_dir: Path, digest: str) -> bool:
    algorithm, hexdigest = digest.split(":")
    return (data_dir / "blobs" / "blobs" / algorithm / hexdigest[:2] / hexdigest).exists()


def test_gc_removes_only_unreferenced_blobs(tmp_path: Path, own_database: str) -> None:
    data_dir = tmp_path / "data"
    database = own_database
    server = RegistryProcess(data_dir, database).start()
    try:
        with server.client() as client:
            orphan = push_blob(client, "gc/a", b"pushed, then deleted")
            assert client.delete(f"/v2/gc/a/blobs/{orphan}").status_code == 202
            shared = push_blob(client, "gc/a", b"in two repositories")
            push_blob(client, "gc/b", b"in two repositories")
            client.delete(f"/v2/gc/a/blobs/{shared}")  # still linked in gc/b
            body = image_manifest(client, "gc/m", layers=[b"kept by a manifest"])
            assert put_manifest(client, "gc/m", "v1", body).status_code == 201
            layer = sha256(b"kept by a manifest")
            client.delete(f"/v2/gc/m/blobs/{layer}")  # unlinked, but the manifest still references it
    finally:
        server.stop()

    assert _gc(data_dir, database, "--dry-run") == "would delete 1 blob(s), 20 bytes\n"
    assert _stored(data_dir, orphan)
    assert _gc(data_dir, database) == "deleted 1 blob(s), 20 bytes\n"
    assert not _stored(data_dir, orphan)
    assert _stored(data_dir, shared) and _stored(data_dir, layer)
    assert _gc(data_dir, database) == "deleted 0 blob(s), 0 bytes\n"

    server = RegistryProcess(data_dir, database).start()
    try:
        with server.client() as client:
            assert client.get(f"/v2/gc/b/blobs/{shared}").content == b"in two repositories"
            assert client.get("/v2/gc/m/manifests/v1").content == body
            # The collected blob can be pushed again.
            assert push_blob(client, "gc/a", b"pushed, then deleted") == orphan
            assert client.get(f"/v2/gc/a/blobs/{orphan}").content == b"pushed, then deleted"
    finally:
        server.stop()


def test_read_only_serves_pulls_and_refuses_changes(make_server, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = make_server(data_dir)
    with server.client() as client:
        body = image_manifest(client, "ro/x")
        put_manifest(client, "ro/x", "v1", body)
    server.stop()

    server = make_server(data_dir, REGISTRY_READ_ONLY="true")
    with server.client() as client:
        assert client.get("/v2/ro/x/manifests/v1").content == body
        assert client.get("/v2/ro/x/tags/list").json()["tags"] == ["v1"]
        for response in (
            client.post("/v2/ro/x/blobs/uploads/"),
            put_manifest(client, "ro/x", "v2", body),
            client.delete(f"/v2/ro/x/manifests/{sha256(body)}"),
        ):
            assert response.status_code == 405
            assert errors(response) == ["UNSUPPORTED"]
            assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        assert client.get("/v2/ro/x/tags/list").json()["tags"] == ["v1"]
