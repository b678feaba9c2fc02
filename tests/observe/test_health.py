"""/healthz and /readyz on a real `registry serve`: ready while the index and the store answer, 503
naming the part that does not once one is really broken."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import RegistryProcess


def test_ready_then_storage_unusable(make_server: Callable[..., RegistryProcess]) -> None:
    server = make_server()
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    blobs = server.data_dir / "blobs"
    shutil.rmtree(blobs)
    blobs.write_bytes(b"not a folder")
    answer = httpx.get(f"{server.url}/readyz")
    assert answer.status_code == 503
    assert set(answer.json()["failing"]) == {"storage"}, answer.text
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # alive all the same: no restart


@pytest.fixture
def own_server(own_database: str, tmp_path: Path) -> Iterator[RegistryProcess]:
    """A server on an index of its own, which this test may destroy."""
    server = RegistryProcess(tmp_path / "own", own_database).start()
    yield server
    server.stop()


def test_index_gone(own_server: RegistryProcess, request: pytest.FixtureRequest) -> None:
    assert httpx.get(f"{own_server.url}/readyz").status_code == 200
    if own_server.database_url:
        request.getfixturevalue("postgres").drop_database(own_server.database_url)
    else:
        for path in own_server.data_dir.glob("index.db*"):
            path.unlink()
    answer = httpx.get(f"{own_server.url}/readyz", timeout=30)
    assert answer.status_code == 503
    assert set(answer.json()["failing"]) == {"index"}, answer.text


def test_background_storage_check_fails_readiness_after_threshold(
    make_server: Callable[..., RegistryProcess],
) -> None:
    server = make_server(
        REGISTRY_HEALTH_STORAGEDRIVER_ENABLED="true",
        REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL="100ms",
        REGISTRY_HEALTH_STORAGEDRIVER_THRESHOLD="3",
    )
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    blobs = server.data_dir / "blobs"
    shutil.rmtree(blobs)
    blobs.write_bytes(b"not a folder")
    answer = _poll_readyz(server, 503)
    assert set(answer.json()["failing"]) == {"storage"}, answer.text
    # Readiness went only once `threshold` checks in a row had failed, not at the first.
    assert answer.json()["failing"]["storage"].startswith("3 checks failed in a row"), answer.text
    blobs.unlink()
    for folder in ("blobs", "uploads", "ingest"):
        (blobs / folder).mkdir(parents=True, exist_ok=True)
    _poll_readyz(server, 200)


def _poll_readyz(server: RegistryProcess, status: int, timeout: float = 30.0) -> httpx.Response:
    """/readyz asked until it answers `status` (the background check runs every 100 ms), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(f"{server.url}/readyz")
        if answer.status_code == status or time.monotonic() > deadline:
            assert answer.status_code == status, answer.text
            return answer
        time.sleep(0.05)
