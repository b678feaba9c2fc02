"""Fixtures for the auth tests: a private CA and server certificate made by `registry cert init`, users made
by `registry user add`, and registries serving HTTPS with token or basic authentication."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from registry.auth.tokens import SigningKey
from registry.cli import main as registry_cli
from tests.e2e.test_docker import docker  # noqa: F401  (the session's dockerd, shared with tests/e2e)
from tests.support.server import RegistryProcess

# The access rules of the token-auth registry most tests share. dev/* belongs to group dev (alice) with
# pull-only access for bob; everyone owns their own namespace; anonymous callers may pull public/*;
# admin may do anything.
RULES = """\
rules:
  - who: [group:dev]
    repositories: ["dev/*"]
    actions: [pull, push]
  - who: [user:bob]
    repositories: ["dev/*"]
    actions: [pull]
  - who: [authenticated]
    repositories: ["${user}/*"]
    actions: ["*"]
  - who: [anonymous]
    repositories: ["public/*"]
    actions: [pull]
  - who: [user:admin]
    repositories: ["*"]
    actions: ["*"]
"""
PASSWORDS = {
    "alice": "alice-password",
    "bob": "bob-password",
    "carol": "carol-password",
    "dora": "dora-password",
    "admin": "admin-password",
}
GROUPS = {"alice": ["dev"]}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.crt, ca.key, server.crt and server.key for localhost and 127.0.0.1, as `registry cert init` makes
    them; and certs/ holding only ca.crt, the folder form clients' --cert-dir options take."""
    out = tmp_path_factory.mktemp("pki")
    assert cli("cert", "init", "--host", "localhost", "--ip", "127.0.0.1", "--out", str(out)) == 0
    (out / "certs").mkdir()
    (out / "certs" / "ca.crt").write_bytes((out / "ca.crt").read_bytes())
    return out


def cli(*args: str, stdin: str = "") -> int:
    """Run a `registry` command in this process (the same code as the console script, minus startup)."""
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return registry_cli(list(args))
    finally:
        sys.stdin = saved


def cli_output(*args: str, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(*args, stdin=stdin)
    return code, out.getvalue()


def data_args(data_dir: Path, database: str) -> list[str]:
    return ["--data-dir", str(data_dir), *(["--database-url", database] if database else [])]


def add_users(data_dir: Path, database: str, passwords: dict[str, str], groups: dict[str, list[str]]) -> None:
    """The users (and their groups) in the registry at data_dir / database, made there if new."""
    assert cli("migrate", "--create", *data_args(data_dir, database)) == 0
    for name, password in passwords.items():
        group_args = [arg for group in groups.get(name, []) for arg in ("--group", group)]
        code = cli(
            "user",
            "add",
            name,
            "--password-stdin",
            *group_args,
            *data_args(data_dir, database),
            stdin=password,
        )
        assert code == 0, name


@pytest.fixture(scope="module")
def own_database(database: str, request: pytest.FixtureRequest) -> str:
    """A database of this module's own (users must not clash between modules): a fresh PostgreSQL
    database, or "" for SQLite, which lives in each server's own data folder."""
    return request.getfixturevalue("postgres").new_database() if database else ""


def tls_env(pki: Path) -> dict[str, str]:
    return {
        "REGISTRY_HTTP_TLS_CERTIFICATE": str(pki / "server.crt"),
        "REGISTRY_HTTP_TLS_KEY": str(pki / "server.key"),
    }


def start(data_dir: Path, database: str, **env: str) -> RegistryProcess:
    return RegistryProcess(data_dir, database, env).start()


@pytest.fixture(scope="module")
def token_server(
    own_database: str, pki: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    """HTTPS, token auth, RULES, the users of PASSWORDS; it also trusts tokens of an external issuer
    `corp-sso`, whose signing key is in <data_dir>/../corp.key."""
    data_dir = tmp_path_factory.mktemp("token") / "data"
    add_users(data_dir, own_database, PASSWORDS, GROUPS)
    rules = data_dir.parent / "rules.yaml"
    rules.write_text(RULES)
    corp, _ = SigningKey.load_or_create(data_dir.parent / "corp.key")
    (data_dir.parent / "corp.pem").write_bytes(
        corp.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    process = start(
        data_dir,
        own_database,
        REGISTRY_AUTH_MODE="token",
        REGISTRY_RULES_PATH=str(rules),
        REGISTRY_TOKENS_TRUSTED_ISSUERS="corp-sso",
        REGISTRY_TOKENS_TRUSTED_KEYS=str(data_dir.parent / "corp.pem"),
        **tls_env(pki),
    )
    yield process
    process.stop()


def https(server: RegistryProcess, pki: Path, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, verify=ssl_context(pki), timeout=60, **kwargs)


def ssl_context(pki: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki / "ca.crt"))


def basic(user: str, password: str | None = None) -> dict[str, str]:
    raw = f"{user}:{PASSWORDS[user] if password is None else password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get_token(client: httpx.Client, user: str | None, *scopes: str, **params: str) -> dict[str, Any]:
    """The token endpoint's answer (asserting 200) for `user` (None: anonymous) and `scopes`."""
    headers = basic(user) if user else {}
    query = [("service", "registry"), *(("scope", scope) for scope in scopes), *params.items()]
    response = client.get("/auth/token", params=query, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def token(client: httpx.Client, user: str | None, *scopes: str) -> str:
    return get_token(client, user, *scopes)["token"]


def claims(jwt: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload = (json.loads(base64.urlsafe_b64decode(part + "==")) for part in jwt.split(".")[:2])
    return header, payload


def errors(response: httpx.Response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]
