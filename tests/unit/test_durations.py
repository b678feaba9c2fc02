"""The one duration reader every setting and flag goes through: Go's syntax as Distribution writes it,
days and weeks as retention rules and `registry gc --grace` write them, and plain seconds."""

from __future__ import annotations

import pytest

from registry.settings.values import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),  # plain seconds
        ("1.5", 1.5),
        (" 300s ", 300.0),
        ("250ms", 0.25),
        ("10us", 1e-5),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        (".5m", 30.0),
        ("2d", 172800.0),
        ("2w", 1209600.0),
        ("1d12h", 129600.0),
        ("0s", 0.0),
    ],
)
def test_every_form_any_duration_setting_took(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-1h", "-5", "1y", "1h 30m", "5x", "nan", "inf", "1e13"])
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    assert parse_duration(text) is None
