"""The access log and request ids, read from a real `registry serve`'s log: one access line per request
with the id echoed to the client, a trusted proxy's id kept and anyone else's replaced, JSON lines that
parse, and a line at start and at shutdown."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import RegistryProcess

ServerFactory = Callable[..., RegistryProcess]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[ServerFactory]:
    """Servers on SQLite only: what is logged does not depend on the index."""
    started: list[RegistryProcess] = []

    def factory(**env: str) -> RegistryProcess:
        server = RegistryProcess(tmp_path / f"r{len(started)}", "", env).start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


def _lines_with(server: RegistryProcess, needle: str) -> list[str]:
    return [line for line in server.log.read_text().splitlines() if needle in line]


def test_one_access_line_per_request_with_the_echoed_id(start: ServerFactory) -> None:
    server = start()
    response = httpx.get(f"{server.url}/v2/some/repo/manifests/latest", headers={"User-Agent": "probe/1"})
    assert response.status_code == 404
    request_id = response.headers["X-Request-ID"]
    server.stop()
    lines = _lines_with(server, request_id)
    access = [line for line in lines if " registry.access " in line]
    assert len(access) == 1, server.log.read_text()  # ours only: hypercorn's access log stays off
    line = access[0]
    assert f"[{request_id}]" in line
    assert '"GET /v2/some/repo/manifests/latest HTTP/1.1" 404 ' in line and '"probe/1"' in line, line
    assert "repository=some/repo" in line, line
    assert len(_lines_with(server, "/v2/some/repo/manifests/latest")) == 1, server.log.read_text()
    assert _lines_with(server, "registry listening on") and _lines_with(server, "stopped")


def test_every_line_of_a_request_carries_its_id(start: ServerFactory) -> None:
    server = start()
    blobs = server.data_dir / "blobs"
    # A real failure inside the request: its ERROR line and its access line share the id.
    shutil.rmtree(blobs)
    blobs.write_bytes(b"not a folder")
    data = b"a layer"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    response = httpx.post(f"{server.url}/v2/logs/app/blobs/uploads/?digest={digest}", content=data)
    assert response.status_code == 500
    request_id = response.headers["X-Request-ID"]
    server.stop()
    lines = _lines_with(server, f"[{request_id}]")
    assert any(" ERROR registry " in line for line in lines), server.log.read_text()
    assert any(" registry.access " in line and '" 500 ' in line for line in lines), server.log.read_text()


def test_untrusted_clients_cannot_choose_the_request_id(start: ServerFactory) -> None:
    server = start()
    response = httpx.get(f"{server.url}/v2/", headers={"X-Request-ID": "chosen-by-client"})
    assert response.headers["X-Request-ID"] != "chosen-by-client"
    server.stop()
    assert not _lines_with(server, "chosen-by-client")


def test_a_trusted_proxy_sets_the_request_id(start: ServerFactory) -> None:
    server = start(REGISTRY_SERVER_TRUSTED_PROXIES="127.0.0.1")
    forwarded = {"X-Request-ID": "proxy-7f3a.1", "X-Forwarded-For": "192.0.2.10"}
    response = httpx.get(f"{server.url}/v2/", headers=forwarded)
    assert response.headers["X-Request-ID"] == "proxy-7f3a.1"
    hostile = httpx.get(f"{server.url}/v2/", headers={"X-Request-ID": "two words\tand a tab"})
    assert hostile.headers["X-Request-ID"] != "two words\tand a tab"  # not an id: replaced
    server.stop()
    (line,) = [line for line in _lines_with(server, "[proxy-7f3a.1]") if " registry.access " in line]
    assert line.split("] ", 1)[1].startswith("192.0.2.10 - - ["), line  # the client behind the proxy


def test_json_lines_parse_and_carry_the_fields(start: ServerFactory) -> None:
    server = start(REGISTRY_LOG_FORMATTER="json")
    response = httpx.get(f"{server.url}/v2/json/repo/tags/list")
    request_id = response.headers["X-Request-ID"]
    server.stop()
    records = [json.loads(line) for line in server.log.read_text().splitlines() if line.strip()]
    access = [r for r in records if r["logger"] == "registry.access" and r.get("request_id") == request_id]
    assert len(access) == 1, records
    fields = access[0]
    assert fields["status"] == response.status_code and fields["method"] == "GET"
    assert fields["path"] == "/v2/json/repo/tags/list" and fields["repository"] == "json/repo"
    assert fields["route"] == "list_tags" and fields["bytes_sent"] == len(response.content)
    assert fields["duration_seconds"] > 0 and fields["user"] == ""
    assert any("registry listening on" in r["msg"] for r in records)
