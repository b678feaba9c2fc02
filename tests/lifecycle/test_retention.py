"""Retention against a real `registry serve` on SQLite and PostgreSQL: what a plan chooses among real
pushes, applying it, a change between plan and apply, and `registry gc` showing then applying it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from registry.config import Settings
from registry.events import AnyEvent, Dispatcher, Event
from registry.lifecycle.retention import apply_retention, plan_retention
from registry.lifecycle.settings import (
    ImmutableTagRule,
    ImmutableTagSettings,
    RetentionRule,
    RetentionSettings,
)
from tests.lifecycle.conftest import opened_index, push_image, rules
from tests.support.oci import OCI_INDEX, OCI_MANIFEST, put_manifest, sha256
from tests.support.server import RegistryProcess
from tests.support.tools import run_registry


def _tags(client: httpx.Client, repo: str) -> list[str]:
    return client.get(f"/v2/{repo}/tags/list").json()["tags"]


def _settings(repo: str, **rule: object) -> Settings:
    return dataclasses.replace(
        Settings(),
        retention=RetentionSettings(rules=(RetentionRule(repo, **rule),)),  # type: ignore[arg-type]
        immutable_tags=ImmutableTagSettings((ImmutableTagRule(repo, "v[0-9]+"),)),
    )


def test_a_plan_on_real_pushes_and_its_application(make_server, repo: str) -> None:
    server = make_server()
    with server.client() as client:
        digests = {tag: push_image(client, repo, tag, tag) for tag in ("t1", "t2", "v1", "t3", "t4")}
        body_digest = push_image(client, repo, "scratch", "untagged")
        assert client.delete(f"/v2/{repo}/manifests/scratch").status_code == 202
    settings = _settings(repo, keep_newest=2, delete_untagged_after="1h")
    later = datetime.now(UTC) + timedelta(hours=2)

    events = Dispatcher()
    reported: list[tuple[str, str, str, str]] = []

    def record(event: AnyEvent) -> None:
        assert isinstance(event, Event)
        reported.append((event.repository, event.action.value, event.digest, event.tag))

    events.subscribe(record)

    async def plan_then_apply():
        async with opened_index(server) as index:
            plan = await plan_retention(index, settings, now=later)
            with server.client() as client:  # moved after the plan: t1 must stay
                push_image(client, repo, "t1", "t1-again")
            return plan, await apply_retention(index, plan, events)

    plan, applied = asyncio.run(plan_then_apply())
    [part] = plan.repositories
    assert sorted(removal.name for removal in part.tags) == ["t1", "t2"]  # v1 is immutable, t3 and t4 newest
    assert {removal.digest for removal in part.manifests} == {digests["t1"], digests["t2"], body_digest}
    # t1 moved since the plan: it stays, on its new manifest; its old one, untagged now, goes as planned.
    assert (applied.tags, applied.manifests) == (1, 3)
    # Each deletion is reported as a client's DELETE of it would be; the tag that stayed is not.
    assert sorted(reported, key=str) == sorted(
        [
            (repo, "delete", "", "t2"),
            *((repo, "delete", digest, "") for digest in (digests["t1"], digests["t2"], body_digest)),
        ],
        key=str,
    )
    with server.client() as client:
        assert _tags(client, repo) == ["t1", "t3", "t4", "v1"]
        assert client.get(f"/v2/{repo}/manifests/{digests['t2']}").status_code == 404
        assert client.get(f"/v2/{repo}/manifests/{body_digest}").status_code == 404
        assert client.get(f"/v2/{repo}/manifests/t1").json()["config"]["size"] > 0
    # Planned now (not two hours later), nothing is old enough to go but what keep_newest says.
    assert asyncio.run(_plan_now(server, settings)).manifests == 0


async def _plan_now(server, settings):
    async with opened_index(server) as index:
        return await plan_retention(index, settings)


def test_gc_dry_run_shows_the_plan_and_gc_applies_it_once_enabled(
    own_database: str, repo: str, tmp_path: Path
) -> None:
    # A database of its own: gc sees the whole index, and the session's is shared.
    server = RegistryProcess(tmp_path / "data", own_database).start()
    try:
        with server.client() as client:
            for tag in ("a", "b", "c"):
                push_image(client, repo, tag, tag)
    finally:
        server.stop()
    env = {"REGISTRY_DATABASE_URL": own_database} if own_database else {}
    env.update(rules(retention=[{"repositories": repo, "keep_newest": 1}]))
    data = ["--data-dir", str(tmp_path / "data")]

    dry = run_registry("gc", "--dry-run", *data, env=env)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[:3] == [
        f"retention: would delete tag {repo}:b (not among the 1 newest)",
        f"retention: would delete tag {repo}:a (not among the 1 newest)",
        "retention: would delete 2 tag(s) and 0 untagged manifest(s)",
    ]
    off = run_registry("gc", *data, env=env)
    assert off.returncode == 0, off.stderr
    assert off.stdout.startswith("retention: 1 rule(s), not enabled (retention.enabled)")

    on = run_registry("gc", *data, env={**env, "REGISTRY_RETENTION_ENABLED": "true"})
    assert on.returncode == 0, on.stderr
    assert "retention: deleted 2 tag(s) and 0 untagged manifest(s)" in on.stdout
    server = RegistryProcess(tmp_path / "data", own_database).start()
    try:
        with server.client() as client:
            assert _tags(client, repo) == ["c"]
    finally:
        server.stop()


def test_a_bad_rule_stops_the_command_with_one_line(tmp_path: Path) -> None:
    result = run_registry(
        "gc",
        "--dry-run",
        "--data-dir",
        str(tmp_path),
        env=rules(retention=[{"repositories": "a/*", "keep_tags": "("}]),
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        "registry: setting 'retention.rules[a/*]': keep_tags '(' is not a regular"
    )
    assert len(result.stderr.splitlines()) == 1


def test_an_untagged_index_goes_before_its_children_and_a_kept_index_keeps_them(
    make_server, repo: str
) -> None:
    server = make_server()
    with server.client() as client:
        child = push_image(client, repo, "child", "child")
        kept_child = push_image(client, repo, "kept-child", "kept-child")
        for tag in ("child", "kept-child"):  # untagged: only the indexes below keep them
            assert client.delete(f"/v2/{repo}/manifests/{tag}").status_code == 202
        manifests = {}
        for name, digest in (("old-index", child), ("kept-index", kept_child)):
            size = len(client.get(f"/v2/{repo}/manifests/{digest}").content)
            body = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_INDEX,
                    "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": size}],
                }
            ).encode()
            assert put_manifest(client, repo, name, body, OCI_INDEX).status_code == 201
            manifests[name] = sha256(body)
        assert client.delete(f"/v2/{repo}/manifests/old-index").status_code == 202
    settings = _settings(repo, delete_untagged_after="1h")

    async def plan_then_apply():
        async with opened_index(server) as index:
            plan = await plan_retention(index, settings, now=datetime.now(UTC) + timedelta(hours=2))
            return plan, await apply_retention(index, plan, Dispatcher())

    plan, applied = asyncio.run(plan_then_apply())
    assert [removal.digest for removal in plan.repositories[0].manifests] == [manifests["old-index"], child]
    assert (applied.tags, applied.manifests) == (0, 2)
    with server.client() as client:
        assert client.get(f"/v2/{repo}/manifests/{child}").status_code == 404
        assert client.get(f"/v2/{repo}/manifests/{kept_child}").status_code == 200
        assert client.get(f"/v2/{repo}/manifests/kept-index").status_code == 200
