"""Blob store fixtures: every contract test runs on the filesystem store and on S3 (a moto server)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from registry.storage import BlobStore, FilesystemStore
from tests.support.tools import free_port, require_tool

MOTO_KEYS = {"access_key": "testing", "secret_key": "testing", "region": "us-east-1"}


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=MOTO_KEYS["region"],
        aws_access_key_id=MOTO_KEYS["access_key"],
        aws_secret_access_key=MOTO_KEYS["secret_key"],
    )


def s3_environment(endpoint: str, bucket: str) -> dict[str, str]:
    """The REGISTRY_* variables that make a registry process use `bucket` on the moto server."""
    return {
        "REGISTRY_STORAGE_S3_BUCKET": bucket,
        "REGISTRY_STORAGE_S3_REGIONENDPOINT": endpoint,
        "REGISTRY_STORAGE_S3_REGION": MOTO_KEYS["region"],
        "REGISTRY_STORAGE_S3_ACCESSKEY": MOTO_KEYS["access_key"],
        "REGISTRY_STORAGE_S3_SECRETKEY": MOTO_KEYS["secret_key"],
    }


def new_bucket(endpoint: str) -> str:
    name = f"registry-{uuid.uuid4().hex[:16]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 endpoint: moto's server, in a process of its own."""
    binary = require_tool("moto_server")["moto_server"]
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"moto_server did not start:\n{log_path.read_text()}")
        try:
            httpx.get(endpoint, timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    yield endpoint
    process.terminate()
    process.wait(10)


@dataclass
class Backend:
    """One store's backing storage: `open` gives a new instance on it, as another process would have."""

    kind: str
    open: Callable[[], BlobStore]
    contents: Callable[[], set[str]]
    plant_ingest_leftover: Callable[[], None]
    # Raw access to a layout path (as `contents` names it), past every check: how a test rots a blob.
    write_raw: Callable[[str, bytes], None]
    read_raw: Callable[[str], bytes]


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _filesystem(root: Path) -> Backend:
    def contents() -> set[str]:
        return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}

    return Backend(
        "filesystem",
        lambda: FilesystemStore(root),
        contents,
        lambda: (root / "ingest" / uuid.uuid4().hex).write_bytes(b"interrupted"),
        lambda name, data: _write_file(root / name, data),
        lambda name: (root / name).read_bytes(),
    )


def _s3(endpoint: str) -> Backend:
    from registry.storage.s3 import S3Store

    bucket = new_bucket(endpoint)
    client = s3_client(endpoint)
    prefix = "team/registry/"

    def contents() -> set[str]:
        keys = {
            entry["Key"].removeprefix(prefix)
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for entry in page.get("Contents", [])
        }
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return keys | {"multipart:" + upload["Key"].removeprefix(prefix) for upload in uploads}

    def plant() -> None:
        client.put_object(Bucket=bucket, Key=prefix + "ingest/" + uuid.uuid4().hex, Body=b"interrupted")
        client.create_multipart_upload(Bucket=bucket, Key=prefix + "ingest/" + uuid.uuid4().hex)

    return Backend(
        "s3",
        lambda: S3Store(bucket, prefix=prefix, endpoint_url=endpoint, **MOTO_KEYS),
        contents,
        plant,
        lambda name, data: client.put_object(Bucket=bucket, Key=prefix + name, Body=data),
        lambda name: client.get_object(Bucket=bucket, Key=prefix + name)["Body"].read(),
    )


@pytest.fixture(params=["filesystem", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "filesystem":
        return _filesystem(tmp_path / "store")
    return _s3(request.getfixturevalue("moto_endpoint"))
