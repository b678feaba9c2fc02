"""Which route of the table serves a request, asked before the router itself runs: by the gate (which
leaves it for the router and the access check) and by the observe layer (a metric's route label for
requests answered before the gate, such as a 431)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope


def matching_route(routes: Sequence[BaseRoute], scope: Scope) -> tuple[Route | None, dict[str, Any]]:
    """The route the router would serve, as Starlette's router chooses: the first full match, and the
    scope it adds (`endpoint`, `path_params`)."""
    for route in routes:
        if isinstance(route, Route):
            match, child = route.matches(scope)
            if match is Match.FULL:
                return route, child
    return None, {}
