"""Per-layer status lines, like `docker pull`: redrawn in place on a terminal, final states only otherwise.

Logs and pipes get one line per layer when it is done instead of thousands of progress updates; a terminal
gets each layer's line rewritten (cursor up, clear, write, cursor back), at most ten times a second.
"""

from __future__ import annotations

import time
from typing import Final, TextIO

from registry.client.units import human_size

_REDRAW_INTERVAL: Final = 0.1
_BAR_WIDTH: Final = 50


def bar(done: int, total: int) -> str:
    """`[=====>    ]  12.3MB/45.6MB`, as Docker draws it."""
    filled = min(_BAR_WIDTH, _BAR_WIDTH * done // total) if total else _BAR_WIDTH
    arrow = ">" if filled < _BAR_WIDTH else "="
    shape = ("=" * max(filled - 1, 0) + arrow).ljust(_BAR_WIDTH) if filled else " " * _BAR_WIDTH
    return f"[{shape}]  {human_size(done)}/{human_size(total)}"


class Progress:
    def __init__(self, stream: TextIO, interactive: bool | None = None) -> None:
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self._rows: dict[str, int] = {}  # key -> the line it was first written on
        self._lines = 0
        self._drawn: dict[str, float] = {}

    def update(self, key: str, text: str, final: bool = False) -> None:
        """Set `key`'s line; intermediate (non-final) states are shown on a terminal only."""
        if not self.interactive:
            if final:
                self._write(f"{key}: {text}")
            return
        if key not in self._rows:
            self._rows[key] = self._lines
            self._write(f"{key}: {text}")
            self._drawn[key] = time.monotonic()
            return
        now = time.monotonic()
        if not final and now - self._drawn[key] < _REDRAW_INTERVAL:
            return
        self._drawn[key] = now
        up = self._lines - self._rows[key]
        self.stream.write(f"\x1b[{up}A\r\x1b[2K{key}: {text}\x1b[{up}B\r")
        self.stream.flush()

    def message(self, text: str) -> None:
        self._write(text)

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()
        self._lines += 1
