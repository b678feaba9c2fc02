"""A port of the OCI distribution-spec conformance suite, run against the real server on every backend.

The official suite (opencontainers/distribution-spec `conformance/`, ginkgo generation v1.1.x: setup.go,
01_pull_test.go, 02_push_test.go, 03_discovery_test.go, 04_management_test.go, image.go) cannot run in CI, so
its four workflows are replayed here request by request: the same documents (byte for byte as Go's
`json.MarshalIndent(v, "", "\\t")` writes them, including the unknown `newUnspecifiedField` and inline `data`
fields), the same headers and query strings, and exactly the suite's assertions, with the alternatives it
accepts (400 or 404, 201 or 202, ...). Each spec keeps the suite's title, so a failure here can be compared
with a line of the suite's results.txt.

The suite's HTTP client (reggie on go-resty) is imitated: a follow-up request goes to the path and query of
the previous `Location` header, query parameters are url-encoded, sorted by name and appended with `&` to a
query the Location already has, there is no `Accept` header unless a request sets one (or sets a JSON
Content-Type, which resty copies into Accept), and redirects are followed. Like ginkgo, a spec stops at its
first failed assertion but the specs after it still run on the shared state; the test fails at the end,
listing every failed spec.

The settings are the suite's defaults, with `OCI_AUTOMATIC_CROSSMOUNT=1` (the server's default setting
mounts a known blob without `from`) and `OCI_DELETE_MANIFEST_BEFORE_BLOBS` unset (manifests are deleted
before blobs). `test_all_workflows_in_one_namespace` is the suite's default run: the four workflows in order,
in one namespace, so each one sees what the previous ones left behind. The four other tests run one
workflow alone in a fresh namespace, as the suite does with a single `OCI_TEST_*` variable set.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import string
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from tests.support.oci import OCI_INDEX, OCI_MANIFEST, sha256

pytestmark = pytest.mark.both_servers

USER_AGENT = "distribution-spec-conformance-tests"
AUTOMATIC_CROSSMOUNT = True  # OCI_AUTOMATIC_CROSSMOUNT=1: the server's default settings
NUM_WORKFLOWS = 1 << 4  # the suite's `numWorkflows`: 16 configs and manifests are generated

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCTET_STREAM = {"Content-Type": "application/octet-stream"}
MANIFEST_TYPE = {"Content-Type": OCI_MANIFEST}
ACCEPT_MANIFEST = {"Accept": OCI_MANIFEST}
# Resty copies a JSON or XML Content-Type into a missing Accept header (its parseRequestHeader middleware).
JSON_OR_XML = re.compile(r"(?i:(application|text)/(json|.*\+json|json\-.*|xml|.*\+xml)(;|$))")

# A small gzip tarball (168 bytes), the suite's `layerBase64String`.
LAYER = base64.b64decode(
    "H4sIAAAAAAAAA+3OQQrCMBCF4a49xXgBSUnaHMCTRBptQRNpp6i3t0UEV7oqIv7fYgbmzeJpHHSjVy0"
    "WZCa1c/MufWVe94N3RWlrZ72x3k/30nhbFWKWLPU0Dhp6keJ8im//PuU/6pZH2WVtYx8b0Sz7LjWSR5VLG6YRBumSzOlGtjkd+qD"
    "jMWiX07Befbs7AAAAAAAAAAAAAAAAAPyzO34MnqoAKAAA"
)
LAYER_DIGEST = sha256(LAYER)
DUMMY_DIGEST = sha256(b"hello world")  # never pushed
EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
REF_BLOB_A = b"NHL Peanut Butter on my NHL bagel"
REF_BLOB_B = b"NBA Strawberry Jam on my NBA croissant"
ARTIFACT_TYPE_A = "application/vnd.nhl.peanut.butter.bagel"
ARTIFACT_TYPE_B = "application/vnd.nba.strawberry.jam.croissant"
ARTIFACT_TYPE_INDEX = "application/vnd.food.stand"
ANNOTATION_KEY = "org.opencontainers.conformance.test"
TEST_TAG = "tagtest0"
EMPTY_LAYER_TAG = "emptylayer"
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"  # an invalid tag, which must still answer 404
ERROR_CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "MANIFEST_UNVERIFIED",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "TAG_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
}


# --- Test data (setup.go, image.go) ------------------------------------------------------------------------


def _marshal(document: dict[str, Any]) -> bytes:
    """Go's json.MarshalIndent(v, "", "\\t"): tab-indented, `": "` separators, no trailing newline."""
    return json.dumps(document, indent="\t").encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _descriptor(
    media_type: str, content: bytes, *, inline: bool = False, unspecified: bytes | None = None
) -> dict[str, Any]:
    """The suite's `descriptor` struct, whose `newUnspecifiedField` is always written (null when unset)."""
    document: dict[str, Any] = {"mediaType": media_type, "digest": sha256(content), "size": len(content)}
    if inline:
        document["data"] = _b64(content)
    document["newUnspecifiedField"] = None if unspecified is None else _b64(unspecified)
    return document


def _manifest(
    config: dict[str, Any],
    layers: list[dict[str, Any]],
    *,
    media_type: str | None = OCI_MANIFEST,
    artifact_type: str | None = None,
    subject: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> bytes:
    """The suite's `manifest` struct, in its field order (empty optional fields are left out)."""
    document: dict[str, Any] = {"schemaVersion": 2}
    if media_type:
        document["mediaType"] = media_type
    if artifact_type:
        document["artifactType"] = artifact_type
    document["config"] = config
    document["layers"] = layers
    if subject:
        document["subject"] = subject
    if annotations:
        document["annotations"] = annotations
    return _marshal(document)


def _index(
    manifests: list[dict[str, Any]], artifact_type: str, subject: dict[str, Any], annotations: dict[str, str]
) -> bytes:
    """The suite's `index` struct, in its field order."""
    return _marshal(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": artifact_type,
            "manifests": manifests,
            "subject": subject,
            "annotations": annotations,
        }
    )


def _config() -> bytes:
    """An image config made unique by a random 16-character author, as the suite makes one per workflow."""
    alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase + "-"
    author = "".join(secrets.choice(alphabet) for _ in range(16))
    return _marshal(
        {
            "author": author,
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    )


class SuiteData:
    """Everything setup.go generates once per run and the workflows share (and, for the chunked blob, change).

    configs/manifests: 0 = pull, 1 = push (and pull), 2 = discovery, 3 = management (and the never-pushed
    subject of CLayer), 4 = the subject of the discovery referrers.
    """

    def __init__(self) -> None:
        self.configs = [_config() for _ in range(NUM_WORKFLOWS)]
        layers = [_descriptor(OCI_LAYER, LAYER)]
        self.manifests = [
            _manifest(_descriptor(OCI_CONFIG, config, inline=True, unspecified=b"hello world"), layers)
            for config in self.configs
        ]
        # No mediaType field, and no layers at all.
        self.empty_layer_manifest = _manifest(
            _descriptor(OCI_CONFIG, self.configs[1], inline=True, unspecified=b"hello world"),
            [],
            media_type=None,
        )
        self.blob_a = os.urandom(42)
        self.setup_chunked_blob(42)

        empty = _descriptor(OCI_EMPTY, EMPTY_JSON)
        subject = _descriptor(OCI_MANIFEST, self.manifests[4])
        self.ref_a_config = _manifest(
            _descriptor(ARTIFACT_TYPE_A, REF_BLOB_A),  # the artifact type, on a config that is not JSON
            [empty],
            subject=subject,
            annotations={ANNOTATION_KEY: "test config a"},
        )
        self.ref_b_config = _manifest(
            _descriptor(ARTIFACT_TYPE_B, REF_BLOB_B),
            [empty],
            subject=subject,
            annotations={ANNOTATION_KEY: "test config b"},
        )
        self.ref_a_layer = _manifest(
            empty,
            [_descriptor(ARTIFACT_TYPE_A, REF_BLOB_A)],
            artifact_type=ARTIFACT_TYPE_A,
            subject=subject,
            annotations={ANNOTATION_KEY: "test layer a"},
        )
        self.ref_b_layer = _manifest(
            empty,
            [_descriptor(ARTIFACT_TYPE_B, REF_BLOB_B)],
            artifact_type=ARTIFACT_TYPE_B,
            subject=subject,
            annotations={ANNOTATION_KEY: "test layer b"},
        )
        # Like BLayer, but its subject (manifests[3]) is not pushed when it is, and it has no annotations.
        self.ref_c_layer = _manifest(
            empty,
            [_descriptor(ARTIFACT_TYPE_B, REF_BLOB_B)],
            artifact_type=ARTIFACT_TYPE_B,
            subject=_descriptor(OCI_MANIFEST, self.manifests[3]),
        )
        self.ref_index = _index(
            [_descriptor(OCI_MANIFEST, self.ref_a_config), _descriptor(OCI_MANIFEST, self.ref_a_layer)],
            ARTIFACT_TYPE_INDEX,
            subject,
            {ANNOTATION_KEY: "test index"},
        )
        self.annotation_values = {
            sha256(self.ref_a_config): "test config a",
            sha256(self.ref_b_config): "test config b",
            sha256(self.ref_a_layer): "test layer a",
            sha256(self.ref_b_layer): "test layer b",
            sha256(self.ref_index): "test index",
        }

    def setup_chunked_blob(self, size: int) -> None:
        """testBlobB and its two chunks: the first one a byte longer than half."""
        self.blob_b = os.urandom(size)
        half = size // 2 + 1
        self.chunk1, self.chunk2 = self.blob_b[:half], self.blob_b[half:]
        self.chunk1_range = f"0-{half - 1}"
        self.chunk2_range = f"{half}-{size - 1}"


# --- Running specs and sending requests as the suite does -------------------------------------------------


class _Skipped(Exception):
    pass


def _run_only_if(condition: bool) -> None:
    if not condition:
        raise _Skipped


def _describe(exc: BaseException) -> str:
    here = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == __file__]
    where = f"line {here[-1].lineno}: " if here else ""
    return where + "".join(traceback.format_exception_only(exc)).strip()


class Specs:
    """Ginkgo's way: specs in file order, each stopping at its first failure, the later ones still running."""

    def __init__(self) -> None:
        self.results: list[tuple[str, str, str]] = []

    @contextmanager
    def __call__(self, title: str) -> Iterator[None]:
        try:
            yield
        except _Skipped:
            self.results.append(("SKIP", title, ""))
        except Exception as exc:
            self.results.append(("FAIL", title, _describe(exc)))
        else:
            self.results.append(("PASS", title, ""))

    def finish(self) -> None:
        counts = {status: sum(r[0] == status for r in self.results) for status in ("PASS", "FAIL", "SKIP")}
        print("\n".join(f"{status}  {title}" for status, title, _ in self.results))
        print(f"conformance: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
        failed = [
            f"FAIL  {title}\n      {detail}" for status, title, detail in self.results if status == "FAIL"
        ]
        assert not failed, f"{len(failed)} conformance spec(s) failed:\n" + "\n".join(failed)


def _with_query(url: str, query: dict[str, str] | None) -> str:
    """Resty's query: url-encoded, sorted by name, appended with `&` to a query the URL already has."""
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + urlencode(sorted(query.items()))


def _location(response: httpx.Response) -> str:
    """reggie's GetRelativeLocation: the path and query of the Location header (scheme and host dropped)."""
    parts = urlsplit(response.headers.get("Location", ""))
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _show(response: httpx.Response) -> str:
    request = response.request
    return (
        f"{request.method} {request.url.raw_path.decode()} -> {response.status_code} {response.text[:400]!r}"
    )


def _is_2xx(response: httpx.Response) -> bool:
    return 200 <= response.status_code < 300


def _error_codes(response: httpx.Response) -> list[str]:
    """reggie's Errors(): the body must be `{"errors": [...]}` with at least one error."""
    errors = response.json()["errors"]
    assert isinstance(errors, list) and errors, _show(response)
    return [entry.get("code") for entry in errors]


def _tag_list(response: httpx.Response, strict: bool = False) -> list[str]:
    """The suite's TagList: `{"name": ..., "tags": [...]}`, where null tags are no tags.

    Not strict (getTagList), a body that does not parse gives no tags; strict, it fails the spec.
    """
    try:
        body = response.json()
        assert body is None or isinstance(body, dict)
        tags = (body or {}).get("tags")
        tags = [] if tags is None else tags
        assert isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)
    except (ValueError, AssertionError):
        if strict:
            raise AssertionError(f"not a tag list: {_show(response)}") from None
        return []
    return tags


def _index_manifests(response: httpx.Response) -> list[dict[str, Any]]:
    """The `manifests` of an index body (absent or null: none)."""
    body = response.json()
    assert isinstance(body, dict), _show(response)
    manifests = body.get("manifests") or []
    valid = isinstance(manifests, list) and all(isinstance(entry, dict) for entry in manifests)
    assert valid, _show(response)
    return manifests


def _check_annotations(data: SuiteData, manifests: list[dict[str, Any]]) -> None:
    """Each descriptor carries exactly the one annotation of the manifest it describes (as the suite reads it,
    a missing annotation or an unknown digest is an empty string)."""
    for entry in manifests:
        annotations = entry.get("annotations") or {}
        assert len(annotations) == 1, entry
        expected = data.annotation_values.get(entry.get("digest"), "")
        assert annotations.get(ANNOTATION_KEY, "") == expected, entry


@dataclass
class Run:
    """One run of the suite: its client, namespaces (`OCI_NAMESPACE`, `OCI_CROSSMOUNT_NAMESPACE`) and data."""

    http: httpx.Client
    ns: str
    xns: str
    data: SuiteData = field(default_factory=SuiteData)
    spec: Specs = field(default_factory=Specs)

    def send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> httpx.Response:
        # Requests without a body still send `Content-Length: 0` on POST, PUT and PATCH, as resty does; the
        # Content-Length the suite sets itself is ignored by Go, so the real one is always sent.
        headers = dict(headers or {})
        if "Accept" not in headers and JSON_OR_XML.search(headers.get("Content-Type", "")):
            headers["Accept"] = headers["Content-Type"]
        return self.http.request(method, _with_query(url, query), content=body, headers=headers)

    def populate(self, content: bytes) -> None:
        """The setups' blob push: POST (its status unchecked), then PUT to its Location with the digest."""
        response = self.send("POST", f"/v2/{self.ns}/blobs/uploads/")
        response = self.send(
            "PUT", _location(response), body=content, headers=OCTET_STREAM, query={"digest": sha256(content)}
        )
        assert _is_2xx(response), _show(response)

    def put_manifest(self, reference: str, body: bytes, media_type: str = OCI_MANIFEST) -> httpx.Response:
        return self.send(
            "PUT", f"/v2/{self.ns}/manifests/{reference}", body=body, headers={"Content-Type": media_type}
        )


# --- 01_pull_test.go ---------------------------------------------------------------------------------------


def pull(run: Run) -> None:
    data, spec, ns = run.data, run.spec, run.ns
    manifest0, manifest1 = sha256(data.manifests[0]), sha256(data.manifests[1])
    tag = ""

    with spec("Pull / Setup / Populate registry with test blob"):
        run.populate(data.configs[0])
    with spec("Pull / Setup / Populate registry with test blob"):
        run.populate(data.configs[1])
    with spec("Pull / Setup / Populate registry with test layer"):
        run.populate(LAYER)
    with spec("Pull / Setup / Populate registry with test manifest"):
        tag = TEST_TAG
        response = run.put_manifest(tag, data.manifests[0])
        assert _is_2xx(response), _show(response)
    with spec("Pull / Setup / Populate registry with test manifest"):
        response = run.put_manifest(manifest1, data.manifests[1])  # by digest, with no tag
        assert _is_2xx(response), _show(response)
    with spec("Pull / Setup / Get tag name from environment"):
        _run_only_if(False)  # only when the setup is skipped (OCI_TAG_NAME and friends)

    with spec("Pull / Pull blobs / HEAD request to nonexistent blob should result in 404 response"):
        response = run.send("HEAD", f"/v2/{ns}/blobs/{DUMMY_DIGEST}")
        assert response.status_code == 404, _show(response)
    with spec("Pull / Pull blobs / HEAD request to existing blob should yield 200"):
        response = run.send("HEAD", f"/v2/{ns}/blobs/{sha256(data.configs[0])}")
        assert response.status_code == 200, _show(response)
        if digest := response.headers.get("Docker-Content-Digest"):
            assert digest == sha256(data.configs[0])
    with spec("Pull / Pull blobs / GET nonexistent blob should result in 404 response"):
        response = run.send("GET", f"/v2/{ns}/blobs/{DUMMY_DIGEST}")
        assert response.status_code == 404, _show(response)
    with spec("Pull / Pull blobs / GET request to existing blob URL should yield 200"):
        response = run.send("GET", f"/v2/{ns}/blobs/{sha256(data.configs[0])}")
        assert response.status_code == 200, _show(response)

    with spec("Pull / Pull manifests / HEAD request to nonexistent manifest should return 404"):
        response = run.send("HEAD", f"/v2/{ns}/manifests/{NONEXISTENT_MANIFEST}")
        assert response.status_code == 404, _show(response)
    for title, reference, expected in (
        ("manifest[0] path (digest)", manifest0, manifest0),
        ("manifest[1] path (digest)", manifest1, manifest1),
        ("manifest path (tag)", tag, manifest0),
    ):
        with spec(f"Pull / Pull manifests / HEAD request to {title} should yield 200 response"):
            assert reference
            response = run.send("HEAD", f"/v2/{ns}/manifests/{reference}", headers=ACCEPT_MANIFEST)
            assert response.status_code == 200, _show(response)
            if digest := response.headers.get("Docker-Content-Digest"):
                assert digest == expected
    with spec("Pull / Pull manifests / GET nonexistent manifest should return 404"):
        response = run.send("GET", f"/v2/{ns}/manifests/{NONEXISTENT_MANIFEST}")
        assert response.status_code == 404, _show(response)
    for title, reference in (
        ("manifest[0] path (digest)", manifest0),
        ("manifest[1] path (digest)", manifest1),
        ("manifest path (tag)", tag),
    ):
        with spec(f"Pull / Pull manifests / GET request to {title} should yield 200 response"):
            assert reference
            response = run.send("GET", f"/v2/{ns}/manifests/{reference}", headers=ACCEPT_MANIFEST)
            assert response.status_code == 200, _show(response)

    with spec("Pull / Error codes / 400 response body should contain OCI-conforming JSON message"):
        # The suite sets a body ("blablabla") on this GET, which its client drops, but keeps the header.
        response = run.send("GET", f"/v2/{ns}/manifests/sha256:totallywrong", headers=MANIFEST_TYPE)
        assert response.status_code in (400, 404), _show(response)
        if response.status_code == 400:
            assert _error_codes(response)[0] in ERROR_CODES, _show(response)

    # Manifests first; a tagged manifest must be deletable by digest. 404 fails here.
    for index, digest in ((0, manifest0), (1, manifest1)):
        with spec(f"Pull / Teardown / Delete manifest[{index}] created in setup"):
            response = run.send("DELETE", f"/v2/{ns}/manifests/{digest}")
            assert _is_2xx(response) or response.status_code == 405, _show(response)
    for title, digest in (
        ("config[0] blob", sha256(data.configs[0])),
        ("config[1] blob", sha256(data.configs[1])),
        ("layer blob", LAYER_DIGEST),
    ):
        with spec(f"Pull / Teardown / Delete {title} created in setup"):
            response = run.send("DELETE", f"/v2/{ns}/blobs/{digest}")
            assert _is_2xx(response) or response.status_code in (404, 405), _show(response)


# --- 02_push_test.go ---------------------------------------------------------------------------------------


def push(run: Run) -> None:
    data, spec, ns, xns = run.data, run.spec, run.ns, run.xns
    uploads = f"/v2/{ns}/blobs/uploads/"
    config1 = sha256(data.configs[1])
    last: httpx.Response | None = None  # the suite's `lastResponse`, shared by all the Push specs
    prev: httpx.Response | None = None
    empty_layer_ref = ""

    title = "Push / Blob Upload Streamed"
    with spec(f"{title} / PATCH request with blob in body should yield 202 response"):
        response = run.send("POST", uploads)
        assert response.headers.get("Location"), _show(response)
        response = run.send("PATCH", _location(response), body=data.blob_a, headers=OCTET_STREAM)
        assert response.status_code == 202, _show(response)
        last = response
    with spec(f"{title} / PUT request to session URL with digest should yield 201 response"):
        assert last is not None
        # The suite sets `Content-Length: 42` but sends no body: Content-Length 0 on the wire.
        response = run.send(
            "PUT", _location(last), headers=OCTET_STREAM, query={"digest": sha256(data.blob_a)}
        )
        assert response.status_code == 201, _show(response)
        assert response.headers.get("Location")

    title = "Push / Blob Upload Monolithic"
    with spec(f"{title} / GET nonexistent blob should result in 404 response"):
        response = run.send("GET", f"/v2/{ns}/blobs/{DUMMY_DIGEST}")
        assert response.status_code == 404, _show(response)
    with spec(f"{title} / POST request with digest and blob should yield a 201 or 202"):
        response = run.send(
            "POST", uploads, body=data.configs[1], headers=OCTET_STREAM, query={"digest": config1}
        )
        assert response.headers.get("Location"), _show(response)
        assert response.status_code in (201, 202), _show(response)
        last = response
    with spec(
        f"{title} / GET request to blob URL from prior request should yield 200 or 404 based on response code"
    ):
        assert last is not None
        response = run.send("GET", f"/v2/{ns}/blobs/{config1}")
        assert response.status_code == (404 if last.status_code == 202 else 200), _show(response)
    with spec(f"{title} / POST request should yield a session ID"):
        response = run.send("POST", uploads)
        assert response.status_code == 202, _show(response)
        last = response
    with spec(f"{title} / PUT upload of a blob should yield a 201 Response"):
        assert last is not None
        response = run.send(
            "PUT", _location(last), body=data.configs[1], headers=OCTET_STREAM, query={"digest": config1}
        )
        assert response.headers.get("Location"), _show(response)
        assert response.status_code == 201, _show(response)
    with spec(f"{title} / GET request to existing blob should yield 200 response"):
        response = run.send("GET", f"/v2/{ns}/blobs/{config1}")
        assert response.status_code == 200, _show(response)
    with spec(f"{title} / PUT upload of a layer blob should yield a 201 Response"):
        response = run.send("POST", uploads)
        response = run.send(
            "PUT", _location(response), body=LAYER, headers=OCTET_STREAM, query={"digest": LAYER_DIGEST}
        )
        assert response.headers.get("Location"), _show(response)
        assert response.status_code == 201, _show(response)
    with spec(f"{title} / GET request to existing layer should yield 200 response"):
        response = run.send("GET", f"/v2/{ns}/blobs/{LAYER_DIGEST}")
        assert response.status_code == 200, _show(response)

    title = "Push / Blob Upload Chunked"
    with spec(f"{title} / Out-of-order blob upload should return 416"):
        response = run.send("POST", uploads)
        assert response.headers.get("Location"), _show(response)
        # A server asking for bigger chunks gets a blob of 2M-2 bytes, cut in two chunks of at least M.
        minimum = response.headers.get("OCI-Chunk-Min-Length")
        if minimum and int(minimum) > len(data.chunk1):
            data.setup_chunked_blob(int(minimum) * 2 - 2)
        # The second chunk first, on a fresh session.
        response = run.send(
            "PATCH",
            _location(response),
            body=data.chunk2,
            headers={**OCTET_STREAM, "Content-Range": data.chunk2_range},
        )
        assert response.status_code == 416, _show(response)
    with spec(f"{title} / PATCH request with first chunk should return 202"):
        response = run.send("POST", uploads)
        assert response.headers.get("Location"), _show(response)
        prev = response
        response = run.send(
            "PATCH",
            _location(response),
            body=data.chunk1,
            headers={**OCTET_STREAM, "Content-Range": data.chunk1_range},
        )
        assert response.status_code == 202, _show(response)
        assert response.headers.get("Range") == data.chunk1_range, _show(response)  # no `bytes=` prefix
        last = response
    with spec(f"{title} / Retry previous blob chunk should return 416"):
        # The same chunk again, on the session's original URL (the POST's Location, not the PATCH's).
        assert prev is not None
        response = run.send(
            "PATCH",
            _location(prev),
            body=data.chunk1,
            headers={**OCTET_STREAM, "Content-Range": data.chunk1_range},
        )
        assert response.status_code == 416, _show(response)
    with spec(f"{title} / Get on stale blob upload should return 204 with a range and location"):
        assert prev is not None
        response = run.send("GET", _location(prev))
        assert response.status_code == 204, _show(response)
        assert response.headers.get("Location"), _show(response)
        assert response.headers.get("Range") == data.chunk1_range, _show(response)
        last = response
    with spec(f"{title} / PATCH request with second chunk should return 202"):
        assert last is not None
        response = run.send(
            "PATCH",
            _location(last),
            body=data.chunk2,
            headers={"Content-Range": data.chunk2_range, **OCTET_STREAM},
        )
        assert response.status_code == 202, _show(response)
        assert response.headers.get("Location"), _show(response)
        last = response
    with spec(f"{title} / PUT request with digest should return 201"):
        assert last is not None
        response = run.send(
            "PUT", _location(last), headers=OCTET_STREAM, query={"digest": sha256(data.blob_b)}
        )
        assert response.status_code == 201, _show(response)
        assert response.headers.get("Location"), _show(response)

    title = "Push / Cross-Repository Blob Mount"
    x_uploads = f"/v2/{xns}/blobs/uploads/"
    with spec(f"{title} / Cross-mounting of a blob without the from argument should yield session id"):
        response = run.send("POST", x_uploads, query={"mount": DUMMY_DIGEST})  # a blob that exists nowhere
        assert response.status_code == 202, _show(response)
        assert response.headers.get("Location"), _show(response)
    with spec(f"{title} / POST request to mount another repository's blob should return 201 or 202"):
        response = run.send("POST", x_uploads, query={"mount": sha256(data.blob_a), "from": ns})
        assert response.status_code in (201, 202), _show(response)
        last = response
    with spec(f"{title} / GET request to test digest within cross-mount namespace should return 200"):
        assert last is not None
        _run_only_if(last.status_code == 201)
        assert _location(last) == f"/v2/{xns}/blobs/{sha256(data.blob_a)}", _show(last)
        response = run.send("GET", _location(last))
        assert response.status_code == 200, _show(response)
    with spec(f"{title} / Cross-mounting of nonexistent blob should yield session id"):
        assert last is not None
        _run_only_if(last.status_code == 202)
        assert _location(last).startswith(f"/v2/{xns}/blobs/uploads/"), _show(last)
    for enabled, expected in ((True, 201), (False, 202)):
        state = "enabled" if enabled else "disabled"
        with spec(
            f"{title} / Cross-mounting without from, and automatic content discovery {state} should return a "
            f"{expected}"
        ):
            assert last is not None
            _run_only_if(last.status_code == 201)
            _run_only_if(enabled == AUTOMATIC_CROSSMOUNT)
            response = run.send("POST", x_uploads, query={"mount": sha256(data.blob_a)})
            assert response.status_code == expected, _show(response)

    title = "Push / Manifest Upload"
    with spec(f"{title} / GET nonexistent manifest should return 404"):
        response = run.send("GET", f"/v2/{ns}/manifests/{NONEXISTENT_MANIFEST}")
        assert response.status_code == 404, _show(response)
    with spec(f"{title} / PUT should accept a manifest upload"):
        for i in range(4):  # the same manifest under four tags: three PUTs of content already there
            response = run.put_manifest(f"test{i}", data.manifests[1])
            assert response.headers.get("Location"), _show(response)
            assert response.status_code == 201, _show(response)
    with spec(f"{title} / Registry should accept a manifest upload with no layers"):
        response = run.put_manifest(EMPTY_LAYER_TAG, data.empty_layer_manifest)
        if response.status_code == 201:
            empty_layer_ref = response.headers.get("Location", "")
            assert empty_layer_ref, _show(response)
        else:  # only a warning in the suite
            warnings.warn(f"image manifest with no layers is not supported: {_show(response)}", stacklevel=1)
    with spec(f"{title} / GET request to manifest URL (digest) should yield 200 response"):
        response = run.send("GET", f"/v2/{ns}/manifests/{sha256(data.manifests[1])}", headers=ACCEPT_MANIFEST)
        assert response.status_code == 200, _show(response)

    with spec("Push / Teardown / Delete manifest created in tests"):
        response = run.send("DELETE", f"/v2/{ns}/manifests/{sha256(data.manifests[1])}")  # tagged test0..3
        assert _is_2xx(response) or response.status_code == 405, _show(response)
        if empty_layer_ref:
            response = run.send("DELETE", f"/v2/{ns}/manifests/{sha256(data.empty_layer_manifest)}")
            assert _is_2xx(response) or response.status_code == 405, _show(response)
    for what, digest in (
        ("config blob created in tests", config1),
        ("layer blob created in setup", LAYER_DIGEST),
    ):
        with spec(f"Push / Teardown / Delete {what}"):
            response = run.send("DELETE", f"/v2/{ns}/blobs/{digest}")
            assert _is_2xx(response) or response.status_code in (404, 405), _show(response)
    # Nothing in the cross-mount namespace is cleaned up, and testBlobA and testBlobB stay.


# --- 03_discovery_test.go ----------------------------------------------------------------------------------


def content_discovery(run: Run) -> None:
    data, spec, ns = run.data, run.spec, run.ns
    subject = sha256(data.manifests[4])
    num_tags = 4
    tag_list: list[str] = []

    title = "Content Discovery / Setup"
    with spec(f"{title} / Populate registry with test blob"):
        run.populate(data.configs[2])
    with spec(f"{title} / Populate registry with test layer"):
        run.populate(LAYER)
    with spec(f"{title} / Populate registry with test tags"):
        for i in range(num_tags):  # re-points the tags a Push run left behind
            tag_list.append(f"test{i}")
            response = run.put_manifest(f"test{i}", data.manifests[2])
            assert _is_2xx(response), _show(response)
        tag_list = _tag_list(run.send("GET", f"/v2/{ns}/tags/list"))  # not checked
    with spec(f"{title} / Populate registry with test tags (no push)"):
        _run_only_if(False)  # only with OCI_TAG_LIST
    with spec(f"{title} / References setup"):
        # One spec: it stops at the first failure, and nothing after it is pushed.
        assert sha256(EMPTY_JSON) == EMPTY_JSON_DIGEST
        run.populate(EMPTY_JSON)
        run.populate(REF_BLOB_A)  # before the subject is pushed
        # Referrers of a subject that does not exist yet must be accepted, and answer OCI-Subject.
        for body, media_type in (
            (data.ref_a_config, OCI_MANIFEST),
            (data.ref_a_layer, OCI_MANIFEST),
            (data.ref_index, OCI_INDEX),
        ):
            response = run.put_manifest(sha256(body), body, media_type)
            assert _is_2xx(response), _show(response)
            assert response.headers.get("OCI-Subject") == subject, _show(response)
        run.populate(data.configs[4])
        run.populate(LAYER)  # already there
        response = run.put_manifest(TEST_TAG, data.manifests[4])  # the subject now exists
        assert _is_2xx(response), _show(response)
        run.populate(REF_BLOB_B)  # after the subject is pushed
        for body, expected in (
            (data.ref_b_config, subject),
            (data.ref_b_layer, subject),
            (data.ref_c_layer, sha256(data.manifests[3])),  # a subject that does not exist
        ):
            response = run.put_manifest(sha256(body), body)
            assert _is_2xx(response), _show(response)
            assert response.headers.get("OCI-Subject") == expected, _show(response)

    title = "Content Discovery / Test content discovery endpoints (listing tags)"
    with spec(f"{title} / GET request to list tags should yield 200 response"):
        response = run.send("GET", f"/v2/{ns}/tags/list")
        assert response.status_code == 200, _show(response)
        tag_list = _tag_list(response)
        num_tags = len(tag_list)
    with spec(f"{title} / GET number of tags should be limitable by `n` query parameter"):
        n = num_tags // 2
        response = run.send("GET", f"/v2/{ns}/tags/list", query={"n": str(n)})
        assert response.status_code == 200, _show(response)
        tag_list = _tag_list(response)
        assert len(tag_list) == n, _show(response)
    with spec(f"{title} / GET start of tag is set by `last` query parameter"):
        n = num_tags // 2
        response = run.send("GET", f"/v2/{ns}/tags/list", query={"n": str(n)})
        tag_list = _tag_list(response)
        assert 0 < n <= len(tag_list), f"index out of range: tags[{n - 1}] of {tag_list}"  # a panic in Go
        response = run.send("GET", f"/v2/{ns}/tags/list", query={"n": str(n), "last": tag_list[n - 1]})
        assert response.status_code == 200, _show(response)
        # As in the suite, only the first page is checked (and trivially); the second is not parsed.
        assert len(tag_list) <= n, tag_list
        assert tag_list[n - 1] in tag_list

    title = "Content Discovery / Test content discovery endpoints (listing references)"
    with spec(f"{title} / GET request to nonexistent blob should result in empty 200 response"):
        response = run.send("GET", f"/v2/{ns}/referrers/{DUMMY_DIGEST}")
        assert response.status_code == 200, _show(response)
        assert response.headers.get("Content-Type") == OCI_INDEX, _show(response)  # exactly, no parameter
        assert len(_index_manifests(response)) == 0, _show(response)
    with spec(f"{title} / GET request to existing blob should yield 200"):
        response = run.send("GET", f"/v2/{ns}/referrers/{subject}")
        assert response.status_code == 200, _show(response)
        assert response.headers.get("Content-Type") == OCI_INDEX, _show(response)
        manifests = _index_manifests(response)
        assert len(manifests) == 5, _show(response)  # AConfig, ALayer, Index, BConfig, BLayer
        assert manifests[0].get("digest") != manifests[1].get("digest")
        _check_annotations(data, manifests)
    with spec(f"{title} / GET request to existing blob with filter should yield 200"):
        response = run.send("GET", f"/v2/{ns}/referrers/{subject}", query={"artifactType": ARTIFACT_TYPE_A})
        assert response.status_code == 200, _show(response)
        assert response.headers.get("Content-Type") == OCI_INDEX, _show(response)
        manifests = _index_manifests(response)
        if response.headers.get("OCI-Filters-Applied"):
            # ALayer, and AConfig, whose artifact type is its config's media type.
            assert len(manifests) == 2, _show(response)
            assert response.headers["OCI-Filters-Applied"] == "artifactType", _show(response)
        else:
            assert len(manifests) == 5, _show(response)
            warnings.warn("filtering by artifact-type is not implemented", stacklevel=1)
        _check_annotations(data, manifests)
    with spec(f"{title} / GET request to missing manifest should yield 200"):
        response = run.send("GET", f"/v2/{ns}/referrers/{sha256(data.manifests[3])}")
        assert response.status_code == 200, _show(response)
        assert response.headers.get("Content-Type") == OCI_INDEX, _show(response)
        manifests = _index_manifests(response)
        assert len(manifests) == 1, _show(response)
        assert manifests[0].get("digest") == sha256(data.ref_c_layer), _show(response)

    title = "Content Discovery / Teardown"
    with spec(f"{title} / Delete created manifest & associated tags"):
        # The subject goes while its referrers remain, the index before its children, and one of these
        # references is a tag sent where the suite means a digest: 400 fails.
        for reference in (
            sha256(data.ref_index),
            sha256(data.manifests[2]),
            subject,
            sha256(data.ref_a_config),
            sha256(data.ref_a_layer),
            TEST_TAG,
            sha256(data.ref_b_config),
            sha256(data.ref_b_layer),
            sha256(data.ref_c_layer),
        ):
            response = run.send("DELETE", f"/v2/{ns}/manifests/{reference}")
            assert _is_2xx(response) or response.status_code in (404, 405), _show(response)
    for what, digest in (
        ("config blob created in tests", sha256(data.configs[2])),
        ("layer blob created in setup", LAYER_DIGEST),
    ):
        with spec(f"{title} / Delete {what}"):
            response = run.send("DELETE", f"/v2/{ns}/blobs/{digest}")
            assert _is_2xx(response) or response.status_code == 405, _show(response)  # 404 fails
    with spec(f"{title} / References teardown"):
        for path in (
            *(
                f"manifests/{sha256(body)}"
                for body in (
                    data.ref_index,
                    data.ref_a_config,
                    data.ref_a_layer,
                    data.manifests[4],
                    data.ref_b_config,
                    data.ref_b_layer,
                )
            ),
            *(f"blobs/{sha256(blob)}" for blob in (data.configs[4], REF_BLOB_A, REF_BLOB_B, EMPTY_JSON)),
        ):
            response = run.send("DELETE", f"/v2/{ns}/{path}")
            assert _is_2xx(response) or response.status_code in (404, 405), _show(response)


# --- 04_management_test.go ---------------------------------------------------------------------------------


def content_management(run: Run) -> None:
    data, spec, ns = run.data, run.spec, run.ns
    manifest3 = sha256(data.manifests[3])
    tag_to_delete = ""
    num_tags = 0
    blob_delete_allowed = True

    title = "Content Management / Setup"
    with spec(f"{title} / Populate registry with test config blob"):
        run.populate(data.configs[3])
    with spec(f"{title} / Populate registry with test layer"):
        run.populate(LAYER)
    with spec(f"{title} / Populate registry with test tag"):
        tag_to_delete = TEST_TAG
        response = run.put_manifest(tag_to_delete, data.manifests[3])  # CLayer's subject, if CLayer is there
        assert _is_2xx(response), _show(response)
    with spec(f"{title} / Check how many tags there are before anything gets deleted"):
        response = run.send("GET", f"/v2/{ns}/tags/list")
        assert response.status_code == 200, _show(response)
        num_tags = len(_tag_list(response, strict=True))

    title = "Content Management / Manifest delete"
    with spec(
        f"{title} / DELETE request to manifest tag should return 202, "
        "unless tag deletion is disallowed (400/405)"
    ):
        response = run.send("DELETE", f"/v2/{ns}/manifests/{tag_to_delete}")
        assert response.status_code in (202, 400, 405), _show(response)  # 200 and 204 fail
        if response.status_code == 400:
            assert _error_codes(response)[0] == "UNSUPPORTED", _show(response)
    with spec(
        f"{title} / DELETE request to manifest (digest) should yield 202 response unless already deleted"
    ):
        response = run.send("DELETE", f"/v2/{ns}/manifests/{manifest3}")
        assert response.status_code in (202, 404), _show(response)
    with spec(
        f"{title} / GET request to deleted manifest URL should yield 404 response, "
        "unless delete is disallowed"
    ):
        response = run.send("GET", f"/v2/{ns}/manifests/{manifest3}")  # no Accept header
        assert response.status_code in (404, 200), _show(response)
    with spec(f"{title} / GET request to tags list should reflect manifest deletion"):
        # Still 200 when the repository has no tag left.
        response = run.send("GET", f"/v2/{ns}/tags/list")
        assert response.status_code == 200, _show(response)
        assert len(_tag_list(response, strict=True)) < num_tags, _show(response)

    title = "Content Management / Blob delete"
    with spec(f"{title} / DELETE request to blob URL should yield 202 response"):
        response = run.send("DELETE", f"/v2/{ns}/blobs/{sha256(data.configs[3])}")
        assert response.status_code in (202, 404, 405), _show(response)
        response = run.send("DELETE", f"/v2/{ns}/blobs/{LAYER_DIGEST}")
        assert response.status_code in (202, 404, 405), _show(response)
        if response.status_code == 405:
            blob_delete_allowed = False
    with spec(f"{title} / GET request to deleted blob URL should yield 404 response"):
        _run_only_if(blob_delete_allowed)  # decided by the layer's answer, but the config is checked
        response = run.send("GET", f"/v2/{ns}/blobs/{sha256(data.configs[3])}")
        assert response.status_code == 404, _show(response)


# --- The tests ---------------------------------------------------------------------------------------------


@pytest.fixture
def http(client: httpx.Client) -> httpx.Client:
    """The fixture's client, made to send what the suite's client sends."""
    del client.headers["Accept"]
    client.headers["User-Agent"] = USER_AGENT
    client.follow_redirects = True
    client.max_redirects = 20
    return client


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    """`conformance/<test>-<backend>`: each test has namespaces of its own on the shared server."""
    callspec = getattr(request.node, "callspec", None)
    backend = callspec.params.get("database", "default") if callspec else "default"
    workflow = request.node.originalname.removeprefix("test_").replace("_", "-")
    return f"conformance/{workflow}-{backend}"


def _run(http: httpx.Client, namespace: str) -> Run:
    return Run(http, namespace, namespace.replace("conformance/", "conformance/crossmount-", 1))


def test_pull(http: httpx.Client, namespace: str) -> None:
    run = _run(http, namespace)
    pull(run)
    run.spec.finish()


def test_push(http: httpx.Client, namespace: str) -> None:
    run = _run(http, namespace)
    push(run)
    run.spec.finish()


def test_content_discovery(http: httpx.Client, namespace: str) -> None:
    run = _run(http, namespace)
    content_discovery(run)
    run.spec.finish()


def test_content_management(http: httpx.Client, namespace: str) -> None:
    run = _run(http, namespace)
    content_management(run)
    run.spec.finish()


def test_all_workflows_in_one_namespace(http: httpx.Client, namespace: str) -> None:
    """The suite's default run: Pull, Push, Content Discovery, Content Management, on one namespace."""
    run = _run(http, namespace)
    pull(run)
    push(run)
    content_discovery(run)
    content_management(run)
    run.spec.finish()
