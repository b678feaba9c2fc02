"""Pulls answered again from memory (registry/api/kept.py) on a real `registry serve`: the same answer
the whole way gives, with the request's own id, access line, metrics and pull event; never an answer a
change has made wrong, or one that does not fit the request. On PostgreSQL nothing is kept, and the
same answers come from the database each time."""

from __future__ import annotations

import httpx
import pytest

from tests.observe.test_metrics import samples, value
from tests.support.oci import OCI_MANIFEST, image_manifest, push_blob, put_manifest, sha256
from tests.support.scrub import blob_file
from tests.support.server import RegistryProcess

ACCEPT = {"Accept": OCI_MANIFEST}
# What differs between two answers to the same request whatever their source.
_PER_REQUEST = {"x-request-id", "date"}


def _comparable(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((name, value) for name, value in response.headers.items() if name not in _PER_REQUEST)
    return response.status_code, response.content, headers


def test_a_pull_answered_again_is_the_answer_it_was(make_server, database: str) -> None:
    server: RegistryProcess = make_server(REGISTRY_SERVER_WORKERS="1")
    repo, layer = "kept/app", b"a kept layer"
    with server.client() as client:
        manifest = image_manifest(client, repo, layers=[layer])
        assert put_manifest(client, repo, "v1", manifest).status_code == 201
        pulls = [
            ("GET", f"/v2/{repo}/manifests/v1", ACCEPT),
            ("HEAD", f"/v2/{repo}/manifests/v1", ACCEPT),
            ("GET", f"/v2/{repo}/manifests/{sha256(manifest)}", {}),
            ("HEAD", f"/v2/{repo}/blobs/{sha256(layer)}", {}),
            ("GET", f"/v2/{repo}/blobs/{sha256(layer)}", {}),
        ]
        ids = []
        for method, path, headers in pulls:
            first, again = (client.request(method, path, headers=headers) for _ in range(2))
            assert first.status_code == 200, first.text
            assert _comparable(again) == _comparable(first)
            assert again.headers["x-request-id"] != first.headers["x-request-id"]
            ids += [first.headers["x-request-id"], again.headers["x-request-id"]]
        found = samples(client.get("/metrics").text)
    server.stop()

    kept = {
        route: value(found, "registry_http_kept_answers_total", route=route)
        for route in ("get_manifest", "get_blob")
    }
    # Each second request, on SQLite; PostgreSQL gives no version to keep answers under.
    assert kept == ({"get_manifest": 0, "get_blob": 0} if database else {"get_manifest": 3, "get_blob": 2})
    assert value(found, "registry_events_total", target="manifest", action="pull") == 4
    assert value(found, "registry_events_total", target="blob", action="pull") == 2
    assert value(found, "registry_event_bytes_total", target="blob", action="pull") == 2 * len(layer)
    assert value(found, "registry_event_bytes_total", target="manifest", action="pull") == 4 * len(manifest)
    answered = {"GET": 4, "HEAD": 2}
    for method, count in answered.items():
        labels = dict(route="get_manifest", method=method, status="200")
        assert value(found, "registry_http_requests_total", **labels) == count
    assert value(found, "registry_http_sent_bytes_total", route="get_manifest") == 4 * len(manifest)
    access = [line for line in server.log.read_text().splitlines() if " registry.access " in line]
    for request_id in ids:
        (line,) = [line for line in access if f"[{request_id}]" in line]
        assert '" 200 ' in line and f"repository={repo}" in line, line


def test_a_change_is_seen_by_the_very_next_pull(client: httpx.Client, repo: str) -> None:
    old = image_manifest(client, repo, layers=[b"old layer"])
    new = image_manifest(client, repo, layers=[b"new layer"])
    assert put_manifest(client, repo, "v1", old).status_code == 201
    tag = f"/v2/{repo}/manifests/v1"
    for _ in range(2):
        assert client.get(tag, headers=ACCEPT).headers["Docker-Content-Digest"] == sha256(old)
    assert put_manifest(client, repo, "v1", new).status_code == 201
    assert client.get(tag, headers=ACCEPT).headers["Docker-Content-Digest"] == sha256(new)
    assert client.head(tag, headers=ACCEPT).headers["Docker-Content-Digest"] == sha256(new)

    assert client.delete(tag).status_code == 202
    assert client.get(tag, headers=ACCEPT).status_code == 404
    assert client.head(tag, headers=ACCEPT).status_code == 404

    blob = f"/v2/{repo}/blobs/{push_blob(client, repo, b'a blob to delete')}"
    assert [client.head(blob).status_code for _ in range(2)] == [200, 200]
    assert client.delete(blob).status_code == 202
    assert client.head(blob).status_code == 404


def test_what_a_kept_answer_does_not_cover_goes_the_whole_way(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest(client, repo, layers=[b"layer"])
    assert put_manifest(client, repo, "v1", manifest).status_code == 201
    tag = f"/v2/{repo}/manifests/v1"
    for _ in range(2):
        assert client.get(tag, headers=ACCEPT).status_code == 200
    # Another Accept is another answer: this one admits no OCI image manifest.
    refused = client.get(tag, headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert refused.status_code == 404 and refused.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert client.get(tag, headers=ACCEPT).status_code == 200

    blob = f"/v2/{repo}/blobs/{sha256(b'layer')}"
    assert [client.head(blob).status_code for _ in range(2)] == [200, 200]
    assert [client.get(blob).content for _ in range(2)] == [b"layer", b"layer"]
    assert client.get(blob, headers={"Range": "bytes=1-2"}).content == b"ay"
    ranged = client.head(blob, headers={"Range": "bytes=1-2"})
    assert ranged.status_code == 206 and ranged.headers["Content-Range"] == "bytes 1-2/5"
    beyond = client.head(blob, headers={"Range": "bytes=9-"})
    assert beyond.status_code == 416
    assert client.head(blob).headers["Content-Length"] == "5"


@pytest.mark.parametrize("read_cache", ["48", "0"])
def test_read_cache_bounds_what_is_kept_and_0_keeps_nothing(
    make_server, database: str, read_cache: str
) -> None:
    """`server.read_cache`: kept (the default), a small blob read once is answered from its verified copy
    in memory, even once the stored bytes rot; with 0 nothing is kept, every pull goes the whole way,
    and bytes rotten since the last pull are refused."""
    server: RegistryProcess = make_server(REGISTRY_SERVER_WORKERS="1", REGISTRY_SERVER_READ_CACHE=read_cache)
    repo, layer = "kept/bounded", b"a small layer, read once or each time"
    blob = f"/v2/{repo}/blobs/{sha256(layer)}"
    with server.client() as client:
        manifest = image_manifest(client, repo, layers=[layer])
        assert put_manifest(client, repo, "v1", manifest).status_code == 201
        for _ in range(2):
            assert client.get(f"/v2/{repo}/manifests/v1", headers=ACCEPT).content == manifest
            assert client.get(blob).content == layer
        blob_file(server.data_dir, sha256(layer)).write_bytes(b"x" + layer[1:])
        after = client.get(blob)
        found = samples(client.get("/metrics").text)
    if read_cache == "0":
        assert after.status_code == 404 and after.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    else:
        assert after.status_code == 200 and after.content == layer
    kept = sum(
        value(found, "registry_http_kept_answers_total", route=r) for r in ("get_manifest", "get_blob")
    )
    # On SQLite the second pulls and the one after the rot, when kept; PostgreSQL keeps no answers.
    assert kept == (3 if read_cache != "0" and not database else 0)
