"""Hypothesis settings shared by the property tests: bounded, and without deadlines, so that they stay
quick and do not flake on a loaded machine."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

PROPERTIES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
