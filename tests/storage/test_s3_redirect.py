"""`storage.redirect.disable: false`: blob GETs answer 307 to a presigned URL of the object, which the
client fetches from the bucket itself (a moto server here), whole or by range; HEADs and unknown blobs
answer as always."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.storage.conftest import new_bucket, s3_environment
from tests.support.oci import push_blob, sha256
from tests.support.server import RegistryProcess


def test_blob_gets_redirect_to_the_bucket(moto_endpoint: str, tmp_path: Path) -> None:
    env = {
        **s3_environment(moto_endpoint, new_bucket(moto_endpoint)),
        "REGISTRY_STORAGE_REDIRECT_DISABLE": "false",
    }
    server = RegistryProcess(tmp_path / "data", "", env).start()
    try:
        with server.client() as client:
            repo, blob = "team/app", os.urandom(300_000)
            digest = push_blob(client, repo, blob)
            path = f"/v2/{repo}/blobs/{digest}"

            moved = client.get(path)
            assert moved.status_code == 307, moved.text
            assert moved.headers["Docker-Content-Digest"] == digest
            location = moved.headers["Location"]
            assert location.startswith(moto_endpoint) and "Signature" in location
            fetched = httpx.get(location)
            assert fetched.status_code == 200 and fetched.content == blob

            ranged = client.get(path, headers={"Range": "bytes=1000-1999"}, follow_redirects=True)
            assert ranged.status_code == 206 and ranged.content == blob[1000:2000]
            assert client.get(path, follow_redirects=True).content == blob

            head = client.head(path)
            assert head.status_code == 200 and head.headers["Content-Length"] == str(len(blob))
            unknown = client.get(f"/v2/{repo}/blobs/{sha256(b'never pushed')}")
            assert unknown.status_code == 404 and "Location" not in unknown.headers
    finally:
        server.stop()
