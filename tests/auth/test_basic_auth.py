"""Basic authentication over HTTPS: users from the index and from a Distribution-style htpasswd file,
rules checked on every request, anonymous access where the rules give it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.auth.conftest import add_users, cli, data_args, errors, https, start, tls_env
from tests.support.oci import image_manifest, push_blob, put_manifest, sha256
from tests.support.server import RegistryProcess

RULES = """\
rules:
  - who: [authenticated]
    repositories: ["*"]
    actions: [pull]
  - who: [user:alice, user:hank]
    repositories: ["team/*"]
    actions: ["*"]
  - who: [anonymous]
    repositories: ["public/*"]
    actions: [pull]
"""
USERS = {"alice": "alice-password", "bob": "bob-password", "temp": "temp-password"}


def htpasswd_line(name: str, password: str) -> str:
    """What `htpasswd -B` writes: bcrypt with the $2y$ prefix."""
    return (
        f"{name}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode().replace('$2b$', '$2y$', 1)}\n"
    )


@pytest.fixture(scope="module")
def basic_server(
    own_database: str, pki: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    root = tmp_path_factory.mktemp("basic")
    add_users(root / "data", own_database, USERS, {})
    (root / "rules.yaml").write_text(RULES)
    (root / "htpasswd").write_text(htpasswd_line("hank", "hank-password"))
    process = start(
        root / "data",
        own_database,
        REGISTRY_AUTH_MODE="basic",
        REGISTRY_AUTH_HTPASSWD_PATH=str(root / "htpasswd"),
        REGISTRY_RULES_PATH=str(root / "rules.yaml"),
        **tls_env(pki),
    )
    yield process
    process.stop()


@pytest.fixture
def anonymous(basic_server: RegistryProcess, pki: Path) -> Iterator[httpx.Client]:
    with https(basic_server, pki) as client:
        yield client


@pytest.fixture
def login(basic_server: RegistryProcess, pki: Path) -> Iterator:
    opened: list[httpx.Client] = []

    def make(name: str, password: str | None = None) -> httpx.Client:
        client = https(basic_server, pki, auth=(name, password or USERS.get(name, "hank-password")))
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def test_version_check(anonymous: httpx.Client, login) -> None:
    response = anonymous.get("/v2/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="registry",charset="UTF-8"'
    assert errors(response) == ["UNAUTHORIZED"]
    assert login("alice", "wrong-password").get("/v2/").status_code == 401
    assert login("nobody", "whatever-it-is").get("/v2/").status_code == 401
    assert login("alice").get("/v2/").status_code == 200
    assert login("hank").get("/v2/").status_code == 200  # from the htpasswd file
    assert anonymous.get("/v2/", headers={"Authorization": "Basic %%%"}).status_code == 401


def test_rules_per_request(login) -> None:
    alice, hank, bob = login("alice"), login("hank"), login("bob")
    body = image_manifest(alice, "team/app", layers=[os.urandom(64)])
    assert put_manifest(alice, "team/app", "1", body).status_code == 201
    assert bob.get("/v2/team/app/tags/list").json()["tags"] == ["1"]
    response = bob.post("/v2/team/app/blobs/uploads/")
    assert response.status_code == 403 and errors(response) == ["DENIED"]
    assert "WWW-Authenticate" not in response.headers
    assert bob.delete(f"/v2/team/app/manifests/{sha256(body)}").status_code == 403
    assert push_blob(hank, "team/app", b"from htpasswd")
    assert alice.post("/v2/elsewhere/blobs/uploads/").status_code == 403
    assert alice.delete(f"/v2/team/app/manifests/{sha256(body)}").status_code == 202


def test_anonymous_gets_what_the_rules_give(anonymous: httpx.Client, login) -> None:
    push_blob(login("hank"), "team/anon", b"not public")
    assert anonymous.get("/v2/public/none/tags/list").status_code == 404  # allowed, just unknown
    response = anonymous.get("/v2/team/anon/tags/list")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Basic ")
    assert anonymous.post("/v2/public/x/blobs/uploads/").status_code == 401
    catalog = anonymous.get("/v2/_catalog")
    assert catalog.status_code == 200
    assert all(name.startswith("public/") for name in catalog.json()["repositories"])
    assert "team/anon" in login("bob").get("/v2/_catalog").json()["repositories"]


def test_a_pull_is_decided_for_each_caller(anonymous: httpx.Client, login) -> None:
    """No answer given to one caller is given again to another: with auth on, no pull is answered from
    memory (registry/api/kept.py)."""
    alice = login("alice")
    body = image_manifest(alice, "team/kept", layers=[b"team only"])
    assert put_manifest(alice, "team/kept", "1", body).status_code == 201
    pulls = [("GET", "/v2/team/kept/manifests/1"), ("HEAD", f"/v2/team/kept/blobs/{sha256(b'team only')}")]
    for method, path in pulls:
        assert [alice.request(method, path).status_code for _ in range(2)] == [200, 200]
        assert anonymous.request(method, path).status_code == 401
        assert login("alice", "wrong-password").request(method, path).status_code == 401


def test_no_token_service_in_basic_mode(login) -> None:
    assert login("alice").get("/auth/token").status_code == 404


def test_htpasswd_and_user_changes_apply_at_once(login, basic_server: RegistryProcess) -> None:
    htpasswd = basic_server.data_dir.parent / "htpasswd"
    assert login("ivy", "ivy-password").get("/v2/").status_code == 401
    with htpasswd.open("a") as file:
        file.write(htpasswd_line("ivy", "ivy-password"))
    os.utime(htpasswd, (os.path.getmtime(htpasswd) + 2,) * 2)
    assert login("ivy", "ivy-password").get("/v2/").status_code == 200

    temp = login("temp")
    assert temp.get("/v2/").status_code == 200  # the check is now remembered...
    args = data_args(basic_server.data_dir, basic_server.database_url)
    assert cli("user", "rm", "temp", *args) == 0
    assert temp.get("/v2/").status_code == 401  # ... but not past the user's removal


def test_refusal_without_authentication_beyond_loopback(tmp_path: Path) -> None:
    """`auth: none` on an address other machines can reach does not start (and binds nothing)."""
    result = subprocess.run(
        [sys.executable, "-m", "registry", "serve", "--http-addr", "0.0.0.0:1", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
    )
    assert result.returncode == 2
    assert "refusing to serve 0.0.0.0:1 without authentication" in result.stderr


def test_guessing_is_throttled(anonymous: httpx.Client, login) -> None:
    for _ in range(10):  # the default: 10 failures per user in 5 minutes
        assert login("mallory", "guess").get("/v2/").status_code == 401
    response = login("mallory", "guess").get("/v2/")
    assert response.status_code == 429
    assert errors(response) == ["TOOMANYREQUESTS"] and int(response.headers["Retry-After"]) > 0
    assert login("alice").get("/v2/").status_code == 200


def test_openapi_description_is_readable_without_credentials(anonymous: httpx.Client) -> None:
    response = anonymous.get("/openapi.json")
    assert response.status_code == 200
    assert "/auth/token" in response.json()["paths"]
