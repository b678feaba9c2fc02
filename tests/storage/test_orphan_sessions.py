"""Staged bytes of an upload session the index no longer knows (its row went, its bytes stayed: a crash
between the two deletes) are removed by the server's upload purger, an S3 multipart upload included."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from registry.config import Settings
from registry.index.sql import SQLIndex
from tests.storage.conftest import new_bucket, s3_client, s3_environment
from tests.support.server import RegistryProcess

MiB = 1024 * 1024


async def _forget(data_dir: Path, upload_id: str) -> None:
    index = SQLIndex(Settings().with_overrides({"data_dir": data_dir}).index_url)
    await index.open()
    try:
        await index.delete_upload(upload_id)
    finally:
        await index.close()


def test_the_purger_takes_what_a_forgotten_session_left(moto_endpoint: str, tmp_path: Path) -> None:
    bucket = new_bucket(moto_endpoint)
    env = {**s3_environment(moto_endpoint, bucket), "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "2"}
    server = RegistryProcess(tmp_path / "data", "", env).start()
    s3 = s3_client(moto_endpoint)
    try:
        with server.client() as client:
            response = client.post("/v2/team/app/blobs/uploads/")
            location = response.headers["Location"]
            upload_id = location.rstrip("/").rsplit("/", 1)[-1]
            chunk = os.urandom(9 * MiB)  # past S3's 5 MiB minimum part: a multipart upload is open
            headers = {"Content-Type": "application/octet-stream", "Content-Range": f"0-{len(chunk) - 1}"}
            assert client.patch(location, content=chunk, headers=headers).status_code == 202
            assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads")

            asyncio.run(_forget(server.data_dir, upload_id))  # the row goes, the bytes stay

            deadline = time.monotonic() + 30
            while s3.list_multipart_uploads(Bucket=bucket).get("Uploads") or [
                item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
                if upload_id in item["Key"]
            ]:  # fmt: skip
                assert time.monotonic() < deadline, "the purger left the session's staged bytes"
                time.sleep(0.2)
    finally:
        server.stop()
