"""What long-lived processes import is memory they hold for their whole life."""

from __future__ import annotations

import subprocess
import sys


def test_the_supervising_process_loads_no_database_layer() -> None:
    """`registry serve`'s own process lives as long as the server beside its workers: what it imports
    is memory held all that time (SQLAlchemy and the index were 23 MiB of it)."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, registry.cli, registry.cli.serve, registry.serving.granian_server;"
            "print(sorted(sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "registry.cli.serve" in loaded
    assert "sqlalchemy" not in loaded and "alembic" not in loaded and "registry.index" not in loaded
