"""`registry du` and `GET /admin/usage` against a real `registry serve` on SQLite and PostgreSQL: bytes
per repository and in total with shared blobs once, the same answer from both, and who may ask."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.lifecycle.conftest import push_image
from tests.support.oci import push_blob
from tests.support.server import RegistryProcess
from tests.support.tools import run_registry


def _data_args(server: RegistryProcess) -> list[str]:
    return [
        "--data-dir",
        str(server.data_dir),
        *(["--database-url", server.database_url] if server.database_url else []),
    ]


def test_du_and_the_admin_endpoint_count_shared_blobs_once(own_database: str, tmp_path: Path) -> None:
    # A database of its own: the totals are of the whole index.
    server = RegistryProcess(tmp_path / "data", own_database).start()
    try:
        with server.client() as client:
            shared, only_a, only_b = b"s" * 3000, b"a" * 1000, b"b" * 2000
            push_image(client, "team/a", "1", "a", layers=[shared, only_a])
            push_image(client, "team/b", "1", "b", layers=[shared, only_b])
            push_blob(client, "team/c", b"u" * 500)  # uploaded, referenced by no manifest
            config = len(b'{"architecture": "amd64", "os": "linux", "name": "a"}')
            answer = client.get("/admin/usage").json()
            scoped = client.get("/admin/usage", params={"repository": "team/b"}).json()
        assert answer == {
            "repositories": [
                {"name": "team/a", "blobs": 3, "bytes": config + 4000},
                {"name": "team/b", "blobs": 3, "bytes": config + 5000},
                {"name": "team/c", "blobs": 0, "bytes": 0},
            ],
            "total": {"blobs": 5, "bytes": 2 * config + 6000},
            "unreferenced": {"bytes": 500},
        }
        assert scoped == {
            "repositories": [{"name": "team/b", "blobs": 3, "bytes": config + 5000}],
            "total": {"blobs": 3, "bytes": config + 5000},
        }

        listed = run_registry("du", "--json", *_data_args(server))
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == answer
        text = run_registry("du", "team/*", *_data_args(server))
        assert text.returncode == 0, text.stderr
        lines = [line.split() for line in text.stdout.splitlines()]
        assert lines[0] == ["REPOSITORY", "BLOBS", "SIZE", "BYTES"]
        assert lines[1][0] == "team/a" and lines[1][-1] == str(config + 4000)
        assert lines[-1][:4] == ["TOTAL", "(shared", "blobs", "once)"]
        assert lines[-1][-1] == str(2 * config + 6000)
    finally:
        server.stop()


def test_the_admin_endpoint_wants_an_administrator(own_database: str, tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data"), *(["--database-url", own_database] if own_database else [])]
    assert run_registry("migrate", "--create", *data).returncode == 0
    for name, groups in (("root", ["--group", "admin"]), ("dev", [])):
        added = run_registry(
            "user", "add", name, "--password-stdin", *groups, *data, stdin=f"{name}-password-1\n"
        )
        assert added.returncode == 0, added.stderr
    server = RegistryProcess(tmp_path / "data", own_database, {"REGISTRY_AUTH_MODE": "basic"}).start()
    try:
        for auth, status, code in (
            (None, 401, "UNAUTHORIZED"),
            (("root", "wrong-password"), 401, "UNAUTHORIZED"),
            (("dev", "dev-password-1"), 403, "DENIED"),
        ):
            response = httpx.get(server.url + "/admin/usage", auth=auth)
            assert response.status_code == status
            assert [e["code"] for e in response.json()["errors"]] == [code]
            if status == 401:
                assert response.headers["WWW-Authenticate"].startswith("Basic ")
        response = httpx.get(server.url + "/admin/usage", auth=("root", "root-password-1"))
        assert response.status_code == 200
        assert response.json()["total"] == {"blobs": 0, "bytes": 0}
    finally:
        server.stop()

    # Token mode: a token the registry issued names the user, whose groups decide.
    server = RegistryProcess(tmp_path / "data", own_database, {"REGISTRY_AUTH_MODE": "token"}).start()
    try:
        for name, status in (("root", 200), ("dev", 403)):
            issued = httpx.get(
                server.url + "/auth/token", params={"service": "registry"}, auth=(name, f"{name}-password-1")
            )
            assert issued.status_code == 200, issued.text
            bearer = {"Authorization": "Bearer " + issued.json()["token"]}
            assert httpx.get(server.url + "/admin/usage", headers=bearer).status_code == status
        forged = {"Authorization": "Bearer not.a.token"}
        assert httpx.get(server.url + "/admin/usage", headers=forged).status_code == 401
    finally:
        server.stop()
