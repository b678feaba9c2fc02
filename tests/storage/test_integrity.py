"""What a registry serves under a digest hashes to that digest, whatever clients send at the same time.

Every test runs a real `registry serve` on the filesystem store and on S3 (a moto server), on both
index databases; the hammer also with two worker processes, where the writers of one session land in
different processes.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.storage.conftest import new_bucket, s3_client, s3_environment
from tests.support.oci import errors, push_blob, sha256
from tests.support.server import RegistryProcess

MiB = 1024 * 1024
# Three rounds (2, 4 and 8 writers) by default; set more for a soak.
HAMMER_ROUNDS = int(os.environ.get("REGISTRY_TEST_HAMMER_ROUNDS", "3"))


class StoreServer:
    """A registry process and a handle on its store's backing storage, to look at or spoil by hand."""

    def __init__(self, process: RegistryProcess, kind: str, bucket: str = "", endpoint: str = "") -> None:
        self.process = process
        self.kind = kind
        self.bucket = bucket
        self.endpoint = endpoint

    def blob_key(self, digest: str) -> str:
        algorithm, hexpart = digest.split(":")
        return f"blobs/{algorithm}/{hexpart[:2]}/{hexpart}"

    def overwrite_blob(self, digest: str, data: bytes) -> None:
        """Put wrong bytes where the store keeps a blob, as a bad disk or an earlier bug would."""
        if self.kind == "filesystem":
            path = self.process.data_dir / self.blob_key(digest)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            s3_client(self.endpoint).put_object(Bucket=self.bucket, Key=self.blob_key(digest), Body=data)

    def staged_bytes(self, upload_id: str) -> int:
        """How much of a session this store holds so far (filesystem: the staged file; S3: its parts)."""
        if self.kind == "filesystem":
            path = self.process.data_dir / "blobs" / "uploads" / upload_id
            return path.stat().st_size if path.exists() else 0
        client = s3_client(self.endpoint)
        uploads = client.list_multipart_uploads(Bucket=self.bucket, Prefix=f"uploads/{upload_id}/")
        total = 0
        for upload in uploads.get("Uploads", []):
            parts = client.list_parts(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            total += sum(part["Size"] for part in parts.get("Parts", []))
        return total


@pytest.fixture(params=["filesystem", "s3"])
def start_store_server(
    request: pytest.FixtureRequest, make_server: Callable[..., RegistryProcess]
) -> Callable[..., StoreServer]:
    def start(**env: str) -> StoreServer:
        if request.param == "filesystem":
            return StoreServer(make_server(**env), "filesystem")
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = new_bucket(endpoint)
        env |= s3_environment(endpoint, bucket)
        return StoreServer(make_server(**env), "s3", bucket, endpoint)

    return start


@pytest.fixture
def store_server(start_store_server: Callable[..., StoreServer]) -> StoreServer:
    return start_store_server()


@pytest.fixture
def http(store_server: StoreServer) -> Iterator[httpx.Client]:
    with store_server.process.client() as client:
        yield client


def _open_session(client: httpx.Client, repo: str) -> str:
    response = client.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return response.headers["Location"]


def _served_digest(client: httpx.Client, repo: str, digest: str) -> str | None:
    response = client.get(f"/v2/{repo}/blobs/{digest}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return sha256(response.content)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_concurrent_patches_on_one_session_never_publish_wrong_bytes(
    start_store_server: Callable[..., StoreServer], workers: str
) -> None:
    server = start_store_server(REGISTRY_SERVER_WORKERS=workers)
    repo = "hammer/one-session"
    for round_number in range(HAMMER_ROUNDS):
        writers = (2, 4, 8)[round_number % 3]
        bodies = [os.urandom(MiB) for _ in range(writers)]
        with server.process.client() as opener:
            location = _open_session(opener, repo)
        barrier = threading.Barrier(writers)

        def patch(body: bytes, location: str = location, barrier: threading.Barrier = barrier) -> int:
            # One connection per writer, so with two workers the writers spread over both processes.
            with server.process.client() as client:
                barrier.wait()
                response = client.patch(
                    location, content=body, headers={"Content-Range": f"0-{len(body) - 1}"}
                )
                if response.status_code == 416:
                    assert "Range" in response.headers
                    assert errors(response) == ["BLOB_UPLOAD_INVALID"]
                return response.status_code

        with ThreadPoolExecutor(writers) as pool:
            statuses = list(pool.map(patch, bodies))
        assert set(statuses) <= {202, 416}, statuses
        assert statuses.count(202) == 1, f"round {round_number}: {statuses}"

        winner = bodies[statuses.index(202)]
        with server.process.client() as client:
            response = client.put(location, params={"digest": sha256(winner)})
            assert response.status_code == 201, f"round {round_number}: {response.text}"
            for body in bodies:
                served = _served_digest(client, repo, sha256(body))
                assert served == (sha256(body) if body is winner else None), f"round {round_number}"


def _send_part_of_patch(server: StoreServer, location: str, first: bytes, total: int) -> socket.socket:
    """Start a PATCH of `total` bytes, send `first` of them, and leave it hanging like a slow client."""
    sock = socket.create_connection(("127.0.0.1", server.process.port))
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: {server.process.host}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {total}\r\n"
        f"Content-Range: 0-{total - 1}\r\n\r\n"
    )
    sock.sendall(head.encode() + first)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    status = int(data.split(b" ", 2)[1])
    return status, data


def test_a_second_writer_is_refused_while_the_first_is_still_sending(store_server: StoreServer) -> None:
    repo = "hammer/slow-writer"
    with store_server.process.client() as client:
        location = _open_session(client, repo)
        upload_id = location.rsplit("/", 1)[1]
        slow = os.urandom(12 * MiB)
        # Enough for the store to take a piece, which shows the first writer holds the session.
        sent = 9 * MiB
        sock = _send_part_of_patch(store_server, location, slow[:sent], len(slow))
        try:
            deadline = time.monotonic() + 30
            while store_server.staged_bytes(upload_id) == 0:
                assert time.monotonic() < deadline, "the first writer's bytes never reached the store"
                time.sleep(0.05)
            intruder = os.urandom(1000)
            response = client.patch(location, content=intruder, headers={"Content-Range": "0-999"})
            assert response.status_code == 416, response.text
            assert errors(response) == ["BLOB_UPLOAD_INVALID"]
            assert "Range" in response.headers
            sock.sendall(slow[sent:])
            status, _ = _read_response(sock)
            assert status == 202
        finally:
            sock.close()
        response = client.put(location, params={"digest": sha256(slow)})
        assert response.status_code == 201, response.text
        assert _served_digest(client, repo, sha256(slow)) == sha256(slow)


@pytest.mark.parametrize("how", ["monolithic", "chunked"])
def test_an_honest_push_replaces_wrong_bytes_already_stored(
    store_server: StoreServer, http: httpx.Client, how: str
) -> None:
    data = os.urandom(3 * MiB + 5)
    digest = sha256(data)
    store_server.overwrite_blob(digest, b"not what the digest says")
    repo = "honest/push"
    if how == "monolithic":
        push_blob(http, repo, data)
    else:
        location = _open_session(http, repo)
        response = http.patch(location, content=data, headers={"Content-Range": f"0-{len(data) - 1}"})
        assert response.status_code == 202, response.text
        response = http.put(response.headers["Location"], params={"digest": digest})
        assert response.status_code == 201, response.text
    assert _served_digest(http, repo, digest) == digest


def test_small_monolithic_push_replaces_wrong_bytes(store_server: StoreServer, http: httpx.Client) -> None:
    data = b"a small config blob"
    digest = sha256(data)
    store_server.overwrite_blob(digest, b"spoiled")
    push_blob(http, "honest/small", data)
    assert (
        hashlib.sha256(http.get(f"/v2/honest/small/blobs/{digest}").content).hexdigest()
        == (digest.split(":")[1])
    )
