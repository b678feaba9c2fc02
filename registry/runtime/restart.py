"""`--restart`: what a container's monitor does when the container's process ends, as Docker's policies.

    no               never restart (the default)
    on-failure[:N]   restart after a non-zero exit, at most N times (no limit without N)
    always           restart after any exit
    unless-stopped   as always

A container stopped on purpose (`stop`, `kill` with SIGKILL, `rm -f`) is not restarted, whatever its
policy, until it is started again: the stop leaves a marker file beside the record (a file, not a field
of the record, so the monitor's own saves can never overwrite it). With no daemon, `always` and
`unless-stopped` do not bring containers back after the host reboots; that is the difference.
Restarts wait 100 ms, doubling up to 1 minute, as Docker's do, so a crashing process does not spin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_POLICY = re.compile(r"(?P<name>no|always|unless-stopped|on-failure)(?::(?P<count>\d+))?")
FIRST_DELAY = 0.1
MAX_DELAY = 60.0


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"
    maximum: int | None = None  # on-failure's N

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        match = _POLICY.fullmatch(text.strip())
        if not match or (match["count"] is not None and match["name"] != "on-failure"):
            raise ValueError(
                f"invalid restart policy {text!r}: use no, on-failure[:N], always or unless-stopped"
            )
        return cls(match["name"], int(match["count"]) if match["count"] is not None else None)

    def __str__(self) -> str:
        return self.name if self.maximum is None else f"{self.name}:{self.maximum}"

    def restarts(self, exit_code: int | None, restarted: int, stopped_on_purpose: bool) -> bool:
        """Whether the process that just ended with `exit_code` is started again, after `restarted`
        restarts so far."""
        if stopped_on_purpose or self.name == "no":
            return False
        if self.name == "on-failure":
            return exit_code != 0 and (self.maximum is None or restarted < self.maximum)
        return True


def delay(restarted: int) -> float:
    return min(MAX_DELAY, FIRST_DELAY * 2**restarted)
