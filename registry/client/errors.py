"""The client's own failures, in a module without dependencies, so the CLI can catch them without
importing the HTTP stack for commands that never use it."""

from __future__ import annotations


class ClientError(Exception):
    """A failure worth one line to the user, not a traceback."""


class RegistryClientError(ClientError):
    """A registry refused a request or could not be reached; `status` is its HTTP status, if it answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(ClientError):
    """The token service refused us, or answered something that is not a token."""
