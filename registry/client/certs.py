"""Per-registry TLS material from `certs.d` folders, read the way Docker and Podman read them, so a CA or a
client certificate installed once for those tools serves this client too, with no flag on every command.

    <certs.d root>/HOST:PORT/
      *.crt                 CA certificates to trust for this registry
      NAME.cert, NAME.key   a client certificate and its key, for registries that require one (mTLS)

The roots are, in order, `~/.config/containers/certs.d`, `/etc/containers/certs.d` and
`/etc/docker/certs.d`; REGISTRY_CERTS_DIRS (folders separated by `:`) replaces that list. Every root's
folder for the registry counts: CAs from all, the first client certificate found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from registry.client.errors import ClientError

ENVIRONMENT: Final = "REGISTRY_CERTS_DIRS"
SYSTEM_ROOTS: Final = ("/etc/containers/certs.d", "/etc/docker/certs.d")


def roots() -> list[Path]:
    """The certs.d folders to look in, most personal first."""
    if (configured := os.environ.get(ENVIRONMENT)) is not None:
        return [Path(folder) for folder in configured.split(os.pathsep) if folder]
    return [Path.home() / ".config" / "containers" / "certs.d", *map(Path, SYSTEM_ROOTS)]


@dataclass(frozen=True)
class RegistryCertificates:
    authorities: list[Path] = field(default_factory=list)  # PEM files of CAs to trust
    client: tuple[Path, Path] | None = None  # certificate and key to present


def for_registry(host: str) -> RegistryCertificates:
    """What the certs.d folders hold for `host` (`HOST[:PORT]`, the folder's name)."""
    authorities: list[Path] = []
    clients: list[tuple[Path, Path]] = []
    for root in roots():
        folder = root / host
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix == ".crt":
                authorities.append(path)
            elif path.suffix == ".cert":
                clients.append((path, _partner(path, ".key", "key")))
            elif path.suffix == ".key":
                _partner(path, ".cert", "certificate")
    return RegistryCertificates(authorities, clients[0] if clients else None)


def _partner(path: Path, suffix: str, what: str) -> Path:
    """A client certificate's key, or a key's certificate: one without the other is a setup mistake."""
    partner = path.with_suffix(suffix)
    if not partner.is_file():
        raise ClientError(f"missing {what} {partner.name} for {path} (client certificates go in pairs)")
    return partner


def hint(host: str) -> str:
    """Where a user can say which CA to trust for `host`, for the message of a failed TLS handshake."""
    places = " or ".join(f"{root / host}/" for root in roots())
    return (
        f"trust its CA with --ca-cert FILE or a ca.crt in {places} "
        "(client certificates go there too, as NAME.cert and NAME.key); --insecure skips verification"
    )
