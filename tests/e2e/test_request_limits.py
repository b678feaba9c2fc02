"""Limits on what one client may ask for, on a real server: open upload sessions per repository, the
per-client request rate, and settings that make no sense."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.oci import push_blob
from tests.support.server import RegistryProcess

pytestmark = pytest.mark.both_servers


def _codes(response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]


def test_upload_sessions_per_repository_are_limited(make_server) -> None:
    server: RegistryProcess = make_server(REGISTRY_LIMITS_MAX_UPLOADS_PER_REPOSITORY="3")
    with server.client() as client:
        locations = [client.post("/v2/busy/repo/blobs/uploads/").headers["Location"] for _ in range(3)]
        refused = client.post("/v2/busy/repo/blobs/uploads/")
        assert refused.status_code == 429 and _codes(refused) == ["TOOMANYREQUESTS"]
        assert "3 open upload sessions" in refused.json()["errors"][0]["message"]
        # Another repository has sessions of its own; a finished or cancelled session frees its place.
        assert client.post("/v2/quiet/repo/blobs/uploads/").status_code == 202
        assert client.delete(locations[0]).status_code == 204
        assert client.post("/v2/busy/repo/blobs/uploads/").status_code == 202
        assert client.post("/v2/busy/repo/blobs/uploads/").status_code == 429


def test_requests_per_client_are_rate_limited(make_server) -> None:
    # One token every 10 s: nothing refills while the test runs, whatever the machine's load.
    server: RegistryProcess = make_server(
        REGISTRY_LIMITS_RATE="0.1", REGISTRY_LIMITS_BURST="5", REGISTRY_SERVER_TRUSTED_PROXIES="127.0.0.1"
    )
    with server.client() as client:
        # The readiness check spent one of this address's five.
        answers = [client.get("/v2/") for _ in range(6)]
        assert [answer.status_code for answer in answers] == [200] * 4 + [429] * 2
        refused = answers[-1]
        assert _codes(refused) == ["TOOMANYREQUESTS"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 10
        assert refused.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        # Behind a trusted proxy, each forwarded client has a bucket of its own.
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        assert [client.get("/v2/", headers=forwarded).status_code for _ in range(6)] == [200] * 5 + [429]
        other = {"X-Forwarded-For": "203.0.113.8"}
        assert client.get("/v2/", headers=other).status_code == 200


def test_repeated_pulls_are_rate_limited_too(make_server) -> None:
    """A pull the registry could answer from memory (registry/api/kept.py) still spends the client's
    tokens: with a rate limit, none is."""
    server: RegistryProcess = make_server(REGISTRY_LIMITS_RATE="0.1", REGISTRY_LIMITS_BURST="5")
    with server.client() as client:
        # The readiness check spent one of five, the push one more.
        blob = f"/v2/limited/repo/blobs/{push_blob(client, 'limited/repo', b'pulled often')}"
        assert [client.head(blob).status_code for _ in range(4)] == [200] * 3 + [429]


def test_rate_limit_is_off_by_default(make_server) -> None:
    server: RegistryProcess = make_server()
    with server.client() as client:
        assert {client.get("/v2/").status_code for _ in range(200)} == {200}


def test_a_limit_that_makes_no_sense_is_one_line(tmp_path: Path) -> None:
    for key, value in (("limits.body_read_timeout", "0"), ("limits.max_uploads_per_repository", "-1")):
        result = subprocess.run(
            [sys.executable, "-m", "registry", "serve", "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "REGISTRY_" + key.replace(".", "_").upper(): value},
        )
        assert result.returncode == 2
        assert result.stderr.strip().count("\n") == 0 and key in result.stderr, result.stderr
