"""A private PostgreSQL cluster for one test session, started from Debian's binaries as `postgres`."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from tests.support.tools import free_port, require_tool


class PostgresCluster:
    def __init__(self, root: Path) -> None:
        tools = require_tool("initdb", "pg_ctl", "psql")
        self.initdb, self.pg_ctl, self.psql = tools["initdb"], tools["pg_ctl"], tools["psql"]
        self.root = root
        self.port = free_port()

    def _as_postgres(self, *command: str) -> subprocess.CompletedProcess[bytes]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self.root.chmod(0o755)
        data = str(self.root / "data")
        self._as_postgres(self.initdb, "-A", "trust", "-U", "postgres", "-D", data)
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(self.pg_ctl, "-D", data, "-o", options, "-l", str(self.root / "log"), "-w", "start")
        return self

    def stop(self) -> None:
        self._as_postgres(self.pg_ctl, "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def _sql(self, statement: str) -> None:
        """Run one statement as the superuser, through psql over TCP."""
        subprocess.run(
            [self.psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c", statement],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def drop_database(self, url: str) -> None:
        """Drop a database under the servers using it, their open connections included."""
        self._sql(f"DROP DATABASE {url.rpartition('/')[2]} WITH (FORCE)")

    def new_database(self) -> str:
        """A fresh, empty database; its asyncpg URL."""
        name = "registry_" + uuid.uuid4().hex[:12]
        for attempt in range(20):
            try:
                self._sql(f"CREATE DATABASE {name}")
                break
            except subprocess.CalledProcessError:
                if attempt == 19:
                    raise
                time.sleep(0.2)
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"
