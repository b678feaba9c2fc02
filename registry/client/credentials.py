"""Registry credentials in a file shaped like `~/.docker/config.json`: `{"auths": {HOST: {"auth": b64}}}`.

Our own file (REGISTRY_AUTH_FILE, else `$XDG_CONFIG_HOME/registry/auth.json`) is the one `registry login`
writes; Docker's config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`) is only read, so a
user who already ran `docker login` is not asked again and Docker's own settings are never rewritten.
Other keys of the file are kept as they are, and the file is private to its owner (0600).

When a token service hands out refresh tokens, `docker login` keeps that token as `identitytoken` and
only the user name in `auth` (`alice:`, an empty password): the token is the credential then. An entry
with an empty password and no token is no credential at all, since sending it would only count as a
failed login against the user.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

DOCKER_HUB_KEY: Final = "https://index.docker.io/v1/"
_HUB_HOSTS: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


def default_path() -> Path:
    if path := os.environ.get("REGISTRY_AUTH_FILE"):
        return Path(path)
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "registry" / "auth.json"


def docker_config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def key_for(host: str) -> str:
    """The `auths` key Docker uses for a registry: Hub keeps its historical v1 URL."""
    return DOCKER_HUB_KEY if host in _HUB_HOSTS else host


def _host_of(key: str) -> str:
    """`https://host/v1/` and `host` both name `host` (Docker accepts either form in `auths`)."""
    host = key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return "docker.io" if host in _HUB_HOSTS else host


@dataclass(frozen=True)
class Credentials:
    """A password, or the OAuth2 refresh token (Docker's `identitytoken`) a token service gave instead."""

    username: str
    password: str = ""
    identity_token: str = ""


class CredentialStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    def get(self, host: str) -> Credentials | None:
        """The credentials for `host`, from our file first, then from Docker's."""
        wanted = _host_of(host)
        for path in (self.path, docker_config_path()):
            for key, entry in _read(path).get("auths", {}).items():
                if _host_of(key) == wanted and (credentials := _decode(entry)):
                    return credentials
        return None

    def set(self, host: str, username: str, password: str) -> None:
        document = _read(self.path)
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        document.setdefault("auths", {})[key_for(host)] = {"auth": token}
        self._write(document)

    def remove(self, host: str) -> bool:
        """Forget `host`; False when there was nothing stored for it."""
        document = _read(self.path)
        auths = document.get("auths", {})
        keys = [key for key in auths if _host_of(key) == _host_of(host)]
        for key in keys:
            del auths[key]
        if keys:
            self._write(document)
        return bool(keys)

    def _write(self, document: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            json.dump(document, stream, indent="\t")
            stream.write("\n")
        os.replace(temporary, self.path)


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    return document if isinstance(document, dict) else {}


def _decode(entry: Any) -> Credentials | None:
    if not isinstance(entry, dict) or not entry.get("auth"):
        return None
    username, colon, password = base64.b64decode(entry["auth"]).decode().partition(":")
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials(username, identity_token=token)
    return Credentials(username, password) if colon and password else None
