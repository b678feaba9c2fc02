"""The OpenAPI description against the code it describes: the route table, the error codes, the grammars."""

from __future__ import annotations

import re

import pytest
import schemathesis

from registry.api.openapi import describe
from registry.api.routes import ROUTES
from registry.errors import ErrorCode
from registry.types import is_valid_name, valid_tag

# Starlette adds HEAD to every GET route; the description lists HEAD where it means something of its own.
_IMPLICIT = {"HEAD"}


def _served() -> set[tuple[str, str]]:
    """(path, method) for every route, in OpenAPI's path syntax: `{name:path}` is `{name}` there."""
    return {
        (re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method)
        for route in ROUTES
        for method in route.methods or ()
    }


def _described() -> set[tuple[str, str]]:
    methods = {"get", "head", "put", "post", "patch", "delete"}
    return {
        (path, method.upper())
        for path, item in describe()["paths"].items()
        for method in item
        if method in methods
    }


def test_the_description_is_valid_openapi() -> None:
    schemathesis.openapi.from_dict(describe()).validate()


def test_every_route_is_described_and_every_description_served() -> None:
    served, described = _served(), _described()
    assert {entry for entry in served if entry[1] not in _IMPLICIT} <= described
    assert described <= served


def test_error_codes_are_the_registry_s() -> None:
    schemas = describe()["components"]["schemas"]
    assert schemas["ErrorCode"]["enum"] == [code.name for code in ErrorCode]
    item = schemas["Errors"]["properties"]["errors"]["items"]
    assert item["properties"]["code"] == {"$ref": "#/components/schemas/ErrorCode"}
    assert item["required"] == ["code", "message", "detail"]


@pytest.mark.parametrize(
    "name", ["library/busybox", "a/b/c", "a__b", "a--b.c_d", "A", "a/", "/a", "a//b", "a_", "a___b", "a b"]
)
def test_name_pattern_agrees_with_the_code(name: str) -> None:
    pattern = describe()["components"]["schemas"]["RepositoryName"]["pattern"]
    assert (re.search(pattern, name) is not None) == is_valid_name(name)


@pytest.mark.parametrize("tag", ["latest", "_x", "1.0-rc", ".x", "-x", "a" * 128, "a" * 129, "a:b"])
def test_tag_pattern_agrees_with_the_code(tag: str) -> None:
    pattern = describe()["components"]["schemas"]["Tag"]["pattern"]
    assert (re.search(pattern, tag) is not None) == valid_tag(tag)
