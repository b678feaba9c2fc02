"""Quotas against a real `registry serve` on SQLite and PostgreSQL: a namespace's limit, blobs shared
inside it counted once, a refusal (403 DENIED with used and limit) that records nothing, and two pushes
racing for the last room of which exactly one gets it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.lifecycle.conftest import push_image, rules
from tests.support.oci import errors, image_manifest, put_manifest, sha256

KIB = 1024


def _config(name: str) -> bytes:
    return b'{"architecture":"amd64","os":"linux","name":"%s"}' % name.encode()


@pytest.fixture
def namespace(repo: str) -> str:
    return repo + "/ns"


def test_a_push_over_the_quota_is_refused_and_records_nothing(make_server, namespace: str) -> None:
    server = make_server(**rules(quotas=[{"repositories": namespace + "/*", "limit": "10KiB"}]))
    with server.client() as client:
        base = b"b" * (6 * KIB)
        push_image(client, f"{namespace}/a", "1", "a", layers=[base])
        # The same base in another repository of the namespace counts once.
        push_image(client, f"{namespace}/b", "1", "b", layers=[base])
        body = image_manifest(
            client, f"{namespace}/b", layers=[base, b"t" * (5 * KIB)], config=_config("big")
        )
        response = put_manifest(client, f"{namespace}/b", "2", body)
        assert response.status_code == 403, response.text
        assert errors(response) == ["DENIED"]
        detail = response.json()["errors"][0]["detail"]
        assert detail["limit"] == 10 * KIB
        assert detail["repositories"] == namespace + "/*"
        assert detail["used"] < detail["limit"] < detail["needed"]
        assert "quota" in response.json()["errors"][0]["message"]
        assert client.get(f"/v2/{namespace}/b/manifests/{sha256(body)}").status_code == 404
        assert client.get(f"/v2/{namespace}/b/tags/list").json()["tags"] == ["1"]
        # The refused push's blobs count for nothing: a push that fits still does.
        push_image(client, f"{namespace}/b", "3", "c", layers=[base, b"s" * KIB])
        # Outside the namespace there is no limit.
        push_image(client, namespace + "-other", "1", "x", layers=[b"x" * (20 * KIB)])


def test_a_push_adding_no_blob_passes_even_over_a_lowered_limit(make_server, namespace: str) -> None:
    server = make_server()
    with server.client() as client:
        push_image(client, namespace + "/a", "1", "a", layers=[b"a" * (4 * KIB)])
    server.stop()
    server = make_server(server.data_dir, **rules(quotas=[{"repositories": namespace + "/*", "limit": 1024}]))
    with server.client() as client:
        manifest = client.get(f"/v2/{namespace}/a/manifests/1").content
        assert put_manifest(client, namespace + "/a", "again", manifest).status_code == 201


def test_two_pushes_racing_for_the_last_room_one_gets_it(make_server, namespace: str) -> None:
    """Each fits alone, not both: pushed at once (released together by a barrier, into two server
    processes), exactly one is refused, whatever the order."""
    server = make_server(
        REGISTRY_WORKERS="2", **rules(quotas=[{"repositories": namespace + "/*", "limit": "12KiB"}])
    )
    bodies = {}
    with server.client() as client:
        for name in ("a", "b"):
            bodies[name] = image_manifest(
                client, f"{namespace}/{name}", layers=[name.encode() * (8 * KIB)], config=_config(name)
            )
    barrier = threading.Barrier(2)

    def push(name: str) -> int:
        with server.client() as client:
            barrier.wait()
            return put_manifest(client, f"{namespace}/{name}", "1", bodies[name]).status_code

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(push, bodies))
    assert statuses == [201, 403]
