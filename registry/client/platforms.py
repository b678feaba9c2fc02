"""Platforms (`os/arch[/variant]`) and choosing one image from a multi-platform index.

Architectures are spelled as Go spells them (OCI and Docker do), so the host's `x86_64` is `amd64`.
Variants Docker leaves out mean the baseline (`arm64` is `arm64/v8`), so either spelling matches.
"""

from __future__ import annotations

import platform as host_platform
from dataclasses import dataclass
from typing import Any, Final

_GOARCH: Final = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
_DEFAULT_VARIANT: Final = {"arm64": "v8", "amd64": "v1"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/arch or os/arch/variant")
        return cls(parts[0], _GOARCH.get(parts[1], parts[1]), parts[2] if len(parts) == 3 else None)

    @classmethod
    def host(cls) -> Platform:
        machine = host_platform.machine().lower()
        if machine.startswith("armv"):  # armv7l, armv6l
            return cls("linux", "arm", machine[3:5])
        return cls("linux", _GOARCH.get(machine, machine))

    def matches(self, candidate: dict[str, Any]) -> bool:
        """Whether an index entry's `platform` is this one; no variant asked means any variant."""
        if candidate.get("os") != self.os or candidate.get("architecture") != self.architecture:
            return False
        if self.variant is None:
            return True
        default = _DEFAULT_VARIANT.get(self.architecture)
        return (candidate.get("variant") or default) == (self.variant or default)

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


def describe(candidate: dict[str, Any]) -> str:
    return "/".join(candidate.get(key) or "" for key in ("os", "architecture", "variant")).rstrip("/")


def choose(index: dict[str, Any], wanted: Platform) -> dict[str, Any]:
    """The descriptor of `wanted`'s image in an image index, as `docker pull --platform` picks it."""
    entries = index.get("manifests", [])
    for entry in entries:
        if wanted.matches(entry.get("platform", {})):
            return entry
    available = ", ".join(describe(entry.get("platform", {})) for entry in entries) or "none"
    raise ValueError(
        f"no matching manifest for {wanted} in the manifest list entries (available: {available})"
    )
