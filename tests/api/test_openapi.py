"""`GET /openapi.json`: the served description is the package's, completed from the code."""

from __future__ import annotations

import httpx

from registry.api.openapi import OPENAPI_PATH, describe


def test_openapi_description_is_served(client: httpx.Client) -> None:
    response = client.get(OPENAPI_PATH)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == describe()
