"""`GET /v2/`, unknown routes, and the error format every failure uses."""

from __future__ import annotations

import httpx
import pytest

from tests.support.oci import errors

pytestmark = pytest.mark.both_servers


def test_version_check(client: httpx.Client) -> None:
    response = client.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert response.json() == {}


def test_errors_carry_the_version_header_and_spec_body(client: httpx.Client) -> None:
    response = client.get("/v2/no/such/repo/tags/list")
    assert response.status_code == 404
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert response.headers["Content-Type"].startswith("application/json")
    assert errors(response) == ["NAME_UNKNOWN"]


def test_unknown_route_is_a_spec_error(client: httpx.Client) -> None:
    response = client.get("/v2/foo/bar/nonsense")
    assert response.status_code == 404
    assert errors(response) == ["NAME_UNKNOWN"]


def test_wrong_method_is_unsupported(client: httpx.Client) -> None:
    response = client.post("/v2/_catalog")
    assert response.status_code == 405
    assert errors(response) == ["UNSUPPORTED"]
