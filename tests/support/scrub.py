"""Scrub test helpers: run `registry scrub`, find a blob's file, push in chunks, see a blob is gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.oci import errors, sha256


def run_scrub(
    data_dir: Path, database: str, *flags: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    command = [sys.executable, "-m", "registry", "scrub", "--data-dir", str(data_dir), *flags]
    if database:
        command += ["--database-url", database]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**clean, **(env or {})}
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


def blob_file(data_dir: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":")
    return data_dir / "blobs" / "blobs" / algorithm / hexdigest[:2] / hexdigest


def push_chunked(client: httpx.Client, repo: str, data: bytes) -> None:
    response = client.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    half = len(data) // 2
    response = client.patch(
        response.headers["Location"],
        content=data[:half],
        headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{half - 1}"},
    )
    assert response.status_code == 202, response.text
    response = client.put(response.headers["Location"], params={"digest": sha256(data)}, content=data[half:])
    assert response.status_code == 201, response.text


def blob_unknown(client: httpx.Client, repo: str, digest: str) -> bool:
    head = client.head(f"/v2/{repo}/blobs/{digest}")
    get = client.get(f"/v2/{repo}/blobs/{digest}")
    return head.status_code == 404 and get.status_code == 404 and errors(get) == ["BLOB_UNKNOWN"]
