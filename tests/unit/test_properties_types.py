"""Properties of the grammars every request passes through: digests, repository names, tags, media types."""

from __future__ import annotations

import posixpath

from hypothesis import given
from hypothesis import strategies as st

from registry.errors import ErrorCode, RegistryError
from registry.types import (
    DIGEST_RE,
    MAX_NAME_LENGTH,
    MEDIA_TYPE_RE,
    TAG_RE,
    Digest,
    is_digest,
    is_media_type,
    is_valid_name,
    valid_tag,
    validate_name,
)
from tests.support.properties import PROPERTIES

# Arbitrary text, weighted towards what the grammars are made of, plus what attacks are made of.
GRAMMAR = "abcfsh0123456789:._-+=/AZ"
HOSTILE = "\x00\n /\\%.\u0660\u00b2\ufb01\u212a\u0131"
texts = st.text(st.sampled_from(GRAMMAR + HOSTILE), max_size=300) | st.text(max_size=80)
_LENGTHS = {"sha256": 64, "sha512": 128}
digests = st.sampled_from(sorted(_LENGTHS)).flatmap(
    lambda algorithm: st.text(
        "0123456789abcdef", min_size=_LENGTHS[algorithm], max_size=_LENGTHS[algorithm]
    ).map(lambda hexpart: Digest(algorithm, hexpart))
)
# Names near the grammar's edges: separators doubled or at the ends, and lengths around the limit.
names = st.text("ab9._-/", max_size=280) | st.lists(
    st.from_regex(r"[a-z0-9]{1,8}(?:(?:[._]|__|-+)[a-z0-9]{1,8})?", fullmatch=True), min_size=1, max_size=40
).map("/".join)


@PROPERTIES
@given(digests)
def test_a_digest_round_trips_through_its_text(digest: Digest) -> None:
    assert Digest.parse(str(digest)) == digest
    assert is_digest(str(digest))


@PROPERTIES
@given(st.binary(max_size=64), st.sampled_from(["sha256", "sha512"]))
def test_the_digest_of_content_parses(data: bytes, algorithm: str) -> None:
    digest = Digest.of(data, algorithm)
    assert Digest.parse(str(digest)) == digest


@PROPERTIES
@given(texts | st.from_regex(DIGEST_RE, fullmatch=True))
def test_any_text_is_a_digest_or_a_400(text: str) -> None:
    try:
        digest = Digest.parse(text)
    except RegistryError as error:
        assert error.code in (ErrorCode.DIGEST_INVALID, ErrorCode.UNSUPPORTED)
        assert error.status == 400
    else:
        assert str(digest) == text
        assert text.isascii() and "/" not in text


@PROPERTIES
@given(texts | names)
def test_an_accepted_name_is_short_and_safe_as_a_path(name: str) -> None:
    if not is_valid_name(name):
        try:
            validate_name(name)
        except RegistryError as error:
            assert error.code is ErrorCode.NAME_INVALID
        else:
            raise AssertionError(f"validate_name accepted {name!r}")
        return
    assert validate_name(name) == name
    assert len(name) <= MAX_NAME_LENGTH
    assert name.isascii() and name == name.lower() and name.isprintable()
    assert posixpath.normpath(name) == name and not name.startswith("/")
    assert all(part not in ("", ".", "..") and part[0].isalnum() for part in name.split("/"))
    assert ":" not in name and "\\" not in name


@PROPERTIES
@given(texts | st.from_regex(TAG_RE, fullmatch=True))
def test_an_accepted_tag_is_never_a_digest_or_a_path(tag: str) -> None:
    if valid_tag(tag):
        assert 1 <= len(tag) <= 128 and tag.isascii()
        assert not is_digest(tag) and "/" not in tag and tag not in (".", "..")
        assert tag[0] not in ".-"


@PROPERTIES
@given(texts | st.from_regex(MEDIA_TYPE_RE, fullmatch=True))
def test_an_accepted_media_type_fits_the_index(text: str) -> None:
    if is_media_type(text):
        assert len(text) <= 255 and text.isascii() and text.isprintable()
        assert text.count("/") == 1 and " " not in text
