"""The access log's escaping of client-chosen text (registry/observe/access.py), for any text: no line
break, quote or control character gets through, and the escapes undo to exactly what was sent."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from registry.observe.access import _ESCAPES, _escaped

_ESCAPE = re.compile(r"\\x([0-9a-f]{2})")


@given(st.text())
def test_escaped_text_is_safe_and_undoes_to_the_original(text: str) -> None:
    shown = _escaped(text)
    if not text:
        assert shown == "-"
        return
    assert all(ord(char) not in _ESCAPES for char in _ESCAPE.sub("", shown))
    assert _ESCAPE.sub(lambda escape: chr(int(escape.group(1), 16)), shown) == text


@given(st.text(alphabet=st.characters(codec="ascii")))
def test_ascii_text_escapes_as_before(text: str) -> None:
    assert _escaped(text) == (text.translate(_ESCAPES) or "-")
