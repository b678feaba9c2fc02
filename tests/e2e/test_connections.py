"""What one client can hold on a real server: bodies answered before they are read, bodies that stall,
idle connections and oversized headers. The server's connections are counted with `ss`, on its port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import pki, ssl_context, tls_env  # noqa: F401  (pki: the session's certificates)
from tests.support.server import RegistryProcess

pytestmark = pytest.mark.both_servers

# Requests in the unread-body test; set REGISTRY_TEST_UNREAD_BODIES=1000 for the full run.
UNREAD_BODIES = int(os.environ.get("REGISTRY_TEST_UNREAD_BODIES", "200"))
MiB = 1 << 20


def process_tree(pid: int) -> set[int]:
    """A process and its descendants: granian's connections live in its worker processes."""
    found = {pid}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found |= process_tree(int(child))
    return found


def connections(server: RegistryProcess) -> int:
    """The server's TCP connections on its port (any process of it), in any state but listening."""
    assert server.proc is not None
    table = subprocess.run(
        ["ss", "-tnp", f"sport = :{server.port}"], capture_output=True, text=True, check=True
    ).stdout
    pids = process_tree(server.proc.pid)
    return sum(any(f"pid={pid}," in line for pid in pids) for line in table.splitlines())


def settle(server: RegistryProcess, at_most: int, within: float) -> int:
    """Poll until the server holds at most `at_most` connections, or the deadline passes."""
    deadline = time.monotonic() + within
    while (held := connections(server)) > at_most and time.monotonic() < deadline:
        time.sleep(0.05)
    return held


def request_head(method: str, path: str, length: int, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def send_then_read(port: int, head: bytes, body: bytes) -> bytes:
    """What httpx and requests do: the whole body goes out before the response is read."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        return read_response_head(sock)


def stop_timed(server: RegistryProcess) -> float:
    assert server.proc is not None
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(40) == 0
    return time.monotonic() - started


@pytest.fixture
def start(tmp_path: Path, engine: str) -> Iterator[type]:
    """Servers on the embedded index (what is tested here is the connection, not the index)."""
    started: list[RegistryProcess] = []

    def run(**env: str) -> RegistryProcess:
        server = RegistryProcess(tmp_path / f"r{len(started)}", "", env, engine).start()
        started.append(server)
        return server

    yield run  # type: ignore[misc]
    for server in started:
        server.stop()


def test_unread_bodies_leave_no_connections_and_sigterm_stays_prompt(start) -> None:
    server = start(REGISTRY_LIMITS_IDLE_TIMEOUT="1")
    with server.client() as client:
        location = client.post("/v2/unread/test/blobs/uploads/").headers["Location"]
    assert settle(server, 0, within=10) == 0  # the readiness checks' and the client's connections
    body = os.urandom(2 * MiB)
    # A chunk that does not start at the upload's end: 416, answered before the body is read.
    head = request_head("PATCH", location, len(body), f"Content-Range: 5-{4 + len(body)}")
    for _ in range(UNREAD_BODIES):
        assert send_then_read(server.port, head, body).startswith(b"HTTP/1.1 416 ")
    assert settle(server, 0, within=10) == 0
    assert stop_timed(server) < 2


def test_an_unread_body_keeps_the_connection_usable(start) -> None:
    # auth basic: an anonymous upload is refused (401) before its body is read; no users needed.
    server = start(REGISTRY_AUTH_MODE="basic")
    body = os.urandom(2 * MiB)
    with httpx.Client(base_url=server.url, timeout=5) as client:
        for _ in range(20):
            assert client.post("/v2/a/b/blobs/uploads/", content=body).status_code == 401
        assert client.get("/v2/").status_code == 401
        [connection] = client._transport._pool.connections  # type: ignore[attr-defined]
        assert connection.info().endswith("HTTP/1.1, IDLE, Request Count: 21")


def test_a_body_too_long_to_drain_ends_its_connection(start) -> None:
    server = start(REGISTRY_AUTH_MODE="basic", REGISTRY_LIMITS_IDLE_TIMEOUT="1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request_head("POST", "/v2/a/b/blobs/uploads/", 64 * MiB))
        head = b""
        try:
            for _ in range(16):
                sock.sendall(os.urandom(MiB))
        except OSError:
            pass  # the server answered and closed without reading the rest: expected
        with contextlib.suppress(OSError):  # a reset may overtake the answer
            head = read_response_head(sock)
        if head:
            assert head.startswith(b"HTTP/1.1 401 ") and b"connection: close" in head.lower()
    assert settle(server, 0, within=10) == 0
    assert stop_timed(server) < 2


def test_a_416_to_a_large_chunk_arrives_promptly_and_the_connection_goes_on(start) -> None:
    server = start(REGISTRY_LIMITS_IDLE_TIMEOUT="1")
    assert settle(server, 0, within=10) == 0
    with httpx.Client(base_url=server.url, timeout=5) as client:
        location = client.post("/v2/chunks/test/blobs/uploads/").headers["Location"]
        assert client.patch(location, content=b"abc", headers={"Content-Range": "0-2"}).status_code == 202
        chunk = os.urandom(4 * MiB)
        started = time.monotonic()
        refused = client.patch(location, content=chunk, headers={"Content-Range": f"10-{9 + len(chunk)}"})
        assert refused.status_code == 416 and refused.headers["Range"] == "0-2"
        assert time.monotonic() - started < 3
        assert client.patch(location, content=b"def", headers={"Content-Range": "3-5"}).status_code == 202
        assert connections(server) == 1


def test_stalled_bodies_are_cut_off_and_their_chunks_rolled_back(start) -> None:
    server = start(REGISTRY_LIMITS_BODY_READ_TIMEOUT="1")
    with server.client() as client:
        locations = [client.post(f"/v2/stall/{i % 4}/blobs/uploads/").headers["Location"] for i in range(200)]
    stalled = []
    for location in locations:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        sock.sendall(request_head("PATCH", location, MiB) + b"x" * 1000)
        stalled.append(sock)
    try:
        assert settle(server, 0, within=20) == 0
        for sock in stalled:
            while sock.recv(65536):  # an answer, then the end: never a hang
                pass
    finally:
        for sock in stalled:
            sock.close()
    with server.client() as client:
        for location in locations[:10]:
            assert client.get(location).headers["Range"] == "0-0"  # the partial chunk is gone
    assert "Traceback" not in server.log.read_text()


def test_idle_connections_and_oversized_headers_are_closed(start) -> None:
    server = start(REGISTRY_LIMITS_IDLE_TIMEOUT="1", REGISTRY_LIMITS_MAX_HEADER_SIZE="4096")
    with socket.create_connection(("127.0.0.1", server.port), timeout=4) as sock:
        assert sock.recv(1) == b""  # closed by the server, well before the socket's own timeout
    with socket.create_connection(("127.0.0.1", server.port), timeout=4) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"p" * 8000 + b"\r\n\r\n")
        assert read_response_head(sock).startswith(b"HTTP/1.1 431 ")
    with server.client() as client:  # the same request, headers in bounds
        assert client.get("/v2/", headers={"X-Padding": "p" * 3000}).status_code == 200


def test_unread_bodies_over_http2(start, pki: Path) -> None:  # noqa: F811
    server = start(REGISTRY_AUTH_MODE="basic", REGISTRY_LIMITS_MAX_HEADER_SIZE="4096", **tls_env(pki))
    body = os.urandom(4 * MiB)
    with httpx.Client(base_url=server.url, http2=True, verify=ssl_context(pki), timeout=5) as client:
        for _ in range(5):
            response = client.post("/v2/a/b/blobs/uploads/", content=body)
            assert response.status_code == 401 and response.http_version == "HTTP/2"
        # Beyond what HTTP/1.1 drains: the whole body is read, the answer arrives, the connection stays.
        assert client.post("/v2/a/b/blobs/uploads/", content=os.urandom(12 * MiB)).status_code == 401
        # HTTP/2 only advertises its header limit: the registry enforces it.
        assert client.get("/v2/", headers={"X-Padding": "p" * 8000}).status_code == 431
        assert connections(server) == 1
    assert stop_timed(server) < 2
