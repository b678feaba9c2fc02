"""A mount without `from` takes a blob only from repositories the caller may pull: a digest must not
let one team probe for, or copy, another team's content. Token auth, HTTPS, rules of this module's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import add_users, bearer, errors, https, start, tls_env
from tests.support.oci import push_blob
from tests.support.server import RegistryProcess

# ann owns team-a, ben and cid share team-b; cid, in group readers, may also pull team-a.
RULES = """\
rules:
  - who: [user:ann]
    repositories: ["team-a/*"]
    actions: [pull, push]
  - who: [user:ben, user:cid]
    repositories: ["team-b/*"]
    actions: [pull, push]
  - who: [group:readers]
    repositories: ["team-a/*"]
    actions: [pull]
"""
PASSWORDS = {"ann": "ann-password", "ben": "ben-password", "cid": "cid-password"}


@pytest.fixture(scope="module")
def server(
    own_database: str, pki: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    data_dir = tmp_path_factory.mktemp("mounts") / "data"
    add_users(data_dir, own_database, PASSWORDS, {"cid": ["readers"]})
    rules = data_dir.parent / "rules.yaml"
    rules.write_text(RULES)
    process = start(
        data_dir, own_database, REGISTRY_AUTH_MODE="token", REGISTRY_RULES_PATH=str(rules), **tls_env(pki)
    )
    yield process
    process.stop()


@pytest.fixture
def as_user(server: RegistryProcess, pki: Path) -> Iterator[Callable[[str, str], httpx.Client]]:
    """A client of `user` whose token names pull and push on `repository` only."""
    opened: list[httpx.Client] = []

    def make(user: str, repository: str) -> httpx.Client:
        with https(server, pki) as anonymous:
            response = anonymous.get(
                "/auth/token",
                params={"service": "registry", "scope": f"repository:{repository}:pull,push"},
                auth=(user, PASSWORDS[user]),
            )
        assert response.status_code == 200, response.text
        session = https(server, pki, headers=bearer(response.json()["token"]))
        opened.append(session)
        return session

    yield make
    for session in opened:
        session.close()


def test_mount_without_from_needs_pull_on_a_repository_holding_the_blob(
    as_user: Callable[[str, str], httpx.Client],
) -> None:
    data = b"team a's private layer"
    digest = push_blob(as_user("ann", "team-a/x"), "team-a/x", data)

    # ben may not pull team-a: an ordinary upload session, and nothing says the blob exists.
    ben = as_user("ben", "team-b/y")
    response = ben.post("/v2/team-b/y/blobs/uploads/", params={"mount": digest})
    assert response.status_code == 202, response.text
    assert response.headers["Location"].startswith("/v2/team-b/y/blobs/uploads/")
    response = ben.get(f"/v2/team-b/y/blobs/{digest}")
    assert response.status_code == 404 and errors(response) == ["BLOB_UNKNOWN"]

    # cid may pull team-a (through his group), though his token names only team-b/z: mounted.
    cid = as_user("cid", "team-b/z")
    response = cid.post("/v2/team-b/z/blobs/uploads/", params={"mount": digest})
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/v2/team-b/z/blobs/{digest}"
    assert cid.get(f"/v2/team-b/z/blobs/{digest}").content == data

    # Now team-b/z, which ben may pull, holds it too: his mount finds it there.
    response = ben.post("/v2/team-b/y/blobs/uploads/", params={"mount": digest})
    assert response.status_code == 201, response.text
