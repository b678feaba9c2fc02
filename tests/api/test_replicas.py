"""The read path under several writers: two `registry serve` processes on one index and one blob store
(as two workers of one server, or two replicas behind a load balancer). What one acknowledged, the other
answers from its very next request: a tag moved, a manifest or blob deleted. A process keeps SQLite's
answers only while the database's WAL header is unchanged (registry/index/reads.py), so there is
nothing to wait for."""

from __future__ import annotations

import httpx

from tests.support.oci import OCI_MANIFEST, image_manifest, push_blob, put_manifest, sha256


def _digest_of(client: httpx.Client, repo: str, reference: str) -> int | str:
    """The digest a GET of `reference` answers, or its status when it is not a 200."""
    response = client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    return response.headers["Docker-Content-Digest"] if response.status_code == 200 else response.status_code


def test_each_replica_sees_what_the_other_acknowledged(make_server, tmp_path, repo: str) -> None:
    first = make_server(tmp_path / "shared")
    second = make_server(tmp_path / "shared")
    with first.client() as one, second.client() as two:
        old = image_manifest(one, repo, layers=[b"layer one"])
        new = image_manifest(one, repo, layers=[b"layer two"])
        assert put_manifest(one, repo, "v1", old).status_code == 201
        assert _digest_of(two, repo, "v1") == sha256(old)  # read once: any cache would now hold it

        assert put_manifest(two, repo, "v1", new).status_code == 201
        assert _digest_of(one, repo, "v1") == sha256(new)
        assert _digest_of(two, repo, "v1") == sha256(new)

        assert _digest_of(two, repo, sha256(old)) == sha256(old)
        assert one.delete(f"/v2/{repo}/manifests/{sha256(old)}").status_code == 202
        assert _digest_of(two, repo, sha256(old)) == 404
        assert two.head(f"/v2/{repo}/manifests/{sha256(old)}").status_code == 404

        layer = push_blob(one, repo, b"a blob on its own")
        assert two.head(f"/v2/{repo}/blobs/{layer}").status_code == 200
        assert one.delete(f"/v2/{repo}/blobs/{layer}").status_code == 202
        assert two.head(f"/v2/{repo}/blobs/{layer}").status_code == 404
        assert two.get(f"/v2/{repo}/blobs/{layer}").status_code == 404

        assert one.delete(f"/v2/{repo}/manifests/v1").status_code == 202
        assert _digest_of(two, repo, "v1") == 404
