"""The directory where worker processes keep their metrics (prometheus-client's multiprocess mode).

`registry serve` makes a private one per run and removes it at exit: files left by an earlier run (or
another server on the same machine) would otherwise be added to this run's counters. An operator who
sets `PROMETHEUS_MULTIPROC_DIR` keeps that directory, emptied of metric files at start for the same
reason. It must be in the environment before any worker imports prometheus_client, which reads it then.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class MetricsDirectory:
    def __init__(self) -> None:
        given = os.environ.get(VARIABLE)
        self._owned = not given
        self.path = Path(given or tempfile.mkdtemp(prefix="registry-metrics-"))
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob("*.db"):
            stale.unlink()
        os.environ[VARIABLE] = str(self.path)

    def remove(self) -> None:
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)
