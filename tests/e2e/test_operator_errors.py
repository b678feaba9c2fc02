"""An operator's mistakes, as a newcomer makes them: each is one line on stderr naming the thing (file,
key, port, URL, folder) and what to do, exit status 2, and never a traceback (issue 9)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from registry.config import leaves
from tests.support.tools import free_port, require_tool, run_registry


def _one_line(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """The failure is exit status 2 and exactly one stderr line naming every one of `names`."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, (result.returncode, result.stderr)
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    """A data folder that holds a registry (its index made by `registry migrate --create`)."""
    data = tmp_path / "data"
    result = run_registry("migrate", "--create", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    return data


# Settings


def test_negative_workers_are_refused_before_anything_listens(tmp_path: Path) -> None:
    result = run_registry(
        "serve",
        "--server-workers",
        "-3",
        "--data-dir",
        str(tmp_path),
        "--http-addr",
        f"127.0.0.1:{free_port()}",
    )
    assert "listening" not in _one_line(result, "workers")


def test_a_port_out_of_range_is_one_line(tmp_path: Path) -> None:
    _one_line(run_registry("serve", "--http-addr", ":80000", "--data-dir", str(tmp_path)), "listen", "80000")


def test_a_vague_boolean_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("storage: {maintenance: {readonly: {enabled: maybe}}}\n")
    _one_line(
        run_registry("serve", "--config", str(config), "--data-dir", str(tmp_path)),
        "storage.maintenance.readonly.enabled",
        "maybe",
    )


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "registry.yaml"
    config.write_text("workers: 2\nlisten: [127.0.0.1:5000\n")
    _one_line(run_registry("serve", "--config", str(config)), str(config), "line")


def test_a_missing_tls_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nothere.pem"
    result = run_registry(
        "serve",
        "--data-dir",
        str(tmp_path),
        "--http-addr",
        f"127.0.0.1:{free_port()}",
        "--http-tls-certificate",
        str(missing),
        "--http-tls-key",
        str(missing),
    )
    _one_line(result, str(missing), "http.tls.certificate")


def test_a_flag_for_every_setting() -> None:
    """The README's promise: every setting has a flag of the same name."""
    usage = run_registry("serve", "--help").stdout
    missing = [leaf.key for leaf in leaves() if leaf.flag not in usage and leaf.key != "version"]
    assert missing == []


def test_an_unknown_registry_variable_is_named_once(tmp_path: Path) -> None:
    result = run_registry(
        "migrate",
        "--create",
        "--data-dir",
        str(tmp_path / "d"),
        env={
            "REGISTRY_LISTN": "127.0.0.1:5001",
            "REGISTRY_REDIS_ADDR": "127.0.0.1:6379",
            "REGISTRY_HTTP_ADDR": "127.0.0.1:5000",
        },
    )
    assert result.returncode == 0, result.stderr
    typo = [line for line in result.stderr.splitlines() if "REGISTRY_LISTN" in line]
    assert len(typo) == 1 and "REGISTRY_HTTP_ADDR" in typo[0]
    redis = [line for line in result.stderr.splitlines() if "REGISTRY_REDIS_ADDR" in line]
    assert len(redis) == 1 and "'redis'" in redis[0] and "not supported" in redis[0]
    assert "REGISTRY_HTTP_ADDR " not in result.stderr  # Distribution's variable: a setting like any


# Listening


class Serving:
    """A `registry serve` started with `args`, its output collected, stopped with SIGTERM."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.output = tmp_path / "serve.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "registry", "serve", "--data-dir", str(tmp_path / "data"), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=clean,
            )

    def wait_for(self, url: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, self.output.read_text()
            assert time.monotonic() < deadline, self.output.read_text()
            try:
                httpx.get(url + "/v2/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        assert self.proc.wait(30) == 0, self.output.read_text()
        return self.output.read_text()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_a_host_name_binds_every_address_it_resolves_to(tmp_path: Path) -> None:
    if not _has_ipv6_loopback() or len({a[4][0] for a in socket.getaddrinfo("localhost", 80)}) < 2:
        pytest.skip("localhost does not resolve to both 127.0.0.1 and ::1 here")
    port = free_port()
    server = Serving(tmp_path, "--http-addr", f"localhost:{port}")
    try:
        server.wait_for(f"http://127.0.0.1:{port}")
        server.wait_for(f"http://[::1]:{port}")
    finally:
        output = server.stop()
    assert f"localhost:{port}" in output


def test_a_host_alone_is_served_on_the_default_port(tmp_path: Path) -> None:
    """`--listen localhost` means localhost:5000 (the default port), not another server's default."""
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 5000))
    except OSError:
        pytest.skip("port 5000 is taken on this machine")
    server = Serving(tmp_path, "--http-addr", "localhost")
    try:
        server.wait_for("http://127.0.0.1:5000")
    finally:
        output = server.stop()
    assert "127.0.0.1:5000" in output


def test_a_bare_port_serves_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text(f"listen: {port}\n")
    server = Serving(tmp_path, "--config", str(config))
    try:
        server.wait_for(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


def test_every_interface_needs_authentication(tmp_path: Path) -> None:
    """`:PORT` is every interface, as in Distribution: the exposure check must see it as such."""
    _one_line(
        run_registry("serve", "--http-addr", f":{free_port()}", "--data-dir", str(tmp_path)), "authentication"
    )


def test_a_busy_port_is_one_line_and_never_listening(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        result = run_registry("serve", "--http-addr", address, "--data-dir", str(tmp_path))
    line = _one_line(result, address)
    assert "in use" in line and "listening" not in result.stdout


def test_the_start_is_logged_once_with_several_workers(tmp_path: Path) -> None:
    port = free_port()
    server = Serving(tmp_path, "--http-addr", f"127.0.0.1:{port}", "--server-workers", "2")
    try:
        server.wait_for(f"http://127.0.0.1:{port}")
        time.sleep(1)  # both workers have started: the one answering is not necessarily the last
    finally:
        output = server.stop()
    started = [line for line in output.splitlines() if "Running on" in line or "listening on" in line]
    assert len(started) == 1, output


def test_new_flags_take_effect(tmp_path: Path) -> None:
    port = free_port()
    blobs = tmp_path / "elsewhere"
    server = Serving(
        tmp_path,
        "--http-addr",
        f"127.0.0.1:{port}",
        "--storage-maintenance-readonly-enabled",
        "--log-level",
        "debug",
        "--storage-filesystem-rootdirectory",
        str(blobs),
    )
    try:
        server.wait_for(f"http://127.0.0.1:{port}")
        assert httpx.post(f"http://127.0.0.1:{port}/v2/a/blobs/uploads/").status_code == 405
        assert blobs.is_dir()
    finally:
        output = server.stop()
    assert " DEBUG " in output


# Prompts with no terminal


def test_a_password_prompt_without_a_terminal_names_the_flag(registry_dir: Path) -> None:
    _one_line(run_registry("user", "add", "alice", "--data-dir", str(registry_dir)), "--password-stdin")


def test_a_confirmation_without_a_terminal_names_the_flag(tmp_path: Path) -> None:
    _one_line(run_registry("image", "prune", "--root", str(tmp_path)), "--force")


# Data folders


@pytest.mark.parametrize(
    "command",
    [
        ["user", "add", "bob", "--password-stdin"],
        ["user", "list"],
        ["group", "list"],
        ["gc", "--dry-run"],
        ["scrub"],
        ["migrate"],
    ],
)
def test_a_mistyped_data_folder_is_not_made(tmp_path: Path, command: list[str]) -> None:
    typo = tmp_path / "typo"
    _one_line(run_registry(*command, "--data-dir", str(typo), stdin="a-long-password\n"), str(typo))
    assert not typo.exists()


def test_migrate_makes_a_new_folder_when_asked(tmp_path: Path) -> None:
    assert run_registry("migrate", "--create", "--data-dir", str(tmp_path / "new")).returncode == 0
    assert (tmp_path / "new" / "index.db").is_file()


def test_an_index_on_a_read_only_disk_is_one_line(registry_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only view of the data folder")
    tools = require_tool("unshare", "mount")
    script = f'mount --bind -o ro "$1" "$1" && exec {sys.executable} -m registry user list --data-dir "$1"'
    result = subprocess.run(
        [tools["unshare"], "-m", "sh", "-c", script, "sh", str(registry_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
    )
    _one_line(result, str(registry_dir / "index.db"), "read-only")
