"""`registry run` in the foreground: the process, its namespaces, its root filesystem and its limits."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from tests.runtime.conftest import MOTD, Pulled, Registry
from tests.support.tools import require_tool
from tests.unpack.layers import Blobs, entry, symlink


def test_output_and_exit_code(registry: Registry, image: str) -> None:
    """The issue's first check, on an image pushed with skopeo and pulled with `registry pull`."""
    result = registry("run", "--rm", image, "sh", "-c", "echo hi; exit 3")
    assert (result.returncode, result.stdout) == (3, "hi\n"), result.stderr
    assert registry("ps", "-aq").stdout == ""  # --rm removed it


def test_pid_1_hostname_and_own_namespaces(registry: Registry, image: str) -> None:
    script = "echo $$; hostname; cat /etc/hostname; ps | wc -l; cat /proc/1/cmdline | tr '\\0' ' '"
    result = registry("run", "--rm", "--hostname", "box", image, "sh", "-c", script)
    pid, hostname, etc_hostname, processes, command = result.stdout.splitlines()
    assert (pid, hostname, etc_hostname) == ("1", "box", "box")
    assert int(processes) <= 5  # header, sh, ps, wc (and the pipe's subshell): no host process is visible
    assert command.startswith("sh -c echo $$")

    default = registry("run", image, "hostname", check=True).stdout.strip()
    assert len(default) == 12 and registry("ps", "-aq").stdout.strip() == default  # the short ID


def test_image_config_is_honoured_and_overridable(registry: Registry, image: str) -> None:
    script = 'pwd; echo "$GREETING $EXTRA"; echo $HOME; id -u'
    assert registry("run", "--rm", image, "sh", "-c", script).stdout == "/srv\nhello \n/root\n0\n"

    result = registry(
        "run", "--rm", "-e", "GREETING=bye", "-e", "EXTRA", "-w", "/var/work", "-u", "nobody",
        image, "sh", "-c", script, env={**registry.env, "EXTRA": "from the host"},
    )  # fmt: skip
    assert result.stdout == "/var/work\nbye from the host\n/nonexistent\n65534\n", result.stderr
    assert registry("run", "--rm", "-u", "1234:5678", image, "id").stdout == "uid=1234 gid=5678 groups=5678\n"
    assert (
        registry("run", "--rm", "--entrypoint", "echo", image, "via", "entrypoint").stdout
        == "via entrypoint\n"
    )
    assert registry("run", "--rm", image).stdout == ""  # Cmd is `sh`, with no input: exits at once


def test_start_failures_use_dockers_exit_codes(registry: Registry, image: str) -> None:
    missing = registry("run", "--rm", image, "no-such-program")
    assert missing.returncode == 127 and "executable file not found" in missing.stderr
    assert registry("run", "--rm", image, "/etc/motd").returncode == 126
    unknown = registry("run", "--rm", "-u", "ghost", image, "true")
    assert unknown.returncode == 125 and "unable to find user ghost" in unknown.stderr
    absent = registry("run", "--rm", "127.0.0.1:1/not/pulled:1", "true")  # not here, and no registry there
    assert absent.returncode == 125 and "cannot reach registry 127.0.0.1:1" in absent.stderr
    assert registry("ps", "-aq").stdout == ""


def test_hostile_image_is_refused_before_anything_runs(
    registry: Registry, pulled: Pulled, tmp_path: Path
) -> None:
    blobs = Blobs(tmp_path / "layout")
    layer = blobs.add([symlink("escape", "../../../../../../../.."), entry("escape/tmp/pwned", data=b"x")])
    blobs.write_layout("1")
    hostile = pulled.push_and_pull(blobs.root, "1", "test/hostile")

    result = registry("run", "--rm", hostile, "true")
    assert result.returncode == 125
    assert layer.digest in result.stderr and "'escape/tmp/pwned'" in result.stderr
    assert not Path("/tmp/pwned").exists()
    assert registry("ps", "-aq").stdout == "" and not list((registry.containers / "rootfs").iterdir())


def test_network_is_only_loopback_unless_host(registry: Registry, image: str) -> None:
    result = registry("run", "--rm", image, "sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags")
    assert result.stdout.split() == ["lo", "0x9"]  # IFF_UP | IFF_LOOPBACK
    assert "127.0.0.1\tlocalhost" in registry("run", "--rm", image, "cat", "/etc/hosts").stdout

    host = registry("run", "--rm", "--network", "host", image, "ls", "/sys/class/net").stdout.split()
    assert sorted(host) == sorted(os.listdir("/sys/class/net"))


def test_writes_stay_in_their_container(registry: Registry, image: str) -> None:
    first = registry(
        "run", "--name", "first", image, "sh", "-c", "echo changed > /etc/motd; touch /new; rm /bin/ls"
    )
    assert first.returncode == 0, first.stderr
    second = registry("run", "--rm", image, "sh", "-c", "cat /etc/motd; ls /new; test -e /bin/ls && echo ls")
    assert second.stdout == MOTD + "ls\n"
    assert "No such file" in second.stderr
    exported = registry("export", "first", check=True, text=False).stdout
    assert b"changed" in exported


def test_minimal_dev_proc_and_read_only_sys(registry: Registry, image: str) -> None:
    script = "ls /dev; touch /sys/x 2>&1; ls /proc/self/ns > /dev/null && echo proc; echo ok > /dev/null"
    result = registry("run", "--rm", image, "sh", "-c", script)
    listing = result.stdout.split()
    for device in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx"):
        assert device in listing
    assert "Read-only file system" in result.stdout and "proc" in listing
    assert (
        registry("run", "--rm", image, "sh", "-c", "busybox head -c 4 /dev/zero | wc -c").stdout.strip()
        == "4"
    )


def test_bind_mounts(registry: Registry, image: str, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in").write_text("from the host\n")
    result = registry(
        "run", "--rm", "-v", f"{shared}:/data", image, "sh", "-c", "cat /data/in; echo back > /data/out"
    )
    assert result.stdout == "from the host\n"
    assert (shared / "out").read_text() == "back\n"

    read_only = registry("run", "--rm", "-v", f"{shared}:/data:ro", image, "touch", "/data/nope")
    assert read_only.returncode != 0 and "Read-only file system" in read_only.stderr
    assert not (shared / "nope").exists()


def test_signals_are_forwarded(registry: Registry, image: str) -> None:
    script = "trap 'echo got TERM; exit 7' TERM; echo ready; sleep 30 & wait"
    process = registry.popen("run", "--rm", image, "sh", "-c", script, stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 7
    assert process.stdout.read() == "got TERM\n"


def test_init_reaps_orphans_and_forwards_signals(registry: Registry, image: str) -> None:
    script = 'echo $$; sh -c "sleep 0.1 &"; sleep 0.5; grep -l zombie /proc/[0-9]*/status | wc -l'
    assert registry("run", "--rm", "--init", image, "sh", "-c", script).stdout.split() == ["2", "0"]

    started = time.monotonic()
    registry("run", "-d", "--init", "--name", "sleeper", image, "sleep", "60", check=True)
    registry("stop", "-t", "20", "sleeper", check=True)  # `sleep` is not PID 1: SIGTERM ends it at once
    assert time.monotonic() - started < 10
    assert "Exited (143)" in registry("ps", "-a").stdout


def read_until(fd: int, token: bytes, timeout: float = 20) -> bytes:
    """Read a terminal until `token` shows up, it closes, or `timeout` passes."""
    output = b""
    deadline = time.monotonic() + timeout
    while token not in output and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            output += chunk
    return output


def test_interactive_terminal(registry: Registry, image: str) -> None:
    master, slave = pty.openpty()
    process = registry.popen("run", "--rm", "-it", image, "sh", stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        assert b"# " in read_until(master, b"# ")  # the shell's prompt: it is reading its terminal
        os.write(master, b"tty; echo $((6 * 7)); exit 5\n")
        output = read_until(master, b"never printed", timeout=10)
        assert process.wait(timeout=10) == 5
        assert b"/dev/pts/0\r\n42\r\n" in output
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)


def test_memory_and_process_limits(registry: Registry, image: str) -> None:
    allocate = ["sh", "-c", "busybox dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null"]
    assert registry("run", "--rm", image, *allocate).returncode == 0
    assert registry("run", "--rm", "--memory", "32m", image, *allocate).returncode == 137  # OOM-killed

    forks = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; wait"
    result = registry("run", "--rm", "--pids-limit", "5", image, "sh", "-c", forks)
    assert "can't fork" in result.stderr

    container = registry(
        "run", "-d", "--memory", "64m", "--pids-limit", "20", image, "sleep", "60", check=True
    )
    cid = container.stdout.strip()
    directories = [Path(d) for d in registry.inspect(cid)["cgroups"]]
    limits = {  # cgroup v1 (a directory per controller) or v2 (one directory)
        path.name: path.read_text().strip()
        for directory in directories
        for path in directory.iterdir()
        if path.name in ("memory.limit_in_bytes", "memory.max", "pids.max")
    }
    assert sorted(limits.values()) == sorted([str(64 << 20), "20"])
    pid = str(registry.inspect(cid)["pid"])
    assert all(pid in (directory / "cgroup.procs").read_text().split() for directory in directories)
    registry("rm", "-f", cid, check=True)
    assert directories and not any(d.exists() for d in directories)


def test_overlay_falls_back_to_a_copy(registry: Registry, image: str, tmp_path: Path) -> None:
    """Containers root on an overlayfs, which overlayfs cannot use as an upper layer: the container
    runs on a copy of the image, in a mount namespace of `unshare` so the host sees no mount."""
    unshare = require_tool("unshare")["unshare"]
    for name in ("lower", "upper", "work", "merged"):
        (tmp_path / name).mkdir()
    options = f"lowerdir={tmp_path}/lower,upperdir={tmp_path}/upper,workdir={tmp_path}/work"
    script = (
        f"mount -t overlay overlay -o {options} {tmp_path}/merged"
        f" && export REGISTRY_CONTAINERS_ROOT={tmp_path}/merged/c"
        f' && "$@" run --name copied {image} sh -c "echo kept > /root/file; cat /etc/motd"'
        f' && "$@" export -o {tmp_path}/export.tar copied'
        f" && grep -h storage {tmp_path}/merged/c/*/container.json"
    )
    result = subprocess.run(
        [unshare, "--mount", "sh", "-c", script, "sh", sys.executable, "-m", "registry"],
        env=registry.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [MOTD.strip(), ' "storage": "copy",']
    with tarfile.open(tmp_path / "export.tar") as archive:
        assert archive.extractfile("root/file").read() == b"kept\n"  # type: ignore[union-attr]


def test_a_missing_image_is_pulled_first_unless_told_not_to(
    registry: Registry, image: str, tmp_path: Path
) -> None:
    empty = str(tmp_path / "empty-store")
    refused = registry("run", "--rm", "--root", empty, "--pull", "never", image, "true")
    assert refused.returncode == 125
    assert "Unable to find image" in refused.stderr

    result = registry("run", "--rm", "--root", empty, image, "cat", "/etc/motd")
    assert (result.returncode, result.stdout) == (0, MOTD), result.stderr  # stdout is the container's alone
    assert "Unable to find image" in result.stderr and "Digest: sha256:" in result.stderr
    assert registry("images", "--root", empty, "-q").stdout.strip()  # it stays in that store
