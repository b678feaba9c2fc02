"""A blob the index lists but whose object is gone from (or shorter in) the bucket: a GET fails before
its status line with the spec's 404 and one integrity log line, as on the filesystem store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_missing_blobs import assert_lost
from tests.storage.conftest import new_bucket, s3_client, s3_environment
from tests.support.oci import push_blob
from tests.support.server import RegistryProcess

REPO = "team/app"


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    return new_bucket(moto_endpoint)


@pytest.fixture
def s3_server(moto_endpoint: str, bucket: str, tmp_path: Path) -> Iterator[RegistryProcess]:
    env = s3_environment(moto_endpoint, bucket)
    process = RegistryProcess(tmp_path / "data", "", env).start()
    yield process
    process.stop()


def _object_key(client: Any, bucket: str, digest: str) -> str:
    hexdigest = digest.removeprefix("sha256:")
    keys = [entry["Key"] for entry in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    found = [key for key in keys if key.endswith("blobs/sha256/" + hexdigest[:2] + "/" + hexdigest)]
    assert len(found) == 1, keys
    return found[0]


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
@pytest.mark.parametrize("ranged", [False, True])
def test_lost_object_is_404(
    s3_server: RegistryProcess, moto_endpoint: str, bucket: str, damage: str, ranged: bool
) -> None:
    data = os.urandom(64 * 1024)
    s3 = s3_client(moto_endpoint)
    with s3_server.client() as client:
        digest = push_blob(client, REPO, data)
        key = _object_key(s3, bucket, digest)
        if damage == "deleted":
            s3.delete_object(Bucket=bucket, Key=key)
        else:
            s3.put_object(Bucket=bucket, Key=key, Body=data[: len(data) // 2])
        headers = {"Range": f"bytes={len(data) // 4}-"} if ranged else {}
        response = client.get(f"/v2/{REPO}/blobs/{digest}", headers=headers)
        assert_lost(s3_server, response, REPO, digest)
