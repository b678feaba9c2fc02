"""Blob GETs through the ASGI pathsend extension, seen from the app's side: the app is called in this
process with a scope that offers the extension (or not), and what it sends is recorded. (On a real
server, every blob GET of the API suites on granian over SMALL_BLOB takes this path too.) Smaller
blobs go out from memory (BlobStore.small_blob), whatever the server offers."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Message

from registry.api.pathsend import PATHSEND
from registry.app import create_app
from registry.cli.prepare import prepare
from registry.config import Settings
from registry.storage import FilesystemStore
from registry.storage.content import SMALL_BLOB
from registry.types import Digest
from tests.support.asgi import http_scope

REPO = "zero/copy"


def call(
    app: ASGIApp, method: str, path: str, *, query: str = "", body: bytes = b"", **options
) -> list[Message]:
    """One request to the app; the messages it sent back."""
    headers = [(b"host", b"registry.test"), *options.get("headers", [])]
    extensions = {PATHSEND: {}} if options.get("pathsend", True) else {}
    scope = http_scope(method, path, query, headers, extensions)
    sent: list[Message] = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(_with_lifespan(app, scope, receive, send))
    return sent


async def _with_lifespan(app, scope, receive, send) -> None:
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[ASGIApp]:
    settings = Settings().with_overrides({"data_dir": tmp_path})
    prepare(settings, create=True)
    yield create_app(settings)


def _pushed(app: ASGIApp, tmp_path: Path, size: int) -> tuple[str, bytes, Path]:
    data = os.urandom(size)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    [start, *_] = call(app, "POST", f"/v2/{REPO}/blobs/uploads/", query=f"digest={digest}", body=data)
    assert start["status"] == 201
    return digest, data, FilesystemStore(tmp_path / "blobs").blob_path(Digest.parse(digest))


@pytest.fixture
def blob(app, tmp_path: Path) -> tuple[str, bytes, Path]:
    return _pushed(app, tmp_path, SMALL_BLOB + 300_000)


def test_a_whole_blob_goes_out_as_its_file(app, blob) -> None:
    digest, data, path = blob
    start, sent = call(app, "GET", f"/v2/{REPO}/blobs/{digest}")
    assert start["status"] == 200 and (b"content-length", str(len(data)).encode()) in start["headers"]
    assert sent == {"type": PATHSEND, "path": str(path)}
    assert Path(sent["path"]).read_bytes() == data


def test_ranges_and_servers_without_the_extension_stream(app, blob) -> None:
    digest, data, _ = blob
    ranged = call(app, "GET", f"/v2/{REPO}/blobs/{digest}", headers=[(b"range", b"bytes=10-99")])
    assert ranged[0]["status"] == 206
    assert b"".join(m.get("body", b"") for m in ranged[1:]) == data[10:100]
    plain = call(app, "GET", f"/v2/{REPO}/blobs/{digest}", pathsend=False)
    assert {m["type"] for m in plain} == {"http.response.start", "http.response.body"}
    assert b"".join(m.get("body", b"") for m in plain[1:]) == data


def test_a_small_blob_goes_out_from_memory(app, tmp_path: Path) -> None:
    digest, data, _ = _pushed(app, tmp_path, 300_000)
    for pathsend in (True, False):
        start, sent = call(app, "GET", f"/v2/{REPO}/blobs/{digest}", pathsend=pathsend)
        assert start["status"] == 200 and (b"content-length", str(len(data)).encode()) in start["headers"]
        assert sent == {"type": "http.response.body", "body": data}
    ranged = call(app, "GET", f"/v2/{REPO}/blobs/{digest}", headers=[(b"range", b"bytes=10-99")])
    assert ranged[0]["status"] == 206 and ranged[1]["body"] == data[10:100]


# A whole large file goes out unread, rotten or not: the client's digest check finds the rot.
@pytest.mark.parametrize(
    ("size", "damage"),
    [
        ("small", "delete"),
        ("small", "truncate"),
        ("small", "rot"),
        ("large", "delete"),
        ("large", "truncate"),
    ],
)
def test_a_lost_file_is_404_not_sent(app, tmp_path: Path, damage: str, size: str) -> None:
    digest, data, path = _pushed(app, tmp_path, 300_000 if size == "small" else SMALL_BLOB + 1000)
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(data[:1000])
    else:
        path.write_bytes(b"x" + data[1:])
    start, body = call(app, "GET", f"/v2/{REPO}/blobs/{digest}")
    assert start["status"] == 404 and b"BLOB_UNKNOWN" in body["body"]
