"""Bounds on what one image may expand to, so a small hostile blob cannot fill the disk or the memory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from registry.unpack.errors import UnpackError

# tarfile reads PAX and GNU long-name headers whole into memory, so their size is bounded separately.
MAX_HEADER_BYTES = 1 << 20
BYTES_VARIABLE = "REGISTRY_UNPACK_MAX_BYTES"
ENTRIES_VARIABLE = "REGISTRY_UNPACK_MAX_ENTRIES"


@dataclass(frozen=True)
class Limits:
    """Per image: all its layers' uncompressed tar bytes together, and their entries together."""

    max_bytes: int = 64 << 30
    max_entries: int = 2_000_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Limits:
        """The environment's `REGISTRY_UNPACK_MAX_BYTES` and `REGISTRY_UNPACK_MAX_ENTRIES` win."""
        defaults = cls()
        return cls(
            max_bytes=int(environ.get(BYTES_VARIABLE, defaults.max_bytes)),
            max_entries=int(environ.get(ENTRIES_VARIABLE, defaults.max_entries)),
        )


class Budget:
    """What is left of the limits while an image's layers are applied one after the other."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.bytes = 0
        self.entries = 0

    def charge_bytes(self, layer: str, count: int) -> None:
        self.bytes += count
        if self.bytes > self.limits.max_bytes:
            raise UnpackError(
                layer, f"the image expands to more than {self.limits.max_bytes} bytes ({BYTES_VARIABLE})"
            )

    def check_entry_size(self, layer: str, entry: str, size: int) -> None:
        """Refuse a member whose declared size cannot fit, before any of it is written."""
        if self.bytes + size > self.limits.max_bytes:
            raise UnpackError(
                layer,
                f"{size} bytes would take the image past {self.limits.max_bytes} bytes ({BYTES_VARIABLE})",
                entry,
            )

    def count_entry(self, layer: str, entry: str) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise UnpackError(
                layer,
                f"the image has more than {self.limits.max_entries} entries ({ENTRIES_VARIABLE})",
                entry,
            )
