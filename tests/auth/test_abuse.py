"""Password guessing is throttled per user and per client address, before any password is checked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import add_users, basic, errors, https, start, tls_env
from tests.support.server import RegistryProcess

USERS = {"alice": "alice-password", "bob": "bob-password"}


@pytest.fixture(scope="module")
def limited(own_database: str, pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data_dir = tmp_path_factory.mktemp("limited") / "data"
    add_users(data_dir, own_database, USERS, {})
    process: RegistryProcess = start(
        data_dir,
        own_database,
        REGISTRY_AUTH_MODE="token",
        REGISTRY_LIMITS_LOGIN_FAILURES_PER_USER="3",
        REGISTRY_LIMITS_LOGIN_FAILURES_PER_ADDRESS="6",
        **tls_env(pki),
    )
    with https(process, pki) as client:
        yield client
    process.stop()


def login(client: httpx.Client, name: str, password: str) -> httpx.Response:
    return client.get("/auth/token", params={"service": "registry"}, headers=basic(name, password))


def test_per_user_then_per_address(limited: httpx.Client) -> None:
    for _ in range(3):
        assert login(limited, "alice", "wrong").status_code == 401
    # Locked: even the right password is refused, so a guesser learns nothing from it.
    response = login(limited, "alice", USERS["alice"])
    assert response.status_code == 429 and errors(response) == ["TOOMANYREQUESTS"]
    assert 0 < int(response.headers["Retry-After"]) <= 300
    # Another user from the same address still gets in...
    assert login(limited, "bob", USERS["bob"]).status_code == 200
    # ... until this address has failed 6 times, whichever names it tried.
    for name in ("x1", "x2", "x3"):
        assert login(limited, name, "guess").status_code == 401
    assert login(limited, "bob", USERS["bob"]).status_code == 429
    assert login(limited, "bob", USERS["bob"]).json()["errors"][0]["code"] == "TOOMANYREQUESTS"
