"""A blob the index lists but whose bytes the filesystem store lost (a dead disk, a hand-deleted or
truncated file): a GET fails before its status line, with the spec's 404 and one integrity log line."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from registry.storage import FilesystemStore
from registry.types import Digest
from tests.support.oci import errors, push_blob
from tests.support.server import RegistryProcess

pytestmark = pytest.mark.both_servers


def blob_file(server: RegistryProcess, digest: str) -> Path:
    path = FilesystemStore(server.data_dir / "blobs").blob_path(Digest.parse(digest))
    assert path.is_file()
    return path


def assert_lost(server: RegistryProcess, response: httpx.Response, repo: str, digest: str) -> None:
    """The answer is the spec's 404, and the log names the blob and the repository."""
    assert response.status_code == 404, response.headers
    assert response.headers["Content-Type"] == "application/json"
    assert errors(response) == ["BLOB_UNKNOWN"]
    lines = [line for line in server.log.read_text().splitlines() if "integrity" in line and digest in line]
    assert len(lines) == 1 and repo in lines[0] and "ERROR" in lines[0], lines


@pytest.mark.parametrize("ranged", [False, True])
def test_blob_deleted_from_the_store_is_404(
    server: RegistryProcess, client: httpx.Client, repo: str, ranged: bool
) -> None:
    data = os.urandom(64 * 1024)
    digest = push_blob(client, repo, data)
    blob_file(server, digest).unlink()
    headers = {"Range": "bytes=10-99"} if ranged else {}
    assert_lost(server, client.get(f"/v2/{repo}/blobs/{digest}", headers=headers), repo, digest)
    # HEAD answers from the index alone (so it stays one lookup): it still says 200.
    assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 200


@pytest.mark.parametrize("ranged", [False, True])
def test_truncated_blob_is_not_served_short(
    server: RegistryProcess, client: httpx.Client, repo: str, ranged: bool
) -> None:
    data = os.urandom(64 * 1024)
    digest = push_blob(client, repo, data)
    path = blob_file(server, digest)
    path.write_bytes(data[: len(data) // 2])
    headers = {"Range": f"bytes={len(data) // 4}-"} if ranged else {}
    assert_lost(server, client.get(f"/v2/{repo}/blobs/{digest}", headers=headers), repo, digest)
