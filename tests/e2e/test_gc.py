"""`registry gc` and read-only mode: unreferenced bytes go, everything still referenced stays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    errors,
    image_manifest,
    push_blob,
    put_manifest,
    sha256,
)
from tests.support.server import RegistryProcess


def _run_gc(data_dir: Path, database: str, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "registry", "gc", "--data-dir", str(data_dir), *flags]
    if database:
        command += ["--database-url", database]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _gc(data_dir: Path, database: str, *flags: str) -> str:
    result = _run_gc(data_dir, database, *flags)
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

    server = make_server(data_dir, REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED="true")
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


def _config(name: str) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "name": name}).encode()


def test_gc_reclaims_the_layers_of_a_deleted_image(tmp_path: Path, own_database: str) -> None:
    """Reachability comes from manifests: once an image is deleted, its layers and config are garbage as soon
    as their repository links are older than the grace period; a layer another image uses stays."""
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
    finally:
        server.stop()
    garbage = [sha256(b"doomed top"), sha256(_config("a"))]
    alive = [sha256(b"shared base"), sha256(b"kept top"), sha256(_config("b"))]

    # The default grace (1h) protects every blob linked just now, the deleted image's included.
    assert _gc(data_dir, database) == "deleted 0 blob(s), 0 bytes\n"
    assert _stored(data_dir, pushing)
    size = len(b"doomed top") + len(_config("a"))
    assert _gc(data_dir, database, "--grace", "0s", "--dry-run") == (
        f"would delete 3 blob(s), {size + len(b'a push in progress, no manifest yet')} bytes\n"
    )
    assert all(_stored(data_dir, digest) for digest in garbage)
    assert _gc(data_dir, database, "--grace", "0s") == (
        f"deleted 3 blob(s), {size + len(b'a push in progress, no manifest yet')} bytes\n"
    )
    assert not any(_stored(data_dir, digest) for digest in [*garbage, pushing])
    assert all(_stored(data_dir, digest) for digest in alive)
    assert _gc(data_dir, database, "--grace", "0s") == "deleted 0 blob(s), 0 bytes\n"

    server = RegistryProcess(data_dir, database).start()
    try:
        with server.client() as client:
            assert client.get("/v2/gc/app/manifests/new").content == kept
            for digest in alive:
                assert sha256(client.get(f"/v2/gc/app/blobs/{digest}").content) == digest
            # Collected blobs are forgotten, links and all: a client pushes them again.
            for digest in garbage:
                assert client.head(f"/v2/gc/app/blobs/{digest}").status_code == 404
            assert push_blob(client, "gc/app", b"doomed top") == garbage[0]
            assert client.get(f"/v2/gc/app/blobs/{garbage[0]}").content == b"doomed top"
    finally:
        server.stop()


def test_gc_keeps_what_a_live_index_reaches(tmp_path: Path, own_database: str) -> None:
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
    finally:
        server.stop()
    assert _gc(data_dir, database, "--grace", "0s") == "deleted 0 blob(s), 0 bytes\n"
    for arch in ("amd64", "arm64"):
        assert _stored(data_dir, sha256(arch.encode())) and _stored(data_dir, sha256(_config(arch)))


@pytest.mark.parametrize("grace", ["soon", "-1h", "1y", "", "1.5h"])
def test_gc_refuses_a_bad_grace_in_one_line(tmp_path: Path, grace: str) -> None:
    result = _run_gc(tmp_path / "data", "", f"--grace={grace}")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "--grace" in result.stderr and "Traceback" not in result.stderr
