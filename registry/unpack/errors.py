"""The one error the unpacker raises: every refusal names the layer and, when there is one, the entry."""

from __future__ import annotations


class UnpackError(Exception):
    """A layer could not be applied: hostile or corrupt content, a digest mismatch, or a limit reached.

    `layer` is the layer's digest and `entry` the tar entry's name, so a user can tell which image part
    is at fault without reading a traceback.
    """

    def __init__(self, layer: str, reason: str, entry: str | None = None) -> None:
        self.layer = layer
        self.entry = entry
        self.reason = reason
        where = f"layer {layer}" + (f", entry {entry!r}" if entry is not None else "")
        super().__init__(f"{where}: {reason}")


class PathEscape(ValueError):
    """A path (or a symlink met while resolving it) would lead outside the root it must stay in."""
