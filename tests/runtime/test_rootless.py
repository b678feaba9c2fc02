"""Without root: `registry` run by a user with no capabilities (uid 1000 in a user namespace of
`unshare`) puts its containers in a user namespace of their own, where that user is root."""

from __future__ import annotations

import subprocess
import sys

from tests.runtime.conftest import Registry
from tests.support.tools import require_tool


def unprivileged(registry: Registry, script: str) -> subprocess.CompletedProcess[str]:
    unshare = require_tool("unshare")["unshare"]
    command = [unshare, "--user", "--map-user=1000", "--map-group=1000", "sh", "-c", script, "sh"]
    return subprocess.run(
        [*command, sys.executable, "-m", "registry"],
        env=registry.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_exec_and_export_without_privileges(registry: Registry, image: str) -> None:
    script = f"""
        id -u
        "$@" run --rm {image} sh -c 'id -u; echo $$; ls /sys/class/net; grep -c userxattr /proc/mounts'
        "$@" run -d --name mine {image} sleep 30 > /dev/null
        "$@" exec mine sh -c 'echo exec $(id -u)'
        "$@" export mine | tar -t | grep -c '^bin/busybox$'
        "$@" rm -f mine
    """
    result = unprivileged(registry, script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1000", "0", "1", "lo", "1", "exec 0", "1", "mine"]


def test_only_the_callers_own_user_exists(registry: Registry, image: str) -> None:
    result = unprivileged(registry, f'"$@" run --rm -u nobody {image} id')
    assert result.returncode == 125 and "dropping privileges" in result.stderr
