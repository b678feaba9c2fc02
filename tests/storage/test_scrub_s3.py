"""`registry scrub` on the S3 store: a rotten object is copied to quarantine/ and a push restores it."""

from __future__ import annotations

import os
from pathlib import Path

from tests.storage.conftest import new_bucket, s3_client, s3_environment
from tests.support.oci import push_blob, sha256
from tests.support.scrub import blob_unknown, push_chunked, run_scrub
from tests.support.server import RegistryProcess


def test_scrub_on_s3(moto_endpoint: str, tmp_path: Path, own_database: str) -> None:
    bucket = new_bucket(moto_endpoint)
    env = {**s3_environment(moto_endpoint, bucket), "REGISTRY_STORAGE_S3_ROOTDIRECTORY": "reg"}
    data_dir, database = tmp_path / "data", own_database
    s3 = s3_client(moto_endpoint)
    layer = os.urandom(6 * 1024 * 1024)
    digest = sha256(layer)
    key = f"reg/blobs/sha256/{digest[7:9]}/{digest[7:]}"
    server = RegistryProcess(data_dir, database, env).start()
    try:
        with server.client() as client:
            push_chunked(client, "s3/a", layer)
            assert run_scrub(data_dir, database, env=env)[0] == 0
            s3.put_object(Bucket=bucket, Key=key, Body=b"rotten")

            status, report = run_scrub(data_dir, database, env=env)
            assert status == 1 and f"corrupt blob {digest} (repositories: s3/a)" in report
            listed = s3.list_objects_v2(Bucket=bucket, Prefix="reg/quarantine/")["Contents"]
            assert [entry["Key"].startswith(f"reg/quarantine/sha256/{digest[7:]}.") for entry in listed] == [
                True
            ]
            assert s3.get_object(Bucket=bucket, Key=listed[0]["Key"])["Body"].read() == b"rotten"
            assert blob_unknown(client, "s3/a", digest)

            push_blob(client, "s3/a", layer)
            assert client.get(f"/v2/s3/a/blobs/{digest}").content == layer
            assert run_scrub(data_dir, database, env=env)[0] == 0
    finally:
        server.stop()
