"""Which write-claim holders are certainly dead: only processes of this host whose PID is free, reused,
or a zombie (a worker killed with its supervisor, not yet reaped)."""

from __future__ import annotations

import subprocess
import time

from registry.services.sessions import _process, holder_is_gone


def _holder(pid: int) -> str:
    return f"{_process(pid)}/abcdef012345"


def test_a_live_process_holds_its_claim() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert not holder_is_gone(_holder(child.pid))
    finally:
        child.kill()
        child.wait()


def test_an_exited_process_not_yet_reaped_has_let_go() -> None:
    child = subprocess.Popen(["sleep", "30"])
    holder = _holder(child.pid)
    child.kill()
    deadline = time.monotonic() + 10
    while not holder_is_gone(holder):  # a zombie until waited for
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.wait()
    assert holder_is_gone(holder)


def test_a_reused_pid_is_not_the_holder() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        host, pid, _started, nonce = _holder(child.pid).split("/")
        assert holder_is_gone(f"{host}/{pid}/1/{nonce}")
    finally:
        child.kill()
        child.wait()


def test_holders_of_other_hosts_or_unknown_shape_are_never_taken_for_dead() -> None:
    assert not holder_is_gone("0123456789abcdef/1/1/abcdef012345")
    assert not holder_is_gone("")
    assert not holder_is_gone("not a holder")
