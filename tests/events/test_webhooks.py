"""Webhooks on a real `registry serve`: a loopback receiver gets every event of a push, pull, mount and
delete in Distribution's envelope, each once, in order, through receiver outages, a SIGKILL of the
server before delivery, and two replicas sharing one PostgreSQL index."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.oci import OCI_MANIFEST, image_manifest, push_blob, put_manifest, sha256
from tests.support.postgres import PostgresCluster
from tests.support.server import RegistryProcess
from tests.support.tools import run_registry
from tests.support.webhooks import Receiver, endpoint_env

ENVELOPE = "application/vnd.docker.distribution.events.v1+json"
EVENT_KEYS = {"id", "timestamp", "action", "target", "request", "actor", "source"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def _summary(events: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [
        (e["target"]["repository"], e["action"], e["target"].get("digest", ""), e["target"].get("tag", ""))
        for e in events
    ]


def _assert_in_order_per_repository(got: list[tuple[str, ...]], expected: list[tuple[str, ...]]) -> None:
    """Every event once, each repository's in the order they happened (repositories do not wait for
    each other, so their events may interleave differently)."""
    assert sorted(got) == sorted(expected)
    for repo in {row[0] for row in expected}:
        assert [row for row in got if row[0] == repo] == [row for row in expected if row[0] == repo]


def _events_command(server: RegistryProcess, *args: str) -> str:
    """`registry events ...` on the server's index, as an operator would run it beside the server."""
    env = {"REGISTRY_DATABASE_URL": server.database_url} if server.database_url else {}
    done = run_registry("events", *args, "--data-dir", str(server.data_dir), env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _owed(server: RegistryProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _events_command(server, "list", "--json").splitlines()]


def test_push_pull_mount_delete_in_the_envelope(
    make_server: Callable[..., RegistryProcess], receiver: Receiver
) -> None:
    server = make_server(**endpoint_env(receiver, headers={"Authorization": ["Bearer hook-secret"]}))
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer = os.urandom(2000)
    with server.client() as client:
        body = image_manifest(client, "hooks/app", layers=[layer], config=config)
        assert put_manifest(client, "hooks/app", "v1", body).status_code == 201
        assert client.get("/v2/hooks/app/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
        assert client.get(f"/v2/hooks/app/blobs/{sha256(layer)}").content == layer
        mount = client.post(
            "/v2/hooks/copy/blobs/uploads/", params={"mount": sha256(layer), "from": "hooks/app"}
        )
        assert mount.status_code == 201, mount.text
        assert client.delete("/v2/hooks/app/manifests/v1").status_code == 202
        assert client.delete(f"/v2/hooks/app/manifests/{sha256(body)}").status_code == 202
        assert client.delete(f"/v2/hooks/copy/blobs/{sha256(layer)}").status_code == 202
    manifest, app, copy = sha256(body), "hooks/app", "hooks/copy"
    expected = [
        (app, "push", sha256(config), ""),
        (app, "push", sha256(layer), ""),
        (app, "push", manifest, "v1"),
        (app, "pull", manifest, "v1"),
        (app, "pull", sha256(layer), ""),
        (copy, "mount", sha256(layer), ""),
        (app, "delete", "", "v1"),
        (app, "delete", manifest, ""),
        (copy, "delete", sha256(layer), ""),
    ]
    got = receiver.wait_for(lambda got: len(got) >= len(expected))
    _assert_in_order_per_repository(_summary(got), expected)
    assert len(receiver.envelopes) == len(expected)  # one event per envelope, and no event twice
    events = sorted(got, key=lambda event: expected.index(_summary([event])[0]))
    assert all(headers["Content-Type"] == ENVELOPE for headers in receiver.headers)
    assert all(headers["Authorization"] == "Bearer hook-secret" for headers in receiver.headers)
    for event in events:
        assert set(event) == EVENT_KEYS, event
        assert set(event["request"]) >= {"id", "addr", "host", "method", "useragent"}, event
        assert set(event["source"]) == {"addr", "instanceID"}
        assert event["timestamp"].endswith("Z")
    pushed = events[2]
    assert pushed["target"] == {
        "mediaType": OCI_MANIFEST,
        "digest": manifest,
        "size": len(body),
        "length": len(body),
        "repository": app,
        "url": f"{server.url}/v2/{app}/manifests/{manifest}",
        "tag": "v1",
    }
    assert pushed["request"]["method"] == "PUT"
    assert pushed["request"]["host"] == server.host
    assert events[1]["target"]["mediaType"] == "application/octet-stream"
    assert events[5]["target"]["fromRepository"] == app
    assert events[3]["request"]["method"] == "GET"
    assert len({event["id"] for event in events}) == len(events)
    assert _owed(server) == []


def test_ignored_actions_and_media_types_are_not_sent(
    make_server: Callable[..., RegistryProcess], receiver: Receiver
) -> None:
    ignore = {"actions": ["pull"], "mediatypes": ["application/octet-stream"]}
    server = make_server(**endpoint_env(receiver, ignore=ignore))
    with server.client() as client:
        body = image_manifest(client, "hooks/quiet")
        assert put_manifest(client, "hooks/quiet", "v1", body).status_code == 201
        assert client.get("/v2/hooks/quiet/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
        assert client.delete("/v2/hooks/quiet/manifests/v1").status_code == 202
    # The tag's delete comes after everything else: once it arrived, nothing ignored was sent before it.
    events = receiver.wait_for(lambda got: any(e["action"] == "delete" for e in got))
    assert [(e["action"], e["target"].get("tag")) for e in events] == [("push", "v1"), ("delete", "v1")]


def test_a_receiver_down_for_a_while_gets_everything_once(
    make_server: Callable[..., RegistryProcess], receiver: Receiver
) -> None:
    receiver.down = True
    server = make_server(**endpoint_env(receiver, threshold=2))
    with server.client() as client:
        body = image_manifest(client, "hooks/outage")
        assert put_manifest(client, "hooks/outage", "v1", body).status_code == 201
    receiver.wait_for(lambda _: receiver.refusals >= 3)  # retried: the oldest event, again and again
    owed = _owed(server)
    assert [row["state"] for row in owed] == ["pending"] * 3
    assert max(row["attempts"] for row in owed) >= 1
    assert "HTTP 503" in {row["last_error"] for row in owed}
    receiver.down = False
    events = receiver.wait_for(lambda got: len(got) >= 3)
    assert [e["action"] for e in events] == ["push"] * 3
    assert _owed(server) == []  # nothing left to send: no event can arrive twice after this
    assert len(receiver.events()) == 3
    assert "endpoint r0 failing" in server.log.read_text()


def test_a_hanging_receiver_never_holds_up_a_request(
    make_server: Callable[..., RegistryProcess], receiver: Receiver
) -> None:
    receiver.holding = True
    server = make_server(**endpoint_env(receiver, timeout="60s"))
    try:
        with server.client() as client:
            push_blob(client, "hooks/slow", b"first")
            receiver.wait_for(lambda _: receiver.held == 1)  # the first event's delivery hangs there
            body = image_manifest(client, "hooks/slow")
            assert put_manifest(client, "hooks/slow", "v1", body).status_code == 201
            assert (
                client.get("/v2/hooks/slow/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
            )
        # Every request above was answered while the delivery was still held (and nothing overtook it).
        assert receiver.held == 1 and receiver.events() == []
    finally:
        receiver.release.set()
    events = receiver.wait_for(lambda got: len(got) >= 5)
    assert [e["action"] for e in events] == ["push", "push", "push", "push", "pull"]


def test_a_hanging_endpoint_does_not_delay_another(
    make_server: Callable[..., RegistryProcess], receiver: Receiver
) -> None:
    stuck = Receiver().start()
    stuck.holding = True
    try:
        server = make_server(**endpoint_env(stuck, receiver, timeout="60s"))
        with server.client() as client:
            push_blob(client, "hooks/two", b"for both")
        stuck.wait_for(lambda _: stuck.held == 1)  # r0's delivery hangs there...
        receiver.wait_for(lambda got: len(got) == 1)  # ...and r1 gets the event all the same
        assert stuck.events() == []
    finally:
        stuck.release.set()
        stuck.stop()


def test_sigkill_before_delivery_still_delivers_after_restart(
    make_server: Callable[..., RegistryProcess], tmp_path: Path
) -> None:
    receiver = Receiver()  # its port is known, nothing listens there yet: every delivery fails
    env = endpoint_env(receiver)
    server = make_server(tmp_path / "data", **env)
    with server.client() as client:
        body = image_manifest(client, "hooks/crash")
        assert put_manifest(client, "hooks/crash", "v1", body).status_code == 201
    assert len(_owed(server)) == 3  # stored with the changes, before any delivery
    server.stop(signal.SIGKILL)
    receiver.start()
    try:
        make_server(tmp_path / "data", **env)
        events = receiver.wait_for(lambda got: len(got) >= 3)
        assert _summary(events)[2] == ("hooks/crash", "push", sha256(body), "v1")
    finally:
        receiver.stop()


def test_a_full_backlog_keeps_new_events_as_failed_until_retried(
    make_server: Callable[..., RegistryProcess], tmp_path: Path
) -> None:
    receiver = Receiver()  # nothing listens yet
    server = make_server(**endpoint_env(receiver, backlog=2))
    with server.client() as client:
        push_blob(client, "hooks/full", b"one")
        push_blob(client, "hooks/full", b"two")
        push_blob(client, "hooks/full", b"three")
    owed = _owed(server)
    assert [row["state"] for row in owed] == ["pending", "pending", "failed"]
    assert "backlog" in owed[2]["last_error"]
    receiver.start()
    try:
        receiver.wait_for(lambda got: len(got) >= 2)
        assert _events_command(server, "retry", "--endpoint", "r0").startswith("1 deliveries")
        events = receiver.wait_for(lambda got: len(got) >= 3)
        assert [e["target"]["digest"] for e in events] == [sha256(b"one"), sha256(b"two"), sha256(b"three")]
    finally:
        receiver.stop()


@pytest.fixture
def shared_database(postgres: PostgresCluster) -> str:
    return postgres.new_database()


def test_two_replicas_deliver_each_event_once(
    shared_database: str, receiver: Receiver, tmp_path: Path
) -> None:
    env = {**endpoint_env(receiver), "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path / "blobs")}
    replicas = [RegistryProcess(tmp_path / f"replica{i}", shared_database, env) for i in range(2)]
    for replica in replicas:
        replica.launch()
    try:
        for replica in replicas:
            replica.wait_ready()
        expected = []
        for n in range(12):
            replica = replicas[n % 2]
            with replica.client() as client:
                repo = f"hooks/replica{n % 3}"
                digest = push_blob(client, repo, f"blob {n}".encode())
                expected.append((repo, "push", digest, ""))
        events = receiver.wait_for(lambda got: len(got) >= len(expected))
        assert _owed(replicas[0]) == []
        assert len(receiver.events()) == len(expected), _summary(receiver.events())
        _assert_in_order_per_repository(_summary(events), expected)
        assert len({e["source"]["instanceID"] for e in events}) == 2  # both replicas stored some
    finally:
        for replica in replicas:
            replica.stop()


def test_retention_deletions_are_sent_as_deletes(
    own_database: str, receiver: Receiver, tmp_path: Path
) -> None:
    """`registry gc` applying retention beside a running server: each tag it deletes reaches the
    receiver as a delete, as a client's DELETE of it would, and nothing it kept does. (Which untagged
    manifests go, each reported as a delete too, is tested in tests/lifecycle/test_retention.py.)"""
    repo = "hooks/retained"
    env = endpoint_env(receiver)
    server = RegistryProcess(tmp_path / "data", own_database, env).start()
    try:
        with server.client() as client:
            for tag in ("older", "old", "new"):
                body = image_manifest(client, repo, layers=[f"layer of {tag}".encode()])
                assert put_manifest(client, repo, tag, body).status_code == 201
        gc_env = {
            **env,
            "REGISTRY_RETENTION_RULES": json.dumps([{"repositories": repo, "keep_newest": 1}]),
            "REGISTRY_RETENTION_ENABLED": "true",
            **({"REGISTRY_DATABASE_URL": own_database} if own_database else {}),
        }
        done = run_registry("gc", "--data-dir", str(server.data_dir), env=gc_env)
        assert done.returncode == 0, done.stderr
        assert "retention: deleted 2 tag(s) and 0 untagged manifest(s)" in done.stdout, done.stdout
        got = receiver.wait_for(lambda got: len([e for e in got if e["action"] == "delete"]) >= 2)
        deletes = [row for row in _summary(got) if row[1] == "delete"]
        assert sorted(deletes) == [(repo, "delete", "", "old"), (repo, "delete", "", "older")]
        assert len([row for row in _summary(got) if row[1] == "push" and row[3]]) == 3
        assert _owed(server) == []
    finally:
        server.stop()
