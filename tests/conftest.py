"""Shared fixtures: real registry processes on loopback, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.config import SERVERS
from tests.support.postgres import PostgresCluster
from tests.support.server import RegistryProcess, default_engine


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_servers` run on every engine; the rest on the default one."""
    if "engine" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_servers"):
        metafunc.parametrize("engine", SERVERS, indirect=True, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The second engine runs on SQLite only: the engine and the index never meet, so crossing them
    would add minutes and no coverage."""
    crossed = [
        item
        for item in items
        if (params := getattr(item, "callspec", None)) is not None
        and params.params.get("database") == "postgresql"
        and params.params.get("engine", SERVERS[0]) != SERVERS[0]
    ]
    if crossed:
        config.hook.pytest_deselected(items=crossed)
        items[:] = [item for item in items if item not in crossed]


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest) -> str:
    """The HTTP engine serving the registry (see `pytest_generate_tests`)."""
    return getattr(request, "param", default_engine())


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    # Not under pytest's tmp_path: that is private to root, and the cluster runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="registry-pg-"))
    cluster = PostgresCluster(root).start()
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    """Every test that uses a server runs once per index backend."""
    if request.param == "sqlite":
        return ""
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def own_database(database: str, request: pytest.FixtureRequest) -> str:
    """An index of this test's own: a fresh PostgreSQL database (the session's is shared by every test,
    and gc, scrub and the user commands see all of it), or "" for SQLite, which lives in each server's
    own data folder."""
    return request.getfixturevalue("postgres").new_database() if database else ""


@pytest.fixture(scope="session")
def server(database: str, engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    process = RegistryProcess(tmp_path_factory.mktemp("registry"), database, engine=engine).start()
    yield process
    process.stop()


@pytest.fixture
def client(server: RegistryProcess) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name of this test's own, so tests sharing a server never see each other's data.

    A long name is cut, with a hash of the whole one kept, so parameters at its end still tell apart."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    if len(name) > 80:
        name = name[:70].strip("-") + "-" + hashlib.sha256(name.encode()).hexdigest()[:9]
    return "test/" + name


@pytest.fixture
def make_server(tmp_path: Path, database: str, engine: str) -> Iterator[type]:
    """Start extra servers (for restarts, crashes, settings) that are stopped after the test."""
    started: list[RegistryProcess] = []

    def start(data_dir: Path | None = None, **env: str) -> RegistryProcess:
        process = RegistryProcess(data_dir or tmp_path / f"r{len(started)}", database, env, engine).start()
        started.append(process)
        return process

    yield start  # type: ignore[misc]
    for process in started:
        process.stop()
