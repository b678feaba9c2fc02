"""Read-only mode (maintenance): pulls are served, every change under /v2/ is refused."""

from __future__ import annotations

from pathlib import Path

from tests.support.oci import errors, image_manifest, put_manifest, sha256


def test_read_only_serves_pulls_and_refuses_changes(make_server, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = make_server(data_dir)
    with server.client() as client:
        body = image_manifest(client, "ro/x")
        put_manifest(client, "ro/x", "v1", body)
    server.stop()

    server = make_server(data_dir, REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED="true")
    with server.client() as client:
        assert client.get("/v2/ro/x/manifests/v1").content == body
        assert client.get("/v2/ro/x/tags/list").json()["tags"] == ["v1"]
        for response in (
            client.post("/v2/ro/x/blobs/uploads/"),
            put_manifest(client, "ro/x", "v2", body),
            client.delete(f"/v2/ro/x/manifests/{sha256(body)}"),
        ):
            assert response.status_code == 405
            assert errors(response) == ["UNSUPPORTED"]
            assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        assert client.get("/v2/ro/x/tags/list").json()["tags"] == ["v1"]
