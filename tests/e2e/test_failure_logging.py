"""What the server log says when a request fails: a client that hangs up mid-body is one INFO line, a
genuine server error one ERROR line with one traceback, both read from a real `registry serve`'s log."""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path

import pytest

from tests.support.oci import errors, sha256
from tests.support.server import RegistryProcess

BODY = 256 * 1024
SENT = BODY // 2


@pytest.fixture
def server(tmp_path: Path) -> RegistryProcess:
    """A server of this test's own, stopped by the test itself: its log is complete only then."""
    process = RegistryProcess(tmp_path / "data").start()
    yield process
    process.stop()


def _hang_up_mid_body(server: RegistryProcess, method: str, path: str) -> None:
    """Send the headers and half of the announced body, then close the socket."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {server.host}\r\nContent-Length: {BODY}\r\n"
    head += "Content-Type: application/octet-stream\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall(head.encode() + os.urandom(SENT))


def _wait_for_line(server: RegistryProcess, pattern: str, timeout: float = 30) -> str:
    """The log line matching `pattern`, once the server has written it (a condition, not a delay)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in server.log.read_text().splitlines():
            if re.search(pattern, line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no line matching {pattern!r} in:\n{server.log.read_text()}")


def _assert_quiet(log: str) -> None:
    assert "ERROR" not in log and "Traceback" not in log, log


def test_client_hanging_up_mid_monolithic_post_is_one_info_line(server: RegistryProcess) -> None:
    digest = sha256(b"never sent whole")
    path = f"/v2/logs/app/blobs/uploads/?digest={digest}"
    _hang_up_mid_body(server, "POST", path)
    line = _wait_for_line(server, "disconnect")
    with server.client() as client:
        assert client.head(f"/v2/logs/app/blobs/{digest}").status_code == 404
    server.stop()
    log = server.log.read_text()
    assert " INFO " in line and f"POST {path.split('?')[0]}" in line and f"{SENT} bytes" in line, line
    assert log.count("disconnect") == 1, log
    _assert_quiet(log)
    assert not list((server.data_dir / "blobs" / "ingest").iterdir())  # nothing partial kept


def test_client_hanging_up_mid_patch_is_one_info_line(server: RegistryProcess) -> None:
    with server.client() as client:
        response = client.post("/v2/logs/app/blobs/uploads/")
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        _hang_up_mid_body(server, "PATCH", location)
        line = _wait_for_line(server, "disconnect")
        status = client.get(location)
        assert status.status_code == 204 and status.headers["Range"] == "0-0"  # nothing partial kept
    server.stop()
    log = server.log.read_text()
    assert " INFO " in line and f"PATCH {location}" in line and f"{SENT} bytes" in line, line
    assert log.count("disconnect") == 1, log
    _assert_quiet(log)


def test_server_error_is_one_error_line_with_one_traceback(server: RegistryProcess) -> None:
    # The blob store's folder becomes a plain file under the running server: every write fails for real.
    blobs = server.data_dir / "blobs"
    shutil.rmtree(blobs)
    blobs.write_bytes(b"not a folder")
    with server.client() as client:
        response = client.post("/v2/logs/app/blobs/uploads/", params={"digest": sha256(b"x")}, content=b"x")
        assert response.status_code == 500
        assert errors(response) == ["INTERNAL"]
    server.stop()
    log = server.log.read_text()
    error_lines = [line for line in log.splitlines() if "ERROR" in line]
    assert len(error_lines) == 1, log
    assert "POST /v2/logs/app/blobs/uploads/" in error_lines[0], log
    assert log.count("Traceback (most recent call last)") == 1, log
