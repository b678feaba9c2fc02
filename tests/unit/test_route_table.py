"""The gate's route table picks the route starlette's router would: the first full match, for any path
and method (its substring tests only skip routes that cannot match)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import Match

from registry.api.matching import RouteTable
from registry.api.routes import ROUTES
from tests.support.asgi import http_scope

DIGEST = "sha256:" + "ab" * 32
PATHS = [
    "/v2/",
    "/v2",
    "/v2/_catalog",
    "/v2/library/nginx/manifests/latest",
    f"/v2/library/nginx/manifests/{DIGEST}",
    "/v2/a/blobs/b/manifests/c",  # a repository named like a route's piece
    "/v2/manifests/blobs/uploads/manifests/x",
    f"/v2/team/app/blobs/{DIGEST}",
    "/v2/team/app/blobs/uploads/",
    "/v2/team/app/blobs/uploads/0f0e0d0c-0b0a-4908-8706-050403020100",
    "/v2/team/app/tags/list",
    f"/v2/team/app/referrers/{DIGEST}",
    "/v2/team/app/tags/list/more",
    "/healthz",
    "/readyz",
    "/metrics",
    "/prefix/metrics",
    "/admin/usage",
    "/nothing/here",
]
PIECES = ["v2", "blobs", "uploads", "manifests", "tags", "list", "x", DIGEST, ""]
METHODS = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"]


def _starlette(scope: dict) -> object:
    """The route starlette's router serves: the first full match."""
    for route in ROUTES:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def _agree(path: str, method: str, root_path: str = "") -> None:
    scope = http_scope(method, root_path + path)
    scope["root_path"] = root_path
    route, child = RouteTable(ROUTES).match(scope)
    assert route is _starlette(scope), (method, root_path + path)
    if route is not None:
        assert child["endpoint"] is route.endpoint


def test_known_paths_and_methods() -> None:
    for path in PATHS:
        for method in METHODS:
            _agree(path, method)
            _agree(path, method, root_path="/registry")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["v2", "blobs", "uploads", "manifests", "tags", "list", "x", DIGEST, ""]), max_size=7
    ),
    st.sampled_from(METHODS),
)
def test_any_path_of_the_routes_pieces(parts: list[str], method: str) -> None:
    _agree("/" + "/".join(parts), method)
