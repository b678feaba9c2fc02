"""`registry migrate` and `registry serve` as an operator runs them: config file, flags, exposure."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.tools import free_port


def _registry(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "registry", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_migrate_creates_the_schema_at_the_newest_revision(tmp_path: Path) -> None:
    result = _registry("migrate", "--create", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "index.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        revision = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert {"repositories", "blobs", "repository_blobs", "manifests", "tags", "uploads"} <= tables
    heads = sorted(
        p.name.split("_")[0] for p in (Path(__file__).parents[2] / "migrations" / "versions").glob("0*.py")
    )
    assert revision == heads[-1]
    # Running it again is a no-op, as on every `serve` start.
    assert _registry("migrate", "--data-dir", str(tmp_path)).returncode == 0


def test_serve_reads_a_config_file_and_flags_override_it(tmp_path: Path) -> None:
    config = tmp_path / "registry.yaml"
    port = free_port()
    config.write_text(f"listen: 127.0.0.1:{free_port()}\ndata_dir: {tmp_path / 'from-file'}\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "registry",
            "serve",
            "--config",
            str(config),
            "--http-addr",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/v2/_catalog", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert response.json() == {"repositories": []}
        assert (tmp_path / "from-file" / "index.db").exists()
    finally:
        process.terminate()
        assert process.wait(30) == 0


def test_serve_refuses_an_unauthenticated_public_address(tmp_path: Path) -> None:
    result = _registry("serve", "--http-addr", "0.0.0.0:0", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "without authentication" in result.stderr


def test_bad_settings_are_reported_not_raised(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("workers: lots\n")
    result = _registry("serve", "--config", str(config))
    assert result.returncode == 2
    assert "workers" in result.stderr and "Traceback" not in result.stderr
