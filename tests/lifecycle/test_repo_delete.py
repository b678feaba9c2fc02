"""`registry repo delete` against a real `registry serve` on SQLite and PostgreSQL: a repository's tags
and manifests go at once, the catalog forgets it, blobs another repository shares stay, and `registry
gc` then reclaims the rest."""

from __future__ import annotations

from pathlib import Path

from tests.lifecycle.conftest import push_image
from tests.support.oci import sha256
from tests.support.server import RegistryProcess
from tests.support.tools import run_registry


def test_repo_delete_forgets_the_repository_and_gc_takes_its_bytes(own_database: str, tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data"), *(["--database-url", own_database] if own_database else [])]
    server = RegistryProcess(tmp_path / "data", own_database).start()
    shared, doomed = b"shared layer", b"only in the deleted repository"
    try:
        with server.client() as client:
            push_image(client, "apps/gone", "1", "gone", layers=[shared, doomed])
            push_image(client, "apps/gone", "2", "gone2", layers=[shared])
            push_image(client, "apps/kept", "1", "kept", layers=[shared])
            deleted = run_registry("repo", "delete", "apps/gone", *data)  # beside the running server
            assert deleted.returncode == 0, deleted.stderr
            assert deleted.stdout.startswith("deleted repository apps/gone")
            assert client.get("/v2/_catalog").json()["repositories"] == ["apps/kept"]
            assert client.get("/v2/apps/gone/tags/list").status_code == 404
            assert client.get("/v2/apps/gone/manifests/1").status_code == 404
            assert client.get(f"/v2/apps/gone/blobs/{sha256(doomed)}").status_code == 404
            assert client.get(f"/v2/apps/kept/blobs/{sha256(shared)}").content == shared

            again = run_registry("repo", "delete", "apps/gone", *data)
            assert again.returncode == 2
            assert again.stderr == "registry: no repository apps/gone: `registry du` lists them\n"
    finally:
        server.stop()

    collected = run_registry("gc", "--grace", "0s", *data)
    assert collected.returncode == 0, collected.stderr
    # The doomed layer and the two configs of apps/gone; the shared layer stays for apps/kept.
    assert collected.stdout.startswith("removed 0 manifest(s) and 3 blob(s)")
    server = RegistryProcess(tmp_path / "data", own_database).start()
    try:
        with server.client() as client:
            assert client.get(f"/v2/apps/kept/blobs/{sha256(shared)}").content == shared
            push_image(client, "apps/gone", "1", "gone", layers=[shared, doomed])  # pushed again, it is back
            assert client.get("/v2/_catalog").json()["repositories"] == ["apps/gone", "apps/kept"]
    finally:
        server.stop()


def test_repo_delete_refuses_what_is_no_repository_name(tmp_path: Path) -> None:
    assert run_registry("migrate", "--create", "--data-dir", str(tmp_path)).returncode == 0
    result = run_registry("repo", "delete", "Not/A/Name", "--data-dir", str(tmp_path))
    assert (result.returncode, result.stderr) == (2, "registry: 'Not/A/Name' is not a repository name\n")
