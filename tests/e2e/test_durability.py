"""What survives a SIGKILL, what a SIGTERM lets finish, and what the upload purger removes."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.support.oci import image_manifest, push_blob, put_manifest, sha256
from tests.support.server import RegistryProcess


def _staged_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "blobs" / "uploads").iterdir()]


def _stream_slowly(
    server: RegistryProcess, path: str, pieces: list[bytes], pause: float, result: dict
) -> None:
    """A PATCH whose body arrives piece by piece, so the server can be signalled mid-request."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.putrequest("PATCH", path)
        connection.putheader("Content-Length", str(sum(map(len, pieces))))
        connection.endheaders()
        for piece in pieces:
            connection.send(piece)
            result["sent"] = result.get("sent", 0) + len(piece)
            time.sleep(pause)
        response = connection.getresponse()
        result["status"] = response.status
        result["range"] = response.getheader("Range")
    except OSError as error:
        result["error"] = error
    finally:
        connection.close()


def _start_slow_patch(
    server: RegistryProcess, location: str, data: bytes, piece: int, until: int
) -> tuple[threading.Thread, dict]:
    """Start a slow PATCH of `data` in `piece`-sized sends; return once `until` bytes are out."""
    result: dict = {}
    pieces = [data[i : i + piece] for i in range(0, len(data), piece)]
    sender = threading.Thread(target=_stream_slowly, args=(server, location, pieces, 0.05, result))
    sender.start()
    while result.get("sent", 0) < until:
        time.sleep(0.01)
    return sender, result


def test_sigkill_mid_upload_leaves_nothing_visible_and_keeps_acknowledged_content(
    make_server, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = make_server(data_dir)
    repo = "crash/test"
    with server.client() as client:
        manifest = image_manifest(client, repo, layers=[b"acknowledged layer"])
        assert put_manifest(client, repo, "kept", manifest).status_code == 201
        kept_blob = push_blob(client, repo, os.urandom(1 << 20))

        big = os.urandom(16 << 20)
        location = client.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        sender, result = _start_slow_patch(server, location, big, 1 << 20, 6 << 20)
        server.stop(signal.SIGKILL)
        sender.join()
        assert "status" not in result  # the request was never acknowledged

    server = make_server(data_dir)
    with server.client() as client:
        assert client.head(f"/v2/{repo}/blobs/{sha256(big)}").status_code == 404
        got = client.get(f"/v2/{repo}/manifests/kept")
        assert got.status_code == 200 and got.content == manifest
        blob = client.get(f"/v2/{repo}/blobs/{kept_blob}")
        assert sha256(blob.content) == kept_blob
        # The interrupted session can still be resumed from what reached the disk, then finished.
        status = client.get(location)
        assert status.status_code == 204
        offset = int(status.headers["Range"].split("-")[1]) + 1
        assert client.patch(location, content=big[offset:]).status_code == 202
        assert client.put(location, params={"digest": sha256(big)}).status_code == 201
        assert client.get(f"/v2/{repo}/blobs/{sha256(big)}").content == big


def test_sigkill_during_manifest_pushes(make_server, tmp_path: Path) -> None:
    """Every acknowledged manifest survives intact; no tag points at something that is not there."""
    data_dir = tmp_path / "data"
    server = make_server(data_dir)
    repo = "crash/manifests"
    acknowledged: dict[str, bytes] = {}
    with server.client() as client:
        bodies = [
            image_manifest(client, repo, layers=[b"layer %d" % (i % 3)], annotations={"n": str(i)})
            for i in range(400)
        ]

    def pusher() -> None:
        with server.client() as client:
            for i, body in enumerate(bodies):
                try:
                    response = put_manifest(client, repo, f"t{i}", body)
                except httpx.TransportError:
                    return
                if response.status_code == 201:
                    acknowledged[f"t{i}"] = body

    thread = threading.Thread(target=pusher)
    thread.start()
    while len(acknowledged) < 30:
        time.sleep(0.005)
    server.stop(signal.SIGKILL)
    thread.join()

    server = make_server(data_dir)
    with server.client() as client:
        for tag, body in acknowledged.items():
            got = client.get(f"/v2/{repo}/manifests/{tag}")
            assert got.status_code == 200, tag
            assert got.content == body
        tags = client.get(f"/v2/{repo}/tags/list").json()["tags"]
        assert set(acknowledged) <= set(tags)
        for tag in tags:
            got = client.get(f"/v2/{repo}/manifests/{tag}")
            assert got.status_code == 200 and sha256(got.content) == got.headers["Docker-Content-Digest"]
            for layer in json.loads(got.content)["layers"]:
                assert client.head(f"/v2/{repo}/blobs/{layer['digest']}").status_code == 200


def test_sigterm_finishes_in_flight_requests(make_server) -> None:
    server = make_server()
    repo = "graceful/test"
    data = os.urandom(4 << 20)
    with server.client() as client:
        location = client.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    sender, result = _start_slow_patch(server, location, data, 256 << 10, 1 << 20)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    sender.join()
    assert result.get("status") == 202, result
    assert result["range"] == f"0-{len(data) - 1}"
    assert server.proc.wait(30) == 0


def test_failed_monolithic_uploads_leave_nothing(make_server, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = make_server(data_dir)
    with server.client() as client:
        for size in (1000, 9 << 20):  # one piece, and streamed through a staged file
            data = os.urandom(size)
            wrong = sha256(data + b"!")
            response = client.post("/v2/mono/test/blobs/uploads/", params={"digest": wrong}, content=data)
            assert response.status_code == 400
            assert client.head(f"/v2/mono/test/blobs/{sha256(data)}").status_code == 404
    assert list((data_dir / "blobs" / "ingest").iterdir()) == []
    assert list((data_dir / "blobs" / "blobs").rglob("*")) == []


def test_expired_uploads_are_purged(make_server, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    leftover = data_dir / "blobs" / "ingest" / "left-by-a-crash"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"partial")
    os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    server = make_server(data_dir, REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE="2")
    with server.client() as client:
        location = client.post("/v2/purge/test/blobs/uploads/").headers["Location"]
        client.patch(location, content=b"abandoned bytes")
        assert client.get(location).status_code == 204
        deadline = time.monotonic() + 15
        while client.get(location).status_code != 404:
            assert time.monotonic() < deadline, "the abandoned session was never purged"
            time.sleep(0.5)
    assert _staged_files(data_dir) == []
    assert not leftover.exists()
