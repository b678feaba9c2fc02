"""Which route of the table serves a request, asked before the router itself runs: by the gate (which
leaves it for the router and the access check) and by the observe layer (a metric's route label for
requests answered before the gate, such as a 431).

Starlette matches a path against each route's regular expression in turn; the manifest routes come
fourth. Each route's literal pieces (`/v2/`, `/manifests/`) must all occur in a path it matches, so a
substring test, far cheaper than the expression, skips the routes that cannot match first."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

_PARAMETER = re.compile(r"{[^}]*}")


class RouteTable:
    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self._routes = [
            (route, [piece for piece in _PARAMETER.split(route.path) if piece])
            for route in routes
            if isinstance(route, Route)
        ]

    def match(self, scope: Scope) -> tuple[Route | None, dict[str, Any]]:
        """The route the router would serve, as Starlette's router chooses: the first full match, and
        the scope it adds (`endpoint`, `path_params`)."""
        path = scope["path"]
        for route, pieces in self._routes:
            if all(piece in path for piece in pieces):
                match, child = route.matches(scope)
                if match is Match.FULL:
                    return route, child
        return None, {}
