"""Starting against PostgreSQL as deployments do: replicas together on a new database, a database that
comes up after the registry, and the URL mistakes an operator makes (issue 9)."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresCluster
from tests.support.server import RegistryProcess
from tests.support.tools import run_registry


@pytest.fixture
def late_cluster() -> Iterator[PostgresCluster]:
    """A cluster with a port of its own that the test starts when it chooses."""
    root = Path(tempfile.mkdtemp(prefix="registry-pg-late-"))
    cluster = PostgresCluster(root)
    yield cluster
    if (root / "data" / "postmaster.pid").exists():
        cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_replicas_start_together_on_a_new_database(postgres: PostgresCluster, tmp_path: Path) -> None:
    """Each replica migrates on start; without a lock two create the same tables at once and one dies."""
    database = postgres.new_database()
    replicas = [RegistryProcess(tmp_path / f"r{i}", database) for i in range(3)]
    try:
        for replica in replicas:
            replica.launch()
        for replica in replicas:
            replica.wait_ready(60)
    finally:
        for replica in replicas:
            replica.stop()


def test_serve_waits_for_a_database_that_comes_up_later(
    late_cluster: PostgresCluster, tmp_path: Path
) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{late_cluster.port}/postgres"
    server = RegistryProcess(tmp_path / "data", url, {"REGISTRY_DATABASE_WAIT": "90"}).launch()
    try:
        time.sleep(3)
        assert server.proc is not None and server.proc.poll() is None, server.log.read_text()
        late_cluster.start()
        server.wait_ready(90)
    finally:
        server.stop()
    assert "waiting for the database" in server.log.read_text()


def test_serve_gives_up_on_a_database_that_never_comes(late_cluster: PostgresCluster, tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{late_cluster.port}/postgres"
    result = run_registry("migrate", "--database-url", url, env={"REGISTRY_DATABASE_WAIT": "2"})
    failure = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"127.0.0.1:{late_cluster.port}" in failure and "database_wait" in failure


def test_a_missing_database_is_named(postgres: PostgresCluster) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/no_such_db"
    result = run_registry("migrate", "--database-url", url)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "no_such_db" in lines[0] and "CREATE DATABASE" in lines[0]


def test_a_plain_postgresql_url_is_accepted(postgres: PostgresCluster) -> None:
    url = postgres.new_database().replace("postgresql+asyncpg://", "postgresql://")
    result = run_registry("migrate", "--database-url", url)
    assert result.returncode == 0, result.stderr
