"""Manifests: push, content negotiation, byte-exact pull, validation failures that change nothing, deletes."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from tests.support.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    errors,
    image_manifest,
    push_blob,
    put_manifest,
    sha256,
)

pytestmark = pytest.mark.both_servers


def _tags(client: httpx.Client, repo: str) -> list[str]:
    response = client.get(f"/v2/{repo}/tags/list")
    return response.json()["tags"] if response.status_code == 200 else []


def test_push_and_pull_by_tag_and_digest_byte_exact(client: httpx.Client, repo: str) -> None:
    body = image_manifest(client, repo, extra_field="kept", annotations={"a": "b"})
    digest = sha256(body)
    response = put_manifest(client, repo, "v1", body)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Location"] == f"/v2/{repo}/manifests/{digest}"
    assert "OCI-Subject" not in response.headers

    for reference in ("v1", digest):
        got = client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200
        assert got.content == body
        assert got.headers["Content-Type"] == OCI_MANIFEST
        assert got.headers["Docker-Content-Digest"] == digest
        assert got.headers["Content-Length"] == str(len(body))
        head = client.head(f"/v2/{repo}/manifests/{reference}")
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(body))
        assert head.headers["Docker-Content-Digest"] == digest


def test_push_by_digest(client: httpx.Client, repo: str) -> None:
    body = image_manifest(client, repo)
    response = put_manifest(client, repo, sha256(body), body)
    assert response.status_code == 201
    assert client.get(f"/v2/{repo}/manifests/{sha256(body)}").content == body
    assert _tags(client, repo) == []


def test_push_by_sha512_digest(client: httpx.Client, repo: str) -> None:
    body = image_manifest(client, repo)
    digest = "sha512:" + hashlib.sha512(body).hexdigest()
    response = put_manifest(client, repo, digest, body)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/{repo}/manifests/{digest}").content == body


def test_digest_in_url_must_match_body(client: httpx.Client, repo: str) -> None:
    body = image_manifest(client, repo)
    wrong = sha256(body + b" ")
    response = put_manifest(client, repo, wrong, body)
    assert response.status_code == 400
    assert errors(response) == ["DIGEST_INVALID"]
    assert client.get(f"/v2/{repo}/manifests/{wrong}").status_code == 404
    assert client.get(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 404


def test_docker_schema2_manifest_and_list(client: httpx.Client, repo: str) -> None:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = b"docker layer " + repo.encode()
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor(config, "application/vnd.docker.container.image.v1+json"),
            "layers": [descriptor(layer, "application/vnd.docker.image.rootfs.diff.tar.gzip")],
        }
    ).encode()
    assert put_manifest(client, repo, "amd64", manifest, DOCKER_MANIFEST).status_code == 201
    listing = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [
                descriptor(manifest, DOCKER_MANIFEST, platform={"architecture": "amd64", "os": "linux"})
            ],
        }
    ).encode()
    assert put_manifest(client, repo, "latest", listing, DOCKER_LIST).status_code == 201
    got = client.get(f"/v2/{repo}/manifests/latest", headers={"Accept": f"{DOCKER_LIST}, {DOCKER_MANIFEST}"})
    assert got.headers["Content-Type"] == DOCKER_LIST
    assert got.content == listing


def test_oci_index_needs_its_children(client: httpx.Client, repo: str) -> None:
    child = image_manifest(client, repo)
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(child, OCI_MANIFEST)]}
    ).encode()
    response = put_manifest(client, repo, "multi", index, OCI_INDEX)
    assert response.status_code == 400
    assert errors(response) == ["MANIFEST_UNKNOWN"]
    assert "multi" not in _tags(client, repo)
    assert put_manifest(client, repo, sha256(child), child).status_code == 201
    assert put_manifest(client, repo, "multi", index, OCI_INDEX).status_code == 201
    assert client.get(f"/v2/{repo}/manifests/multi").headers["Content-Type"] == OCI_INDEX


def test_manifest_with_unknown_blob_changes_nothing(client: httpx.Client, repo: str) -> None:
    config = b"{}"
    push_blob(client, repo, config)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(config, OCI_CONFIG),
            "layers": [descriptor(b"never uploaded", OCI_LAYER)],
        }
    ).encode()
    response = put_manifest(client, repo, "dangling", body)
    assert response.status_code == 400
    assert errors(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert client.get(f"/v2/{repo}/manifests/dangling").status_code == 404
    assert client.get(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 404
    assert "dangling" not in _tags(client, repo)


def test_blob_from_another_repository_does_not_count(client: httpx.Client, repo: str) -> None:
    body = image_manifest(client, repo + "/elsewhere")
    response = put_manifest(client, repo, "borrowed", body)
    assert errors(response) == ["MANIFEST_BLOB_UNKNOWN"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", OCI_MANIFEST),
        (b"[1, 2]", OCI_MANIFEST),
        (
            b'{"schemaVersion": 1, "mediaType": "'
            + OCI_MANIFEST.encode()
            + b'", "config": {}, "layers": []}',
            OCI_MANIFEST,
        ),
        (b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'", "layers": []}', OCI_MANIFEST),
        (
            b'{"schemaVersion": 2, "mediaType": "'
            + OCI_INDEX.encode()
            + b'", "manifests": [{"digest": "x"}]}',
            OCI_INDEX,
        ),
        (
            b'{"schemaVersion": 2, "mediaType": "'
            + OCI_MANIFEST.encode()
            + b'", "config": {}, "layers": []}',
            OCI_INDEX,
        ),
        (
            b'{"schemaVersion": 2, "mediaType": "application/x-unknown", "config": {}}',
            "application/x-unknown",
        ),
        (
            b'{"schemaVersion": 1, "name": "x", "fsLayers": []}',
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        ),
    ],
    ids=[
        "not-json",
        "not-object",
        "schema-1",
        "no-config",
        "bad-descriptor",
        "type-mismatch",
        "unknown-type",
        "schema1",
    ],
)
def test_invalid_manifests(client: httpx.Client, repo: str, body: bytes, content_type: str) -> None:
    response = put_manifest(client, repo, "bad", body, content_type)
    assert response.status_code == 400
    assert errors(response) == ["MANIFEST_INVALID"]
    assert client.get(f"/v2/{repo}/manifests/bad").status_code == 404


def test_oversized_manifest(client: httpx.Client, repo: str) -> None:
    body = b'{"schemaVersion": 2, "padding": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    response = put_manifest(client, repo, "huge", body)
    assert response.status_code == 413
    assert errors(response) == ["MANIFEST_INVALID"]


def test_media_type_from_content_type_when_body_has_none(client: httpx.Client, repo: str) -> None:
    document = json.loads(image_manifest(client, repo))
    del document["mediaType"]
    body = json.dumps(document).encode()
    assert put_manifest(client, repo, "untyped", body, OCI_MANIFEST).status_code == 201
    assert client.get(f"/v2/{repo}/manifests/untyped").headers["Content-Type"] == OCI_MANIFEST


def test_accept_negotiation(client: httpx.Client, repo: str) -> None:
    body = image_manifest(client, repo)
    put_manifest(client, repo, "neg", body)
    url = f"/v2/{repo}/manifests/neg"
    assert client.get(url, headers={"Accept": "*/*"}).status_code == 200
    assert client.get(url, headers={"Accept": f"{DOCKER_MANIFEST}, {OCI_MANIFEST};q=0.5"}).status_code == 200
    response = client.get(url, headers={"Accept": DOCKER_MANIFEST})
    assert response.status_code == 404
    assert errors(response) == ["MANIFEST_UNKNOWN"]


def test_unknown_and_invalid_references(client: httpx.Client, repo: str) -> None:
    image_manifest(client, repo)
    for reference in ("nosuchtag", ".INVALID_MANIFEST_NAME", sha256(b"nothing")):
        response = client.get(f"/v2/{repo}/manifests/{reference}")
        assert response.status_code == 404
        assert errors(response) == ["MANIFEST_UNKNOWN"]
    response = client.get(f"/v2/{repo}/manifests/sha256:totallywrong")
    assert response.status_code == 400
    assert errors(response) == ["DIGEST_INVALID"]
    response = put_manifest(client, repo, ".INVALID_MANIFEST_NAME", image_manifest(client, repo))
    assert response.status_code == 400
    assert client.head(f"/v2/{repo}/manifests/nosuchtag").status_code == 404


def _put_with_tags(client: httpx.Client, repo: str, reference: str, body: bytes, tags: list[str]):
    return client.put(
        f"/v2/{repo}/manifests/{reference}",
        params=[("tag", tag) for tag in tags],
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )


def test_push_by_digest_with_tags_applies_each_tag(client: httpx.Client, repo: str) -> None:
    body = image_manifest(client, repo)
    digest = sha256(body)
    response = _put_with_tags(client, repo, digest, body, ["v1", "latest", "v1"])
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers.get_list("OCI-Tag") == ["v1", "latest"]
    assert _tags(client, repo) == ["latest", "v1"]
    for tag in ("v1", "latest"):
        assert client.get(f"/v2/{repo}/manifests/{tag}").content == body


@pytest.mark.parametrize("tags", [["good", ".INVALID"], ["good", "x" * 129], ["good", ""]])
def test_push_by_digest_with_an_invalid_tag_changes_nothing(
    client: httpx.Client, repo: str, tags: list[str]
) -> None:
    body = image_manifest(client, repo)
    response = _put_with_tags(client, repo, sha256(body), body, tags)
    assert response.status_code == 400
    assert errors(response) == ["MANIFEST_INVALID"]
    assert "OCI-Tag" not in response.headers
    assert client.get(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 404
    assert _tags(client, repo) == []


def test_tag_parameters_need_a_digest_reference(client: httpx.Client, repo: str) -> None:
    body = image_manifest(client, repo)
    response = _put_with_tags(client, repo, "main", body, ["other"])
    assert response.status_code == 400
    assert errors(response) == ["MANIFEST_INVALID"]
    assert client.get(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 404
    assert _tags(client, repo) == []


def test_retag_moves_the_tag(client: httpx.Client, repo: str) -> None:
    first = image_manifest(client, repo, layers=[b"one"])
    second = image_manifest(client, repo, layers=[b"two"])
    put_manifest(client, repo, "moving", first)
    put_manifest(client, repo, "moving", second)
    assert client.get(f"/v2/{repo}/manifests/moving").content == second
    assert client.get(f"/v2/{repo}/manifests/{sha256(first)}").content == first


def test_delete_by_tag_removes_only_the_tag(client: httpx.Client, repo: str) -> None:
    body = image_manifest(client, repo)
    put_manifest(client, repo, "a", body)
    put_manifest(client, repo, "b", body)
    assert client.delete(f"/v2/{repo}/manifests/a").status_code == 202
    assert _tags(client, repo) == ["b"]
    assert client.get(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 200
    assert errors(client.delete(f"/v2/{repo}/manifests/a")) == ["MANIFEST_UNKNOWN"]


def test_delete_by_digest_removes_manifest_and_its_tags(client: httpx.Client, repo: str) -> None:
    body = image_manifest(client, repo)
    other = image_manifest(client, repo, layers=[b"other"])
    put_manifest(client, repo, "a", body)
    put_manifest(client, repo, "b", body)
    put_manifest(client, repo, "keep", other)
    assert client.delete(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 202
    assert client.get(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 404
    assert client.get(f"/v2/{repo}/manifests/a").status_code == 404
    assert _tags(client, repo) == ["keep"]
    response = client.delete(f"/v2/{repo}/manifests/{sha256(body)}")
    assert response.status_code == 404
    assert errors(response) == ["MANIFEST_UNKNOWN"]


def test_subject_answers_oci_subject_even_when_missing(client: httpx.Client, repo: str) -> None:
    absent = sha256(b"subject not pushed")
    body = image_manifest(
        client, repo, subject={"mediaType": OCI_MANIFEST, "digest": absent, "size": 123}, artifactType="a/b"
    )
    response = put_manifest(client, repo, sha256(body), body)
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == absent


def _hostile(client: httpx.Client, repo: str, **fields: object) -> bytes:
    """An OCI manifest whose blobs exist, with `fields` replacing or adding top-level fields."""
    document = json.loads(image_manifest(client, repo))
    document.update(fields)
    return json.dumps(document).encode()


def _descriptor_with(client: httpx.Client, repo: str, **fields: object) -> bytes:
    document = json.loads(image_manifest(client, repo))
    document["layers"][0].update(fields)
    return json.dumps(document).encode()


_DEEP = 100_000


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda c, r: _hostile(c, r).replace(
                b'"config": {', b'"config": {"a": ' + b"[" * _DEEP + b"]" * _DEEP + b", ", 1
            ),
            id="deep-arrays-in-config",
        ),
        pytest.param(
            lambda c, r: _hostile(c, r)[:-1] + b', "x": ' + b'{"a":' * _DEEP + b"1" + b"}" * _DEEP + b"}",
            id="deep-objects",
        ),
        pytest.param(lambda c, r: b"[" * _DEEP + b"]" * _DEEP, id="deep-top-level"),
        pytest.param(
            lambda c, r: _hostile(c, r, nested=json.loads("[" * 200 + "]" * 200)), id="over-depth-limit"
        ),
        pytest.param(lambda c, r: _descriptor_with(c, r, size=10**400), id="size-10e400"),
        pytest.param(lambda c, r: _descriptor_with(c, r, size=2**63), id="size-over-int64"),
        pytest.param(
            lambda c, r: _hostile(c, r)[:-1] + b', "extra": ' + b"9" * 5000 + b"}",
            id="integer-over-python-digit-limit",
        ),
        pytest.param(lambda c, r: _hostile(c, r, schemaVersion=2.0), id="schema-version-float"),
        pytest.param(lambda c, r: _hostile(c, r, extra=float("nan")), id="nan-is-not-json"),
        pytest.param(lambda c, r: _hostile(c, r).decode().encode("utf-16"), id="utf-16"),
        pytest.param(lambda c, r: _hostile(c, r, artifactType="a/" + "b" * 300), id="artifact-type-too-long"),
        pytest.param(lambda c, r: _hostile(c, r, artifactType="a/b\u0000c"), id="artifact-type-nul"),
        pytest.param(lambda c, r: _hostile(c, r, artifactType="a/\ud800"), id="artifact-type-lone-surrogate"),
    ],
)
def test_hostile_manifests_are_invalid_and_change_nothing(
    client: httpx.Client, repo: str, make: object
) -> None:
    body = make(client, repo)  # type: ignore[operator]
    response = put_manifest(client, repo, "hostile", body)
    assert response.status_code == 400, response.text
    assert errors(response) == ["MANIFEST_INVALID"]
    assert client.get(f"/v2/{repo}/manifests/hostile").status_code == 404
    assert client.get(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 404
    assert _tags(client, repo) == []


def test_largest_int64_size_is_accepted(client: httpx.Client, repo: str) -> None:
    """The bound is the int64 Go clients parse, not anything smaller (the blob need not be that big)."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    push_blob(client, repo, config)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(config, OCI_CONFIG),
            "layers": [
                {
                    **descriptor(b"external", OCI_LAYER),
                    "size": 2**63 - 1,
                    "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar",
                }
            ],
        }
    ).encode()
    assert put_manifest(client, repo, "big", body).status_code == 201


@pytest.mark.parametrize(
    "extra",
    [
        {"artifactType": "application/x\u0000"},
        {"artifactType": "\ud800/x"},
        {"artifactType": "a/" + "b" * 300},
        {"artifactType": "not a media type"},
    ],
    ids=["nul", "lone-surrogate", "too-long", "no-slash"],
)
def test_artifact_type_that_is_not_a_media_type_is_refused(
    client: httpx.Client, repo: str, extra: dict[str, str]
) -> None:
    """The index stores the artifact type as text: a NUL, a lone surrogate or 300 characters once made
    PostgreSQL (and a lone surrogate SQLite too) fail with a 500."""
    body = image_manifest(client, repo, **extra)
    response = put_manifest(client, repo, "t", body)
    assert response.status_code == 400, response.text
    assert errors(response) == ["MANIFEST_INVALID"]
    assert client.get(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 404


def test_config_media_type_that_is_not_a_media_type_is_refused(client: httpx.Client, repo: str) -> None:
    """An OCI image's config media type is its artifact type when it declares none."""
    config = b"{}"
    document = json.loads(image_manifest(client, repo, config=config))
    document["config"]["mediaType"] = "application/x\u0000"
    body = json.dumps(document).encode()
    response = put_manifest(client, repo, "t", body)
    assert response.status_code == 400, response.text
    assert errors(response) == ["MANIFEST_INVALID"]
    assert client.get(f"/v2/{repo}/manifests/t").status_code == 404
