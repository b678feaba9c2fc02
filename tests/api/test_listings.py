"""Tag lists, the catalog and referrers: ordering, pagination, filters."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.oci import (
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    errors,
    image_manifest,
    push_blob,
    put_manifest,
    sha256,
)

pytestmark = pytest.mark.both_servers


def test_tags_sorted_and_paginated(client: httpx.Client, repo: str) -> None:
    body = image_manifest(client, repo)
    names = ["b", "a", "C", "10", "9", "latest", "v1.0"]
    for tag in names:
        assert put_manifest(client, repo, tag, body).status_code == 201
    everything = client.get(f"/v2/{repo}/tags/list").json()
    assert everything == {"name": repo, "tags": sorted(names)}
    assert "Link" not in client.get(f"/v2/{repo}/tags/list").headers

    seen: list[str] = []
    url = f"/v2/{repo}/tags/list?n=3"
    while url:
        response = client.get(url)
        assert response.status_code == 200
        page = response.json()["tags"]
        assert len(page) <= 3
        seen += page
        link = response.headers.get("Link")
        url = link[1 : link.index(">")] if link else ""
        if link:
            assert link.endswith('rel="next"')
    assert seen == sorted(names)

    after = client.get(f"/v2/{repo}/tags/list", params={"n": 2, "last": "b"}).json()["tags"]
    assert after == ["latest", "v1.0"]
    assert client.get(f"/v2/{repo}/tags/list", params={"n": 0}).json()["tags"] == []


def test_tags_without_n_is_the_whole_list(client: httpx.Client, repo: str) -> None:
    """The spec: without `n` the answer is every tag (clients such as regctl read one page only), even past
    the page size the index is read in."""
    body = image_manifest(client, repo)
    digest = sha256(body)
    assert put_manifest(client, repo, digest, body).status_code == 201
    names = [f"t{i:05d}" for i in range(2500)]
    for start in range(0, len(names), 100):
        batch = names[start : start + 100]
        response = client.put(
            f"/v2/{repo}/manifests/{digest}",
            params=[("tag", tag) for tag in batch],
            content=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert response.status_code == 201, response.text
    response = client.get(f"/v2/{repo}/tags/list")
    assert response.status_code == 200
    assert "Link" not in response.headers
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"name": repo, "tags": names}
    after = client.get(f"/v2/{repo}/tags/list", params={"last": names[999]})
    assert after.json()["tags"] == names[1000:] and "Link" not in after.headers
    page = client.get(f"/v2/{repo}/tags/list", params={"n": 1500})
    assert page.json()["tags"] == names[:1500]
    assert page.headers["Link"] == f'</v2/{repo}/tags/list?n=1500&last={names[1499]}>; rel="next"'


def test_bad_page_size(client: httpx.Client, repo: str) -> None:
    put_manifest(client, repo, "x", image_manifest(client, repo))
    for bad in ("-1", "abc"):
        response = client.get(f"/v2/{repo}/tags/list", params={"n": bad})
        assert response.status_code == 400
        assert errors(response) == ["PAGINATION_NUMBER_INVALID"]


def test_catalog_lists_repositories_in_order_with_pagination(client: httpx.Client, repo: str) -> None:
    names = [f"{repo}/c{i}" for i in (3, 1, 2)]
    for name in names:
        push_blob(client, name, b"x")
    catalog = client.get("/v2/_catalog").json()["repositories"]
    assert catalog == sorted(catalog)
    assert set(names) <= set(catalog)

    first = client.get("/v2/_catalog", params={"n": 1, "last": f"{repo}/c1"})
    assert first.json()["repositories"] == [f"{repo}/c2"]
    assert first.headers["Link"].startswith("</v2/_catalog?n=1&last=")


def _referrer(
    client: httpx.Client, repo: str, subject: bytes, artifact_type: str, tag: str | None = None
) -> bytes:
    empty = b"{}"
    push_blob(client, repo, empty)
    payload = artifact_type.encode()
    push_blob(client, repo, payload)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": descriptor(empty, OCI_EMPTY),
            "layers": [descriptor(payload, "application/octet-stream")],
            "subject": descriptor(subject, OCI_MANIFEST),
            "annotations": {"org.example.kind": artifact_type},
        }
    ).encode()
    assert put_manifest(client, repo, tag or sha256(body), body).status_code == 201
    return body


def test_referrers_with_filter(client: httpx.Client, repo: str) -> None:
    subject = image_manifest(client, repo)
    put_manifest(client, repo, "subject", subject)
    signature = _referrer(client, repo, subject, "application/vnd.example.signature")
    sbom = _referrer(client, repo, subject, "application/vnd.example.sbom")

    response = client.get(f"/v2/{repo}/referrers/{sha256(subject)}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in response.headers
    index = response.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    by_digest = {d["digest"]: d for d in index["manifests"]}
    assert set(by_digest) == {sha256(signature), sha256(sbom)}
    entry = by_digest[sha256(sbom)]
    assert entry == {
        "mediaType": OCI_MANIFEST,
        "digest": sha256(sbom),
        "size": len(sbom),
        "artifactType": "application/vnd.example.sbom",
        "annotations": {"org.example.kind": "application/vnd.example.sbom"},
    }

    filtered = client.get(
        f"/v2/{repo}/referrers/{sha256(subject)}", params={"artifactType": "application/vnd.example.sbom"}
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in filtered.json()["manifests"]] == [sha256(sbom)]

    # Deleting a referrer removes it from the list.
    client.delete(f"/v2/{repo}/manifests/{sha256(sbom)}")
    remaining = client.get(f"/v2/{repo}/referrers/{sha256(subject)}").json()["manifests"]
    assert [d["digest"] for d in remaining] == [sha256(signature)]


def test_referrers_fall_back_to_config_media_type(client: httpx.Client, repo: str) -> None:
    subject = image_manifest(client, repo)
    put_manifest(client, repo, "s", subject)
    config = b'{"kind": "config-typed"}'
    body = image_manifest(client, repo, config=config, subject=descriptor(subject, OCI_MANIFEST))
    body = body.replace(b"application/vnd.oci.image.config.v1+json", b"application/vnd.example.config")
    put_manifest(client, repo, sha256(body), body)
    found = client.get(f"/v2/{repo}/referrers/{sha256(subject)}").json()["manifests"]
    assert found[0]["artifactType"] == "application/vnd.example.config"


def test_referrers_for_unknown_subject_is_an_empty_index(client: httpx.Client, repo: str) -> None:
    response = client.get(f"/v2/{repo}/referrers/{sha256(b'nothing refers')}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    bad = client.get(f"/v2/{repo}/referrers/sha256:nope")
    assert bad.status_code == 400
    assert errors(bad) == ["DIGEST_INVALID"]


def test_last_with_a_nul_is_refused_in_the_error_format(client: httpx.Client, repo: str) -> None:
    """PostgreSQL refuses a NUL in a query parameter: it used to surface as a 500."""
    push_blob(client, repo, b"x")
    for path in ("/v2/_catalog", f"/v2/{repo}/tags/list"):
        response = client.get(path, params={"last": "a\u0000"})
        assert response.status_code == 400, response.text
        assert errors(response) == ["UNSUPPORTED"]
