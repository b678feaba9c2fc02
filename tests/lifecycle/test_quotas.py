"""Quotas against a real `registry serve` on SQLite and PostgreSQL: a namespace's limit, blobs shared
inside it counted once, a refusal (403 DENIED with used and limit) that records nothing, and two pushes
racing for the last room of which exactly one gets it."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from registry.config import async_database_url
from registry.index import ManifestPut, ManifestRecord, PutGuard, Quota, QuotaExceeded, SQLIndex, policies
from registry.index.migrate import upgrade
from tests.lifecycle.conftest import push_image, rules
from tests.support.oci import OCI_MANIFEST, errors, image_manifest, put_manifest, sha256

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
        # Each new layer fits in the room left (so its upload passes), both together do not.
        body = image_manifest(
            client, f"{namespace}/b", layers=[base, b"t" * (2 * KIB), b"u" * (3 * KIB)], config=_config("big")
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


def test_a_blob_too_large_for_the_room_left_is_refused_at_its_upload(make_server, namespace: str) -> None:
    server = make_server(**rules(quotas=[{"repositories": namespace + "/*", "limit": "10KiB"}]))
    with server.client() as client:
        base = b"b" * (6 * KIB)
        push_image(client, f"{namespace}/a", "1", "a", layers=[base])
        big = b"x" * (5 * KIB)
        refused = client.post(
            f"/v2/{namespace}/b/blobs/uploads/", params={"digest": sha256(big)}, content=big
        )
        assert refused.status_code == 403, refused.text
        assert errors(refused) == ["DENIED"]
        detail = refused.json()["errors"][0]["detail"]
        assert (detail["limit"], detail["needed"] - detail["used"]) == (10 * KIB, 5 * KIB)
        assert client.head(f"/v2/{namespace}/b/blobs/{sha256(big)}").status_code == 404
        # A blob the namespace counts already takes no room: it is let through.
        assert (
            client.post(
                f"/v2/{namespace}/b/blobs/uploads/", params={"digest": sha256(base)}, content=base
            ).status_code
            == 201
        )
        # In a session the chunks go in (no digest yet), the finishing PUT is refused before the blob is kept.
        location = client.post(f"/v2/{namespace}/b/blobs/uploads/").headers["Location"]
        assert client.patch(location, content=big).status_code == 202
        finished = client.put(location, params={"digest": sha256(big)})
        assert finished.status_code == 403
        assert errors(finished) == ["DENIED"]
        assert client.head(f"/v2/{namespace}/b/blobs/{sha256(big)}").status_code == 404
        small = b"s" * KIB
        assert (
            client.post(
                f"/v2/{namespace}/b/blobs/uploads/", params={"digest": sha256(small)}, content=small
            ).status_code
            == 201
        )


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
        REGISTRY_SERVER_WORKERS="2", **rules(quotas=[{"repositories": namespace + "/*", "limit": "12KiB"}])
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


def test_on_postgresql_a_second_push_cannot_read_the_usage_until_the_first_commits(
    postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race made deterministic: push A is held in its transaction right after reading the usage,
    until push B either waits on the namespace's lock (as it must) or reads the usage too (the race).
    Each push runs in a thread of its own with an index of its own, as two server processes would."""
    url = postgres.new_database()
    upgrade(url)
    quota = Quota("race/*", 10 * KIB)
    blobs = {name: f"sha256:{name * 64}" for name in "ab"}

    async def link() -> None:
        index = SQLIndex(async_database_url(url))
        await index.open()
        for name, digest in blobs.items():
            await index.link_blob(f"race/{name}", digest, 8 * KIB)
        await index.close()

    asyncio.run(link())
    a_read, b_read = threading.Event(), threading.Event()

    def held(_quota: Quota) -> None:
        if threading.current_thread().name == "push-b":
            b_read.set()
            return
        a_read.set()
        deadline = time.monotonic() + 30
        while not (b_read.is_set() or _waiting_on_a_lock(url)):
            assert time.monotonic() < deadline, "push B neither waited on the lock nor read the usage"
            time.sleep(0.01)

    monkeypatch.setattr(policies, "quota_read", held)
    outcomes: dict[str, str] = {}

    def push(name: str) -> None:
        async def run() -> None:
            index = SQLIndex(async_database_url(url))
            await index.open()
            record = ManifestRecord(f"sha256:{name * 63}f", OCI_MANIFEST, 100, payload=b"{}")
            try:
                await index.put_manifest(
                    f"race/{name}", ManifestPut(record, (blobs[name],)), PutGuard(quotas=(quota,))
                )
                outcomes[name] = "pushed"
            except QuotaExceeded:
                outcomes[name] = "refused"
            finally:
                await index.close()

        asyncio.run(run())

    first = threading.Thread(target=push, args=("a",), name="push-a")
    first.start()
    assert a_read.wait(30)
    second = threading.Thread(target=push, args=("b",), name="push-b")
    second.start()
    first.join(60)
    second.join(60)
    assert outcomes == {"a": "pushed", "b": "refused"}


def _waiting_on_a_lock(url: str) -> bool:
    """Whether a session waits on an advisory lock (asked from a thread of its own: the caller is inside
    a push's event loop)."""

    async def ask() -> bool:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return bool(
                await connection.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                )
            )
        finally:
            await connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(ask())).result()
