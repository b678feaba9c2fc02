"""Detached containers: `run -d`, `ps`, `logs`, `exec`, `stop`, `rm`, `container prune` and `export`."""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.runtime.conftest import MOTD, Pulled, Registry
from tests.support.images import build_busybox_layout


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_detached_container_is_listed_logged_stopped_and_removed(registry: Registry, image: str) -> None:
    script = "trap 'echo stopping; exit 0' TERM; echo started; while true; do sleep 0.1; done"
    started = registry("run", "-d", "--name", "worker", image, "sh", "-c", script, check=True)
    container_id = started.stdout.strip()
    assert len(container_id) == 64 and started.stderr == ""

    listing = registry("ps").stdout.splitlines()
    assert listing[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"]
    assert listing[1].startswith(container_id[:12]) and " Up " in listing[1] and listing[1].endswith("worker")
    wait_for(lambda: "started" in registry("logs", "worker").stdout)
    follower = registry.popen("logs", "-f", "worker", stdout=subprocess.PIPE)

    registry("stop", "worker", check=True)  # the trap handles SIGTERM: no need to wait for SIGKILL
    assert follower.communicate(timeout=10)[0] == "started\nstopping\n"  # -f ends with the container
    assert registry("logs", container_id[:6]).stdout == "started\nstopping\n"
    assert registry("ps", "-q").stdout == ""
    assert "Exited (0)" in registry("ps", "-a").stdout

    assert registry("rm", "worker", check=True).stdout == "worker\n"
    assert registry("ps", "-aq").stdout == ""
    assert not (registry.containers / container_id).exists()
    missing = registry("logs", "worker")
    assert missing.returncode == 1 and "No such container" in missing.stderr


def test_exec_joins_the_running_container(registry: Registry, image: str) -> None:
    script = "echo x > /tmp/mark; exec sleep 60"
    registry("run", "-d", "--name", "host", "--hostname", "inside", image, "sh", "-c", script, check=True)
    wait_for(lambda: "sleep 60" in registry("exec", "host", "ps").stdout)

    result = registry(
        "exec", "host", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; cat /tmp/mark; pwd"
    )
    assert result.stdout.splitlines() == ["sleep 60 ", "inside", "x", "/srv"]
    processes = registry("exec", "host", "ps").stdout
    assert "sleep 60" in processes and len(processes.splitlines()) <= 5  # the same PID namespace, no more

    assert (
        registry(
            "exec", "-w", "/tmp", "-u", "nobody", "-e", "A=b", "host", "sh", "-c", "pwd; id -u; echo $A"
        ).stdout
        == "/tmp\n65534\nb\n"
    )
    assert registry("exec", "host", "sh", "-c", "exit 9").returncode == 9
    assert registry("exec", "host", "no-such-program").returncode == 127

    registry("rm", "-f", "host", check=True)
    stopped = registry("exec", "host", "true")
    assert stopped.returncode == 1 and "No such container" in stopped.stderr


def test_stop_escalates_to_sigkill(registry: Registry, image: str) -> None:
    """PID 1 ignores a SIGTERM it has no handler for, so `stop` kills it after the timeout."""
    registry("run", "-d", "--name", "stubborn", image, "sleep", "60", check=True)
    started = time.monotonic()
    registry("stop", "-t", "1", "stubborn", check=True)
    assert 1 <= time.monotonic() - started < 8
    assert "Exited (137)" in registry("ps", "-a").stdout


def test_rm_refuses_running_containers_unless_forced(registry: Registry, image: str) -> None:
    registry("run", "-d", "--name", "busy", image, "sleep", "60", check=True)
    refused = registry("rm", "busy")
    assert refused.returncode == 1 and "is running" in refused.stderr
    assert registry("rm", "-f", "busy", check=True).stdout == "busy\n"
    assert registry("ps", "-aq").stdout == ""


def test_container_prune_removes_only_stopped_ones(
    registry: Registry, image: str, pulled: Pulled, tmp_path: Path
) -> None:
    registry("run", "--name", "done-1", image, "true", check=True)
    registry("run", "--name", "done-2", image, "false")
    running = registry("run", "-d", "--name", "alive", image, "sleep", "60", check=True).stdout.strip()
    other = pulled.push_and_pull(
        build_busybox_layout(tmp_path / "layout", "2", {"/other": "x"}), "2", "test/prune"
    )
    registry("run", "--name", "from-other", other, "true", check=True)
    assert len(list((registry.containers / "rootfs").iterdir())) == 2
    registry("rmi", other, check=True)

    pruned = registry("container", "prune", "-f", check=True).stdout
    assert pruned.startswith("Deleted Containers:") and "Total reclaimed space" in pruned
    assert registry("ps", "-aq", "--no-trunc").stdout.split() == [running]
    # The removed image's unpacked root went with its last container; the running one's stays.
    assert [p.name for p in (registry.containers / "rootfs").iterdir()] == [
        Path(registry.inspect(running)["lower"]).name
    ]


def test_names_are_unique(registry: Registry, image: str) -> None:
    registry("run", "--name", "twin", image, "true", check=True)
    second = registry("run", "--name", "twin", image, "true")
    assert second.returncode == 125 and "already used" in second.stderr


def test_export_writes_the_filesystem_without_runtime_mounts(registry: Registry, image: str) -> None:
    script = "echo new > /root/file; rm /etc/motd; sleep 60"
    registry("run", "-d", "--name", "exported", image, "sh", "-c", script, check=True)
    wait_for(lambda: registry("exec", "exported", "sh", "-c", "test -e /root/file").returncode == 0)

    def members() -> dict[str, tarfile.TarInfo]:
        data = registry("export", "exported", check=True, text=False).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            return {member.name: member for member in archive.getmembers()}

    running = members()
    registry("stop", "-t", "0", "exported", check=True)
    for found in (running, members()):
        assert found["root/file"].size == 4 and found["bin/sh"].issym() and found["bin/busybox"].isreg()
        assert "etc/motd" not in found  # deleted in this container: the overlay's whiteout hides it
        assert not any(name.startswith(("proc/", "sys/", "dev/")) for name in found)
    assert registry("run", "--rm", image, "cat", "/etc/motd").stdout == MOTD  # the image is unchanged


def test_the_unpacked_image_is_cached(registry: Registry, image: str) -> None:
    registry("run", "--rm", image, "true", check=True)
    assert registry.containers.stat().st_mode & 0o077 == 0  # images' set-user-ID files stay private
    cached = list((registry.containers / "rootfs").iterdir())
    assert len(cached) == 1
    registry("run", "--rm", image, "true", check=True)
    assert list((registry.containers / "rootfs").iterdir()) == cached
    record = registry("run", "-d", image, "sleep", "5", check=True).stdout.strip()
    state = registry.inspect(record)
    assert state["lower"] == str(cached[0]) and state["storage"] == "overlay"


def test_ps_shows_the_image_as_the_user_named_it(registry: Registry, pulled: Pulled) -> None:
    short = "mybb:latest"
    registry("tag", pulled.reference, short, check=True)
    registry("run", "-d", "--name", "named", short, "sleep", "60", check=True)
    row = registry("ps").stdout.splitlines()[1].split()
    assert row[1] == short, row
    registry("rm", "-f", "named", check=True)


def test_a_terminal_is_refused_when_the_input_is_not_one(registry: Registry, image: str) -> None:
    registry("run", "-d", "--name", "busy", image, "sleep", "60", check=True)
    for command in (["exec", "-it", "busy", "sh"], ["run", "--rm", "-it", image, "sh"]):
        refused = registry(*command, stdin=subprocess.DEVNULL)
        assert refused.returncode == 1 and refused.stderr == "registry: the input device is not a TTY\n", (
            command,
            refused,
        )
    registry("rm", "-f", "busy", check=True)


def test_logs_keep_stdout_and_stderr_apart(registry: Registry, image: str) -> None:
    script = "echo out 1; echo err 1 >&2; echo out 2"
    registry("run", "-d", "--name", "streams", image, "sh", "-c", script, check=True)
    wait_for(lambda: "Exited (0)" in registry("ps", "-a").stdout)
    logs = registry("logs", "streams")
    assert (logs.stdout, logs.stderr) == ("out 1\nout 2\n", "err 1\n")


def test_rmi_removes_the_unpacked_image_nothing_else_uses(
    registry: Registry, pulled: Pulled, image: str, tmp_path: Path
) -> None:
    layout = build_busybox_layout(tmp_path / "layout", tag="1", extra_files={"/etc/rmi": "mine\n"})
    mine = pulled.push_and_pull(layout, "1", "test/rmi")
    for name in (mine, image):
        registry("run", "--rm", name, "true", check=True)
    unpacked = registry.containers / "rootfs"
    assert len(list(unpacked.iterdir())) == 2
    registry("rmi", mine, check=True)
    (kept,) = unpacked.iterdir()  # busybox's own root stays: its image is still there
    registry("run", "--rm", image, "true", check=True)
    assert list(unpacked.iterdir()) == [kept]  # and is what busybox runs on


def test_system_df_counts_containers_and_their_writable_layers(registry: Registry, image: str) -> None:
    """Docker's rows: an image a container uses is active; a container's size is its writable layer,
    reclaimable once it has stopped."""

    def rows() -> dict[str, list[str]]:
        lines = registry("system", "df", check=True).stdout.splitlines()
        assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        # TOTAL, ACTIVE, SIZE, then RECLAIMABLE with its share, e.g. "300KB (100%)".
        table = {}
        for line in lines[1:]:
            kind, total, active, size, *reclaimable = line.split("   ")[0:1] + line[16:].split()
            table[kind.strip()] = [total, active, size, " ".join(reclaimable)]
        return table

    assert rows()["Containers"] == ["0", "0", "0B", "0B"]
    script = "head -c 300000 /dev/zero > /written; echo ready; sleep 60"
    registry("run", "-d", "--name", "writer", image, "sh", "-c", script, check=True)
    wait_for(lambda: "ready" in registry("logs", "writer").stdout)
    running = rows()
    assert running["Images"][1] == "1"  # the image the container runs on is in use
    total, active, size, reclaimable = running["Containers"]
    assert (total, active, reclaimable) == ("1", "1", "0B (0%)") and size != "0B"
    registry("stop", "-t", "0", "writer", check=True)
    assert rows()["Containers"] == ["1", "0", size, f"{size} (100%)"]
    assert rows()["Local Volumes"] == ["0", "0", "0B", "0B"]
    assert rows()["Build Cache"] == ["0", "0", "0B", "0B"]
