"""Two `registry serve` processes sharing one S3 bucket and one index: the scale-out deployment."""

from __future__ import annotations

import os
from pathlib import Path

from tests.storage.conftest import new_bucket, s3_environment
from tests.support.oci import OCI_MANIFEST, image_manifest, push_blob, sha256
from tests.support.server import RegistryProcess

MiB = 1024 * 1024


def test_servers_share_a_bucket(moto_endpoint: str, tmp_path: Path) -> None:
    env = s3_environment(moto_endpoint, new_bucket(moto_endpoint))
    database = f"sqlite+aiosqlite:///{tmp_path / 'index.db'}"
    first = RegistryProcess(tmp_path / "one", database, env).start()
    try:
        second = RegistryProcess(tmp_path / "two", database, env).start()
        try:
            with first.client() as one, second.client() as two:
                repo = "team/app"
                monolithic = os.urandom(7 * MiB)
                push_blob(one, repo, monolithic)

                # A chunked upload whose requests alternate between the servers.
                chunks = [os.urandom(6 * MiB), os.urandom(2 * MiB), os.urandom(3 * MiB)]
                chunked = b"".join(chunks)
                response = one.post(f"/v2/{repo}/blobs/uploads/")
                assert response.status_code == 202, response.text
                location = response.headers["Location"]
                offset = 0
                for number, chunk in enumerate(chunks[:-1]):
                    response = (one, two)[number % 2].patch(
                        location,
                        content=chunk,
                        headers={
                            "Content-Type": "application/octet-stream",
                            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                        },
                    )
                    assert response.status_code == 202, response.text
                    offset += len(chunk)
                    location = response.headers["Location"]
                response = one.put(location, params={"digest": sha256(chunked)}, content=chunks[-1])
                assert response.status_code == 201, response.text

                manifest = image_manifest(one, repo, layers=[monolithic, chunked])
                response = one.put(
                    f"/v2/{repo}/manifests/1.0", content=manifest, headers={"Content-Type": OCI_MANIFEST}
                )
                assert response.status_code == 201, response.text

                for client in (one, two):
                    pulled = client.get(f"/v2/{repo}/manifests/1.0", headers={"Accept": OCI_MANIFEST})
                    assert pulled.status_code == 200 and pulled.content == manifest
                    for blob in (monolithic, chunked):
                        response = client.get(f"/v2/{repo}/blobs/{sha256(blob)}")
                        assert response.status_code == 200 and response.content == blob
                    ranged = client.get(
                        f"/v2/{repo}/blobs/{sha256(chunked)}", headers={"Range": "bytes=6291455-8388608"}
                    )
                    assert ranged.status_code == 206 and ranged.content == chunked[6291455:8388609]
        finally:
            second.stop()
    finally:
        first.stop()
    # The filesystem store was never used: every byte went to the bucket.
    assert not [
        path for name in ("one", "two") for path in (tmp_path / name).rglob("blobs/**/*") if path.is_file()
    ]
