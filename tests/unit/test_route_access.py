"""The route table's access declarations: every `/v2/` route says what its caller needs, nothing else
is guarded, and the needs derived from them are what Distribution asks for."""

from __future__ import annotations

from registry.api.routes import ROUTES
from registry.auth.needs import KNOWN_CALLER, Access, Need, need_of
from registry.auth.scopes import DELETE, PULL, PUSH, REPOSITORY, ResourceScope


def test_every_v2_route_declares_its_access_and_no_other_does() -> None:
    for route in ROUTES:
        assert (route.access is not Access.NONE) == route.path.startswith("/v2/"), route.path


def test_needs_follow_the_declaration() -> None:
    params = {"name": "team/app", "reference": "v1"}
    assert need_of(Access.PULL, params, b"") == Need("team/app", frozenset({PULL}))
    assert need_of(Access.PUSH, params, b"").event == ("push", "v1")
    assert need_of(Access.DELETE, params, b"") == Need(
        "team/app", frozenset({DELETE}), event=("delete", "v1")
    )
    assert need_of(Access.UPLOAD, params, b"") == Need("team/app", frozenset({PUSH}))
    assert need_of(Access.CATALOG, {}, b"").catalog
    assert need_of(Access.KNOWN, {}, b"") == KNOWN_CALLER
    assert need_of(Access.PULL, {"name": "Not/Valid"}, b"") == KNOWN_CALLER  # the handler says NAME_INVALID


def test_a_mount_asks_for_pull_on_its_source_or_the_rules() -> None:
    params = {"name": "team/app"}
    mount = need_of(Access.MOUNT, params, b"mount=sha256:ab&from=team/base")
    assert mount.optional == (ResourceScope(REPOSITORY, "team/base", frozenset({PULL})),)
    assert not mount.by_rules
    assert need_of(Access.MOUNT, params, b"mount=sha256:ab").by_rules
    plain = need_of(Access.MOUNT, params, b"")
    assert plain == Need("team/app", frozenset({PUSH}))
