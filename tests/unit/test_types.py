"""Digest and name grammars: what reaches the store and the index is already safe."""

from __future__ import annotations

import pytest

from registry.errors import ErrorCode, RegistryError
from registry.types import Digest, is_valid_name, valid_tag


def test_digest_parse_and_format() -> None:
    digest = Digest.parse("sha256:" + "a" * 64)
    assert (digest.algorithm, digest.hex, str(digest)) == ("sha256", "a" * 64, "sha256:" + "a" * 64)
    assert Digest.parse("sha512:" + "0" * 128).algorithm == "sha512"
    assert Digest.of(b"") == Digest.parse(
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("sha256:totallywrong", ErrorCode.DIGEST_INVALID),
        ("sha256:" + "A" * 64, ErrorCode.DIGEST_INVALID),
        ("sha256:" + "a" * 63, ErrorCode.DIGEST_INVALID),
        ("sha256:../../" + "a" * 58, ErrorCode.DIGEST_INVALID),
        ("nocolon", ErrorCode.DIGEST_INVALID),
        ("md5:" + "a" * 32, ErrorCode.UNSUPPORTED),
    ],
)
def test_bad_digests(text: str, code: ErrorCode) -> None:
    with pytest.raises(RegistryError) as raised:
        Digest.parse(text)
    assert raised.value.code is code


@pytest.mark.parametrize("name", ["a", "library/nginx", "a.b_c__d-e---f/g", "/".join(["x"] * 30)])
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)


@pytest.mark.parametrize(
    "name", ["", "A", "a/../b", "../a", "a/./b", "/a", "a/", "a//b", "a_", "-a", "a" * 256]
)
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)


def test_tags() -> None:
    assert valid_tag("latest") and valid_tag("v1.0_rc-2") and valid_tag("_x") and valid_tag("a" * 128)
    assert not any(valid_tag(t) for t in (".INVALID_MANIFEST_NAME", "-x", "a" * 129, "a/b", "a:b", ""))
