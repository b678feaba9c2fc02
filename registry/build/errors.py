"""The builder's failures: one line for the user, naming the Dockerfile line when there is one."""

from __future__ import annotations


class BuildError(ValueError):
    """A build that cannot go on: a missing source file, a failed RUN, an unknown stage, ..."""


class DockerfileError(BuildError):
    """A Dockerfile that does not parse; `line` is the (first) line of the offending instruction."""

    def __init__(self, line: int, message: str, name: str = "Dockerfile") -> None:
        super().__init__(f"{name}:{line}: {message}")
        self.line = line
