"""Blob reads, ranges, deletes and every way of uploading, with their error paths."""

from __future__ import annotations

import hashlib
import http.client
import json
import os

import httpx
import pytest

from tests.support.oci import errors, push_blob, sha256
from tests.support.server import RegistryProcess

pytestmark = pytest.mark.both_servers


def _start(client: httpx.Client, repo: str) -> str:
    response = client.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == "0-0"
    assert response.headers["Docker-Upload-UUID"]
    assert response.headers["Location"].startswith(f"/v2/{repo}/blobs/uploads/")
    return response.headers["Location"]


def _assert_absent(client: httpx.Client, repo: str, digest: str) -> None:
    response = client.head(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 404
    assert client.get(f"/v2/{repo}/blobs/{digest}").status_code == 404


def test_monolithic_post_then_get_and_head(client: httpx.Client, repo: str) -> None:
    data = os.urandom(300_000)
    digest = sha256(data)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{repo}/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest

    head = client.head(f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.headers["ETag"] == f'"{digest}"'
    assert head.content == b""

    get = client.get(f"/v2/{repo}/blobs/{digest}")
    assert get.status_code == 200
    assert get.content == data
    assert get.headers["Content-Length"] == str(len(data))


def test_blob_is_only_visible_in_the_repository_it_was_pushed_to(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, b"private to one repository")
    _assert_absent(client, repo + "-other", digest)


def test_streamed_patch_then_put(client: httpx.Client, repo: str) -> None:
    data = os.urandom(5 * 1024 * 1024 + 17)
    location = _start(client, repo)
    response = client.patch(location, content=iter([data[:1000], data[1000:]]))
    assert response.status_code == 202
    assert response.headers["Range"] == f"0-{len(data) - 1}"
    assert response.headers["Location"] == location
    response = client.put(location, params={"digest": sha256(data)})
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == sha256(data)
    assert client.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data


def test_chunked_upload_with_content_range_and_status(client: httpx.Client, repo: str) -> None:
    data = os.urandom(3000)
    location = _start(client, repo)
    offset = 0
    for size in (1000, 1000, 999):
        chunk = data[offset : offset + size]
        response = client.patch(
            location,
            content=chunk,
            headers={
                "Content-Range": f"{offset}-{offset + size - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert response.status_code == 202, response.text
        offset += size
        assert response.headers["Range"] == f"0-{offset - 1}"
    status = client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-2998"
    assert status.headers["Location"] == location
    # The last byte comes with the closing PUT.
    response = client.put(location, params={"digest": sha256(data)}, content=data[2999:])
    assert response.status_code == 201
    assert client.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data


@pytest.mark.parametrize("bad_range", ["5-9", "0-4"])
def test_chunk_out_of_order_or_repeated_is_416(client: httpx.Client, repo: str, bad_range: str) -> None:
    location = _start(client, repo)
    assert client.patch(location, content=b"01234", headers={"Content-Range": "0-4"}).status_code == 202
    response = client.patch(
        location, content=b"56789", headers={"Content-Range": "10-14" if bad_range == "5-9" else bad_range}
    )
    assert response.status_code == 416
    assert response.headers["Range"] == "0-4"
    # The session is unharmed: the right chunk still goes on.
    assert client.patch(location, content=b"56789", headers={"Content-Range": "5-9"}).status_code == 202
    assert client.put(location, params={"digest": sha256(b"0123456789")}).status_code == 201


@pytest.mark.parametrize("bad_range", ["10-14", "0-4"])
def test_final_chunk_out_of_order_on_put_is_416_and_keeps_the_session(
    client: httpx.Client, repo: str, bad_range: str
) -> None:
    """The spec's main branch: a closing PUT whose Content-Range skips ahead or repeats a chunk is refused
    like such a PATCH, and the client recovers with GET and the right chunk."""
    location = _start(client, repo)
    assert client.patch(location, content=b"01234", headers={"Content-Range": "0-4"}).status_code == 202
    digest = sha256(b"0123456789")
    response = client.put(
        location, params={"digest": digest}, content=b"56789", headers={"Content-Range": bad_range}
    )
    assert response.status_code == 416, response.text
    assert errors(response) == ["BLOB_UPLOAD_INVALID"]
    assert response.headers["Range"] == "0-4"
    _assert_absent(client, repo, digest)
    status = client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-4"
    response = client.put(
        location, params={"digest": digest}, content=b"56789", headers={"Content-Range": "5-9"}
    )
    assert response.status_code == 201, response.text
    assert client.get(f"/v2/{repo}/blobs/{digest}").content == b"0123456789"


def test_chunk_whose_length_disagrees_with_content_range_keeps_nothing(
    client: httpx.Client, repo: str
) -> None:
    location = _start(client, repo)
    response = client.patch(location, content=b"0123456789", headers={"Content-Range": "0-4"})
    assert response.status_code == 400
    assert errors(response) == ["SIZE_INVALID"]
    assert client.get(location).headers["Range"] == "0-0"


def test_put_with_wrong_digest_is_rejected_and_nothing_kept(client: httpx.Client, repo: str) -> None:
    location = _start(client, repo)
    client.patch(location, content=b"actual bytes")
    wrong = sha256(b"other bytes")
    response = client.put(location, params={"digest": wrong})
    assert response.status_code == 400
    assert errors(response) == ["DIGEST_INVALID"]
    _assert_absent(client, repo, wrong)
    _assert_absent(client, repo, sha256(b"actual bytes"))
    # The failed session is gone.
    assert errors(client.get(location)) == ["BLOB_UPLOAD_UNKNOWN"]


def test_monolithic_post_with_wrong_digest(client: httpx.Client, repo: str) -> None:
    wrong = sha256(b"not this")
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": wrong}, content=b"this")
    assert response.status_code == 400
    assert errors(response) == ["DIGEST_INVALID"]
    _assert_absent(client, repo, wrong)


def test_put_without_digest_or_with_malformed_digest(client: httpx.Client, repo: str) -> None:
    location = _start(client, repo)
    assert errors(client.put(location)) == ["DIGEST_INVALID"]
    response = client.put(location, params={"digest": "sha256:totallywrong"})
    assert response.status_code == 400
    assert errors(response) == ["DIGEST_INVALID"]
    response = client.put(location, params={"digest": "md5:" + "a" * 32})
    assert response.status_code == 400
    assert errors(response) == ["UNSUPPORTED"]


def test_sha512_blob(client: httpx.Client, repo: str) -> None:
    data = b"sha512 content" * 1000
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    location = _start(client, repo)
    assert client.patch(location, content=data).status_code == 202
    response = client.put(location, params={"digest": digest})
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/{repo}/blobs/{digest}").content == data


def test_empty_blob(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, b"")
    response = client.get(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == "0"


def test_cancel_upload(client: httpx.Client, repo: str) -> None:
    location = _start(client, repo)
    client.patch(location, content=b"abandoned")
    assert client.delete(location).status_code == 204
    assert client.get(location).status_code == 404
    assert errors(client.patch(location, content=b"more")) == ["BLOB_UPLOAD_UNKNOWN"]
    assert errors(client.delete(location)) == ["BLOB_UPLOAD_UNKNOWN"]


def test_unknown_or_malformed_upload_ids(client: httpx.Client, repo: str) -> None:
    for upload in ("00000000-0000-0000-0000-000000000000", "..", "not-a-session"):
        response = client.get(f"/v2/{repo}/blobs/uploads/x{upload}")
        assert response.status_code == 404
        assert errors(response) == ["BLOB_UPLOAD_UNKNOWN"]
    # An encoded traversal never reaches a handler as an upload id.
    assert client.get(f"/v2/{repo}/blobs/uploads/..%2f..%2fetc").status_code == 404


def test_upload_session_belongs_to_its_repository(client: httpx.Client, repo: str) -> None:
    location = _start(client, repo)
    upload = location.rsplit("/", 1)[1]
    assert client.get(f"/v2/{repo}-other/blobs/uploads/{upload}").status_code == 404


def test_range_requests(client: httpx.Client, repo: str) -> None:
    data = bytes(range(256)) * 40
    digest = push_blob(client, repo, data)
    url = f"/v2/{repo}/blobs/{digest}"
    cases = {
        "bytes=0-9": data[0:10],
        "bytes=100-": data[100:],
        "bytes=-5": data[-5:],
        "bytes=10-99999": data[10:],
    }
    for header, expected in cases.items():
        response = client.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == expected
        assert response.headers["Content-Length"] == str(len(expected))
        start = len(data) - len(expected) if header == "bytes=-5" else int(header[6:].split("-")[0])
        assert response.headers["Content-Range"] == f"bytes {start}-{start + len(expected) - 1}/{len(data)}"
    response = client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(data)}"


def test_unknown_and_malformed_blob_digests(client: httpx.Client, repo: str) -> None:
    missing = sha256(b"never pushed")
    response = client.get(f"/v2/{repo}/blobs/{missing}")
    assert response.status_code == 404
    assert errors(response) == ["BLOB_UNKNOWN"]
    response = client.get(f"/v2/{repo}/blobs/sha256:totallywrong")
    assert response.status_code == 400
    assert errors(response) == ["DIGEST_INVALID"]


def test_delete_blob(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, b"to be deleted")
    assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    _assert_absent(client, repo, digest)
    response = client.delete(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 404
    assert errors(response) == ["BLOB_UNKNOWN"]


def test_cross_repository_mount(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo + "/source", b"mount me")
    response = client.post(
        f"/v2/{repo}/target/blobs/uploads/", params={"mount": digest, "from": repo + "/source"}
    )
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{repo}/target/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/{repo}/target/blobs/{digest}").content == b"mount me"


def test_mount_from_a_repository_without_the_blob_starts_an_upload(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo + "/has", b"only here")
    for source in (repo + "/lacks", "../etc", "INVALID"):
        response = client.post(f"/v2/{repo}/target/blobs/uploads/", params={"mount": digest, "from": source})
        assert response.status_code == 202
        assert response.headers["Location"].startswith(f"/v2/{repo}/target/blobs/uploads/")
    _assert_absent(client, repo + "/target", digest)


def test_mount_without_from_uses_a_blob_the_registry_holds(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo + "/a", b"known blob " + repo.encode())
    response = client.post(f"/v2/{repo}/b/blobs/uploads/", params={"mount": digest})
    assert response.status_code == 201
    unknown = sha256(b"unknown " + repo.encode())
    assert client.post(f"/v2/{repo}/b/blobs/uploads/", params={"mount": unknown}).status_code == 202


@pytest.mark.parametrize("name", ["UPPER/case", "trailing-", "a//b", "-lead", "a" * 256, "with%20space"])
def test_invalid_repository_names(client: httpx.Client, name: str) -> None:
    response = client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status_code in (400, 404)
    assert errors(response)[0] in ("NAME_INVALID", "NAME_UNKNOWN")


def test_deeply_nested_repository_name(client: httpx.Client) -> None:
    name = "/".join(f"level{i}" for i in range(12))
    digest = push_blob(client, name, b"deep")
    assert client.get(f"/v2/{name}/blobs/{digest}").content == b"deep"


@pytest.mark.parametrize(
    "path",
    [
        "/v2/a/../b/blobs/uploads/",
        "/v2/a/./b/blobs/uploads/",
        "/v2/../../etc/blobs/uploads/",
        "/v2/a/%2e%2e/b/blobs/uploads/",
    ],
)
def test_traversal_in_names_is_refused(server: RegistryProcess, path: str) -> None:
    """Sent byte for byte (http.client does not normalise paths, as httpx would)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", path)
    response = connection.getresponse()
    assert response.status in (400, 404)
    codes = [entry["code"] for entry in json.loads(response.read())["errors"]]
    assert codes[0] in ("NAME_INVALID", "NAME_UNKNOWN")
    connection.close()


def test_range_with_an_offset_too_long_for_int_is_ignored(client: httpx.Client, repo: str) -> None:
    """int() refuses numbers over 4300 digits: such a Range used to answer 500. Ignoring it is allowed."""
    digest = push_blob(client, repo, b"whole blob")
    response = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=0-" + "9" * 5000})
    assert response.status_code == 200
    assert response.content == b"whole blob"


def test_content_range_with_an_offset_too_long_for_int_is_416(client: httpx.Client, repo: str) -> None:
    location = _start(client, repo)
    response = client.patch(location, content=b"x", headers={"Content-Range": "0-" + "9" * 5000})
    assert response.status_code == 416, response.text
    assert errors(response) == ["BLOB_UPLOAD_INVALID"]
    assert client.get(location).headers["Range"] == "0-0"
