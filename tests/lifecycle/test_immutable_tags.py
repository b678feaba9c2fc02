"""Immutable tags against a real `registry serve` on SQLite and PostgreSQL: pushed once, pushed again
with the same digest, never moved nor deleted (403 DENIED naming the rule, nothing changed); skopeo
gets the refusal too."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.lifecycle.conftest import push_image, rules
from tests.support.images import build_busybox_layout
from tests.support.oci import errors, image_manifest, put_manifest, sha256


@pytest.fixture
def guarded(make_server, repo: str):
    """A server on which `v<digits>` tags of `repo` are immutable."""
    return make_server(**rules(immutable_tags=[{"repositories": repo, "tags": "v[0-9]+"}]))


def _refused(response: httpx.Response, repo: str, tag: str) -> None:
    assert response.status_code == 403, response.text
    assert errors(response) == ["DENIED"]
    detail = response.json()["errors"][0]["detail"]
    assert detail["tag"] == tag
    assert detail["rule"] == {"repositories": repo, "tags": "v[0-9]+"}


def test_an_immutable_tag_is_pushed_once_and_never_moved(guarded, repo: str) -> None:
    with guarded.client() as client:
        first = push_image(client, repo, "v1", "first")
        assert push_image(client, repo, "v1", "first") == first  # the same digest again: a retried push
        body = image_manifest(client, repo, layers=[b"other"])
        _refused(put_manifest(client, repo, "v1", body), repo, "v1")
        _refused(
            client.put(
                f"/v2/{repo}/manifests/{sha256(body)}",
                params={"tag": ["v1", "latest"]},
                content=body,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            ),
            repo,
            "v1",
        )
        # Nothing changed: v1 is where it was, the refused manifest and its other tag are not there.
        assert client.get(f"/v2/{repo}/manifests/v1").headers["Docker-Content-Digest"] == first
        assert client.get(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 404
        assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
        # Tags the rule does not name move freely.
        assert put_manifest(client, repo, "latest", body).status_code == 201
        assert (
            put_manifest(client, repo, "latest", client.get(f"/v2/{repo}/manifests/v1").content).status_code
            == 201
        )


def test_an_immutable_tag_and_its_manifest_cannot_be_deleted(guarded, repo: str) -> None:
    with guarded.client() as client:
        digest = push_image(client, repo, "v2", "kept")
        _refused(client.delete(f"/v2/{repo}/manifests/v2"), repo, "v2")
        response = client.delete(f"/v2/{repo}/manifests/{digest}")
        _refused(response, repo, "v2")
        assert response.json()["errors"][0]["detail"]["digest"] == digest
        assert client.get(f"/v2/{repo}/manifests/v2").headers["Docker-Content-Digest"] == digest
        # A manifest with only mutable tags still goes.
        other = push_image(client, repo, "dev", "mutable")
        assert client.delete(f"/v2/{repo}/manifests/{other}").status_code == 202


@pytest.mark.clients
def test_skopeo_cannot_move_an_immutable_tag(
    guarded, repo: str, busybox: Path, skopeo, tmp_path: Path
) -> None:
    target = f"docker://{guarded.host}/{repo}:v1"
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{busybox}:1", target)
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{busybox}:1", target)  # same image
    other = build_busybox_layout(tmp_path / "other", tag="1", extra_files={"/etc/motd": "another image\n"})
    moved = skopeo(
        "copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{other}:1", target, check=False
    )
    assert moved.returncode != 0
    assert "immutable" in moved.stderr
