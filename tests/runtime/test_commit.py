"""`commit`: a container's changes become an image that runs with them (and `diff` agrees)."""

from __future__ import annotations

import json

from tests.runtime.conftest import Registry
from tests.runtime.test_containers import wait_for


def test_commit_diff_round_trip(registry: Registry, image: str) -> None:
    script = "echo saved > /srv/kept; rm /etc/motd; mkdir -p /opt/app"
    registry("run", "--name", "work", "-e", "MODE=prod", image, "sh", "-c", script, check=True)
    assert {"A /srv/kept", "D /etc/motd", "A /opt/app"} <= set(registry("diff", "work").stdout.splitlines())

    image_id = registry(
        "commit", "-a", "Jane Doe <jane@example.com>", "-m", "first save",
        "-c", 'CMD ["cat", "/srv/kept"]', "-c", "LABEL stage=tested", "work", "local/saved:1",
        check=True,
    ).stdout.strip()  # fmt: skip
    assert image_id.startswith("sha256:")

    assert registry("run", "--rm", "local/saved:1", check=True).stdout == "saved\n"  # the new CMD
    gone = registry("run", "--rm", "local/saved:1", "sh", "-c", "test -e /etc/motd || echo gone; echo $MODE")
    assert gone.stdout == "gone\nprod\n"  # the deletion and the container's environment are kept

    document = json.loads(registry("inspect", "local/saved:1", check=True).stdout)[0]
    assert document["Id"] == image_id and document["Author"] == "Jane Doe <jane@example.com>"
    assert document["Comment"] == "first save" and document["Config"]["Labels"] == {"stage": "tested"}
    history = registry("history", "local/saved:1", check=True).stdout.splitlines()
    assert "first save" in history[1]


def test_commit_of_a_running_container_pauses_it_and_goes_on(registry: Registry, image: str) -> None:
    registry(
        "run", "-d", "--name", "live", image, "sh", "-c", "echo x > /srv/live; exec sleep 60", check=True
    )
    wait_for(lambda: registry("exec", "live", "cat", "/srv/live").stdout == "x\n")
    registry("commit", "live", "local/live:1", check=True)
    assert registry("exec", "live", "cat", "/srv/live").stdout == "x\n"  # running again after the pause
    assert registry("run", "--rm", "local/live:1", "cat", "/srv/live", check=True).stdout == "x\n"


def test_commit_refuses_what_docker_refuses(registry: Registry, image: str) -> None:
    registry("run", "--name", "plain", image, "true", check=True)
    bad = registry("commit", "-c", "RUN echo no", "plain", "local/x:1")
    assert bad.returncode == 1 and "RUN cannot be a change to commit" in bad.stderr
    missing = registry("commit", "nobody", "local/x:1")
    assert missing.returncode == 1 and "No such container: nobody" in missing.stderr
    assert "Traceback" not in bad.stderr + missing.stderr
