"""A real `registry serve` process on a free loopback port, served by either engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.tools import free_port


def default_engine() -> str:
    """The engine of tests that are not run on both: the registry's default, or REGISTRY_TEST_SERVER's."""
    return os.environ.get("REGISTRY_TEST_SERVER", "granian")


class RegistryProcess:
    def __init__(
        self,
        data_dir: Path,
        database_url: str = "",
        env: dict[str, str] | None = None,
        engine: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.extra_env = {"REGISTRY_SERVER_ENGINE": engine or default_engine(), **(env or {})}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    @property
    def url(self) -> str:
        scheme = "https" if self.extra_env.get("REGISTRY_HTTP_TLS_CERTIFICATE") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> RegistryProcess:
        return self.launch().wait_ready(timeout)

    def launch(self) -> RegistryProcess:
        """Start the process without waiting for it, so that several can start at once."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        env.update(self.extra_env)
        if self.database_url:
            env["REGISTRY_DATABASE_URL"] = self.database_url
        command = [
            sys.executable,
            "-m",
            "registry",
            "serve",
            "--http-addr",
            self.host,
            "--data-dir",
            str(self.data_dir),
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def wait_ready(self, timeout: float = 30.0) -> RegistryProcess:
        """Poll the launched process until it answers, or fail with its log."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if self.ready():
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"registry did not start:\n{self.log.read_text()}")

    def ready(self) -> bool:
        """The version check answers: 200, or 401 when auth is on. (Readiness only: no TLS verification.)"""
        return httpx.get(self.url + "/v2/", timeout=1, verify=False).status_code in (200, 401)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)
