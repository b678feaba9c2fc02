"""The Docker primer's container verbs: `start`, `restart`, `kill`, `attach`, `diff`, `inspect`,
`history`, `-p` and `--restart`, each driven through the real `registry` command."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import httpx
import pytest

from tests.runtime.conftest import Registry
from tests.runtime.test_containers import wait_for
from tests.support.tools import free_port


def _record(registry: Registry, name: str) -> dict:
    return json.loads(registry("inspect", "--type", "container", name, check=True).stdout)[0]


def test_start_after_stop_keeps_the_files_written_before(registry: Registry, image: str) -> None:
    script = "echo $(date +%s%N) >> /srv/starts; exec sleep 60"
    registry("run", "-d", "--name", "keeper", image, "sh", "-c", script, check=True)
    wait_for(lambda: registry("exec", "keeper", "cat", "/srv/starts").stdout.count("\n") == 1)
    registry("stop", "-t", "1", "keeper", check=True)
    assert _record(registry, "keeper")["State"]["Running"] is False

    assert registry("start", "keeper", check=True).stdout == "keeper\n"
    wait_for(lambda: registry("exec", "keeper", "cat", "/srv/starts").stdout.count("\n") == 2)
    assert _record(registry, "keeper")["State"]["Status"] == "running"

    registry("restart", "-t", "1", "keeper", check=True)
    wait_for(lambda: registry("exec", "keeper", "cat", "/srv/starts").stdout.count("\n") == 3)


def test_start_of_a_missing_container_is_one_line(registry: Registry) -> None:
    result = registry("start", "nothere")
    assert result.returncode == 1 and result.stderr.strip() == "registry: No such container: nothere"


def test_kill_sends_the_signal_asked_for(registry: Registry, image: str) -> None:
    script = "trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done"
    registry("run", "-d", "--name", "sig", image, "sh", "-c", script, check=True)
    wait_for(lambda: "ready" in registry("logs", "sig").stdout)
    registry("kill", "-s", "USR1", "sig", check=True)
    wait_for(lambda: "got-usr1" in registry("logs", "sig").stdout)
    assert _record(registry, "sig")["State"]["Running"] is True

    bad = registry("kill", "-s", "NOPE", "sig")
    assert bad.returncode == 1 and "invalid signal 'NOPE'" in bad.stderr
    registry("kill", "sig", check=True)  # SIGKILL by default
    state = _record(registry, "sig")["State"]
    assert state["Running"] is False and state["ExitCode"] == 137


def test_restart_on_failure_restarts_as_often_as_asked(registry: Registry, image: str) -> None:
    registry(
        "run", "-d", "--name", "flaky", "--restart", "on-failure:2", image, "sh", "-c", "echo run; exit 3",
        check=True,
    )  # fmt: skip
    wait_for(lambda: not _record(registry, "flaky")["State"]["Running"] and
             registry("logs", "flaky").stdout.count("run") == 3)  # fmt: skip
    document = _record(registry, "flaky")
    assert document["RestartCount"] == 2 and document["State"]["ExitCode"] == 3
    assert document["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}


def test_restart_always_stops_when_stopped_on_purpose(registry: Registry, image: str) -> None:
    registry("run", "-d", "--name", "loop", "--restart", "always", image, "sh", "-c", "echo up; sleep 0.2",
             check=True)  # fmt: skip
    wait_for(lambda: registry("logs", "loop").stdout.count("up") >= 3)
    registry("stop", "-t", "1", "loop", check=True)
    count = registry("logs", "loop").stdout.count("up")
    time.sleep(1.0)  # what is checked is that nothing happens: there is no event to wait for
    assert registry("logs", "loop").stdout.count("up") == count
    assert not _record(registry, "loop")["State"]["Running"]


@pytest.mark.parametrize("policy", ["sometimes", "always:3", "on-failure:x"])
def test_bad_restart_policies_are_refused(registry: Registry, image: str, policy: str) -> None:
    result = registry("run", "--restart", policy, image, "true")
    assert result.returncode == 125 and f"invalid restart policy {policy!r}" in result.stderr


def test_a_published_port_reaches_the_container(registry: Registry, image: str, tmp_path) -> None:
    port = free_port()
    script = "mkdir -p /www && echo hello-port > /www/index.html && exec httpd -f -p 80 -h /www"
    registry("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", image, "sh", "-c", script,
             check=True)  # fmt: skip

    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text == "hello-port\n"
        except httpx.TransportError:
            return False

    wait_for(answers)
    assert _record(registry, "web")["NetworkSettings"]["Ports"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    }
    registry("rm", "-f", "web", check=True)
    with pytest.raises(httpx.TransportError):  # the forwarder went with the container
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_a_busy_port_fails_the_run(registry: Registry, image: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = registry("run", "-d", "-p", f"{port}:80", image, "sleep", "5")
    assert result.returncode != 0 and f"cannot publish 127.0.0.1:{port}" in result.stderr


def test_bad_port_mappings_are_refused(registry: Registry, image: str) -> None:
    result = registry("run", "-p", "80", image, "true")
    assert result.returncode == 125 and "invalid port mapping '80'" in result.stderr


def test_attach_follows_the_output_and_feeds_the_input(registry: Registry, image: str) -> None:
    registry("run", "-d", "-i", "--name", "cat", image, "sh", "-c", "echo ready; exec cat", check=True)
    wait_for(lambda: "ready" in registry("logs", "cat").stdout)
    attached = registry.popen("attach", "cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    time.sleep(0.5)  # attach starts at the log's end: give it that moment before writing
    attached.stdin.write("echoed back\n")
    attached.stdin.flush()
    wait_for(lambda: "echoed back" in registry("logs", "cat").stdout)
    registry("kill", "cat", check=True)
    out, _ = attached.communicate(timeout=10)
    assert "echoed back" in out and "ready" not in out  # only what came after attaching


def test_attach_to_a_stopped_container_is_refused(registry: Registry, image: str) -> None:
    registry("run", "--name", "done", image, "true", check=True)
    result = registry("attach", "done")
    assert result.returncode == 1 and "start it first" in result.stderr


def test_diff_lists_what_the_container_changed(registry: Registry, image: str) -> None:
    script = "echo new > /srv/added; echo changed >> /etc/motd; rm /bin/cat; mkdir -p /opt/tree/sub"
    registry("run", "--name", "changer", image, "sh", "-c", script, check=True)
    lines = registry("diff", "changer", check=True).stdout.splitlines()
    for line in ("A /srv/added", "C /etc/motd", "D /bin/cat", "A /opt/tree", "A /opt/tree/sub", "C /bin"):
        assert line in lines, lines
    assert lines == sorted(lines, key=lambda line: line[2:])


def test_inspect_shows_images_and_containers_in_dockers_shape(registry: Registry, image: str) -> None:
    registry("run", "--name", "seen", "-e", "A=1", image, "true", check=True)
    container = _record(registry, "seen")
    assert container["Name"] == "/seen" and "A=1" in container["Config"]["Env"]
    assert container["State"]["Status"] == "exited" and container["Image"].startswith("sha256:")

    document = json.loads(registry("inspect", image, check=True).stdout)[0]
    assert document["Id"] == container["Image"]
    assert image in document["RepoTags"] and document["RootFS"]["Type"] == "layers"
    assert document["Config"]["WorkingDir"] == "/srv"
    missing = registry("inspect", "nothing-here")
    assert missing.returncode == 1 and "no such object: nothing-here" in missing.stderr


def test_history_lists_the_steps_newest_first(registry: Registry, image: str) -> None:
    lines = registry("history", image, check=True).stdout.splitlines()
    assert lines[0].split()[:4] == ["IMAGE", "CREATED", "CREATED", "BY"]
    assert len(lines) >= 2


def test_cp_both_ways_with_running_and_stopped_containers(registry: Registry, image: str, tmp_path) -> None:
    registry("run", "-d", "--name", "box", image, "sh", "-c", "echo inside > /srv/note; exec sleep 60",
             check=True)  # fmt: skip
    wait_for(lambda: registry("exec", "box", "cat", "/srv/note").stdout == "inside\n")
    registry("cp", "box:/srv/note", str(tmp_path / "note"), check=True)
    assert (tmp_path / "note").read_text() == "inside\n"

    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f").write_text("from host\n")
    registry("cp", str(folder), "box:/srv", check=True)  # onto an existing folder: inside it
    assert registry("exec", "box", "cat", "/srv/folder/sub/f").stdout == "from host\n"
    registry("cp", f"{folder}/.", "box:/opt", check=True)  # a folder's contents onto a new path
    assert registry("exec", "box", "cat", "/opt/sub/f").stdout == "from host\n"

    registry("stop", "-t", "1", "box", check=True)
    (tmp_path / "late").write_text("while stopped\n")
    registry("cp", str(tmp_path / "late"), "box:/srv/late", check=True)
    registry("cp", "box:/srv", str(tmp_path / "copied"), check=True)
    assert (tmp_path / "copied" / "late").read_text() == "while stopped\n"
    assert (tmp_path / "copied" / "folder" / "sub" / "f").read_text() == "from host\n"
    registry("start", "box", check=True)
    wait_for(lambda: registry("exec", "box", "cat", "/srv/late").stdout == "while stopped\n")


def test_cp_errors_are_one_line(registry: Registry, image: str, tmp_path) -> None:
    registry("run", "--name", "gone", image, "true", check=True)
    missing = registry("cp", "gone:/no/such", str(tmp_path / "x"))
    assert missing.returncode == 1 and "no such file or directory" in missing.stderr
    assert "Traceback" not in missing.stderr
    both = registry("cp", str(tmp_path), str(tmp_path / "y"))
    assert both.returncode == 2 and "CONTAINER:PATH" in both.stderr
    escape = registry("cp", str(tmp_path), "gone:/../../etc")
    assert escape.returncode == 1 and "outside the root" in escape.stderr
