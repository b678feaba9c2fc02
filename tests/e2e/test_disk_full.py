"""A full disk under the blob store: a clear 507 in the spec's format, nothing partial kept, and a
registry that goes on serving (and takes pushes again once there is room)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.oci import errors, push_blob, sha256
from tests.support.server import RegistryProcess
from tests.support.tools import unavailable

MiB = 1024 * 1024
# Room for a few small blobs, not for the large ones the tests push.
DISK_SIZE = 8 * MiB


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, small filesystem (tmpfs): writes past its size fail with ENOSPC, as on a full disk."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs (root is needed): {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def full_server(small_disk: Path, make_server: Callable[..., RegistryProcess]) -> RegistryProcess:
    return make_server(REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=str(small_disk))


def _files(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): path.stat().st_size for path in root.rglob("*") if path.is_file()}


def _assert_out_of_space(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    assert errors(response) == ["INSUFFICIENT_STORAGE"]
    assert "out of storage space" in response.json()["errors"][0]["message"]


def test_a_blob_larger_than_the_free_space_is_refused_with_507(
    full_server: RegistryProcess, small_disk: Path
) -> None:
    big = os.urandom(3 * DISK_SIZE // 2)
    repo = "full/disk"
    with full_server.client() as client:
        before = _files(small_disk)

        # Monolithic, as containerd and skopeo push.
        response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(big)}, content=big)
        _assert_out_of_space(response)

        # Streamed into a session, as docker pushes: the session survives at the size it had.
        started = client.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202
        location = started.headers["Location"]
        response = client.patch(location, content=big)
        _assert_out_of_space(response)
        status = client.get(location)
        assert status.status_code == 204
        assert status.headers["Range"] == "0-0"

        assert client.head(f"/v2/{repo}/blobs/{sha256(big)}").status_code == 404
        after = _files(small_disk)
        assert {name: size for name, size in after.items() if name not in before and size} == {}

        # Still healthy: small pushes fit, and everything reads.
        assert client.get("/v2/").status_code == 200
        small = os.urandom(64 * 1024)
        digest = push_blob(client, repo, small)
        assert client.get(f"/v2/{repo}/blobs/{digest}").content == small
        response = client.put(location, params={"digest": sha256(small)}, content=small)
        assert response.status_code == 201, response.text

    assert full_server.stop() == 0
    log = full_server.log.read_text()
    assert "out of storage space" in log
    assert "Traceback" not in log


def test_an_index_on_a_full_disk_answers_507_and_recovers(
    small_disk: Path, make_server: Callable[..., RegistryProcess]
) -> None:
    server = make_server(data_dir=small_disk / "data")
    filler = small_disk / "filler"
    with server.client() as client:
        assert push_blob(client, "full/index", b"fits")
        # Take every free block: the index's next write (its WAL growing) finds no room.
        with open(filler, "wb") as handle, pytest.raises(OSError):
            while True:
                handle.write(b"\0" * MiB)
                handle.flush()
        statuses = set()
        for number in range(40):
            data = f"index write {number}".encode() * 512
            response = client.post(
                "/v2/full/index/blobs/uploads/", params={"digest": sha256(data)}, content=data
            )
            statuses.add(response.status_code)
            if response.status_code != 201:
                _assert_out_of_space(response)
        assert 507 in statuses
        assert client.get("/v2/").status_code == 200
        filler.unlink()
        data = os.urandom(1000)
        digest = push_blob(client, "full/index", data)
        assert client.get(f"/v2/full/index/blobs/{digest}").content == data
    assert server.stop() == 0
    assert "Traceback" not in server.log.read_text()
