"""Properties of what names a resource in requests and tokens: token scopes, and the client's image
references. Any text parses or is refused with the parser's own error; what parses round-trips."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from registry.auth.scopes import ResourceScope, access_from_claim, parse_scope, parse_scopes
from registry.client.reference import InvalidReference, normalize, parse
from tests.support.properties import PROPERTIES

scope_texts = st.text(
    st.sampled_from("repository()registry:catalog/a.b-c:5000,pull push*delete \t"), max_size=60
)
reference_texts = st.builds(
    "{}{}{}{}".format,
    st.sampled_from(
        ["", "docker.io/", "index.docker.io/", "localhost:5000/", "127.0.0.1:5000/", "Host/", "[::1]:5/"]
    ),
    st.text("abc09._-/", min_size=1, max_size=30),
    st.sampled_from(["", ":v1", ":", ":-x", ":" + "t" * 129]),
    st.sampled_from(["", "@sha256:" + "a" * 64, "@sha256:bad", "@md5:00"]),
) | st.text(max_size=40)


@PROPERTIES
@given(scope_texts | st.text(max_size=40))
def test_a_scope_parses_and_round_trips_or_is_a_value_error(text: str) -> None:
    try:
        scope = parse_scope(text)
    except ValueError:
        return
    assert isinstance(scope, ResourceScope) and scope.name
    assert parse_scope(str(scope)) == scope


@PROPERTIES
@given(st.lists(scope_texts, max_size=4))
def test_scopes_merge_to_one_per_resource(values: list[str]) -> None:
    try:
        scopes = parse_scopes(values)
    except ValueError:
        return
    assert len({scope.resource for scope in scopes}) == len(scopes)
    assert access_from_claim([scope.claim() for scope in scopes]) == {s.resource: s.actions for s in scopes}


@PROPERTIES
@given(reference_texts)
def test_a_reference_normalizes_once_or_is_invalid(text: str) -> None:
    try:
        reference = parse(text)
    except InvalidReference:
        return
    assert parse(str(reference)) == reference
    assert normalize(normalize(text)) == normalize(text)
    assert len(reference.repository) <= 255
