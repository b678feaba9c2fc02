"""Which route of the table serves a request, asked before the router itself runs: by the gate (which
leaves it for the router and the access check) and by the observe layer (a metric's route label for
requests answered before the gate, such as a 431).

Starlette matches a path against each route's regular expression in turn; the manifest routes come
fourth, the blob routes twelfth. Each route's literal pieces (`/v2/`, `/manifests/`) must all occur
in a path it matches, and a route without parameters is the end of the path, so substring tests, far
cheaper than the expression, skip the routes that cannot match first."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

_PARAMETER = re.compile(r"{[^}]*}")


class RouteTable:
    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        # Each route's literal pieces, the most telling first (`/blobs/` before `/v2/`, which every API
        # path holds), and for a route without parameters its whole path, which a match ends with.
        self._routes = [
            (route, _pieces(route.path), "{" not in route.path)
            for route in routes
            if isinstance(route, Route)
        ]

    def match(self, scope: Scope) -> tuple[Route | None, dict[str, Any]]:
        """The route the router would serve, as Starlette's router chooses: the first full match, and
        the scope it adds (`endpoint`, `path_params`)."""
        path = scope["path"]
        for route, pieces, literal in self._routes:
            if not (path.endswith(route.path) if literal else _holds(path, pieces)):
                continue
            match, child = route.matches(scope)
            if match is Match.FULL:
                return route, child
        return None, {}


def _holds(path: str, pieces: list[str]) -> bool:
    """Whether every piece occurs in the path (a loop: `all()` over a generator cost twice as much)."""
    for piece in pieces:  # noqa: SIM110
        if piece not in path:
            return False
    return True


def _pieces(path: str) -> list[str]:
    """A route path's literal pieces, last first: the last is the most telling."""
    return [piece for piece in reversed(_PARAMETER.split(path)) if piece]
