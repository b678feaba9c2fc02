"""Properties of manifest parsing, where a pushing client's (or, for `registry pull`, a registry's) bytes
arrive: any input parses or is refused with a 4xx (a client error for the client), never anything else;
generated valid manifests keep their digest and what they reference."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from registry.client.distribution import Manifest
from registry.client.errors import RegistryClientError
from registry.client.pull import manifest_document
from registry.errors import RegistryError
from registry.services.manifests import MAX_BLOB_SIZE, parse_manifest
from registry.types import MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST, Digest
from registry.untrusted_json import MAX_DEPTH, JSONRejected, load
from tests.support.properties import FEW, PROPERTIES

KEYS = ["schemaVersion", "mediaType", "config", "layers", "manifests", "subject", "digest", "size",
        "artifactType", "annotations", "platform"]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from([*sorted(MANIFEST_TYPES), "sha256:" + "a" * 64, 2])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=30,
)
content_types = st.none() | st.sampled_from([*sorted(MANIFEST_TYPES), "text/plain", ""])
references = st.sampled_from(["v1", "sha256:" + "0" * 64, ".bad", "md5:00"])


def _parses_or_4xx(body: bytes, content_type: str | None, reference: str) -> None:
    try:
        put = parse_manifest(body, content_type, reference)
    except RegistryError as error:
        assert 400 <= error.status < 500
        json.loads(error.body())  # the spec's error body, whatever the input
    else:
        assert put.record.digest == "sha256:" + hashlib.sha256(body).hexdigest()
        assert put.record.payload == body
    with contextlib.suppress(RegistryClientError):
        manifest_document(Manifest(body, content_type or OCI_MANIFEST, None))


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@PROPERTIES
@given(st.binary(max_size=200), content_types, references)
@example(_nested(100_000), None, "v1")  # RecursionError: a 500
@example(b'{"a":' + b"9" * 5000 + b"}", None, "v1")  # int() digit limit: a ValueError, a 500
@example('{"schemaVersion":2}'.encode("utf-16"), OCI_MANIFEST, "v1")  # json.loads guesses UTF-16
@example(b'{"mediaType": ["x"]}', OCI_MANIFEST, "v1")  # the client put a list in a set: TypeError
def test_any_bytes_parse_or_are_refused_with_a_4xx(
    body: bytes, content_type: str | None, reference: str
) -> None:
    _parses_or_4xx(body, content_type, reference)


@PROPERTIES
@given(json_values, content_types, references)
def test_any_json_parses_or_is_refused_with_a_4xx(
    document: Any, content_type: str | None, reference: str
) -> None:
    _parses_or_4xx(json.dumps(document).encode(), content_type, reference)


@FEW
@given(st.integers(1, 3 * MAX_DEPTH), st.sampled_from([b"[", b'{"a":']))
def test_nesting_is_bounded_at_any_depth(depth: int, opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    body = opener * depth + b"0" + closer * depth
    try:
        load(body)
    except JSONRejected:
        assert depth > MAX_DEPTH
    else:
        assert depth <= MAX_DEPTH


@PROPERTIES
@given(json_values)
def test_json_within_the_bounds_round_trips(document: Any) -> None:
    assert load(json.dumps(document).encode()) == document


def _descriptor(data: bytes, media_type: str, size: int | None = None) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": str(Digest.of(data)),
        "size": len(data) if size is None else size,
    }


media_types = st.builds(
    "{}/{}{}".format,
    st.sampled_from(["application", "text", "x-Y.1"]),
    st.text("abz09.-_+", min_size=1, max_size=120).map(lambda subtype: "v" + subtype),
    st.sampled_from(["", "+json", "+gzip"]),
)
blobs = st.binary(max_size=8)
sizes = st.none() | st.integers(0, MAX_BLOB_SIZE) | st.just(MAX_BLOB_SIZE)


@PROPERTIES
@given(
    config=st.tuples(blobs, media_types, sizes),
    layers=st.lists(st.tuples(blobs, media_types, sizes), max_size=5),
    subject=st.none() | blobs,
    annotations=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    indent=st.none() | st.sampled_from([0, 2, "\t"]),
    by_digest=st.booleans(),
)
def test_a_valid_image_manifest_keeps_its_digest_and_references(
    config: tuple[bytes, str, int | None],
    layers: list[tuple[bytes, str, int | None]],
    subject: bytes | None,
    annotations: dict[str, str],
    indent: int | str | None,
    by_digest: bool,
) -> None:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(*config),
        "layers": [_descriptor(*layer) for layer in layers],
        "annotations": annotations,
    }
    if subject is not None:
        document["subject"] = _descriptor(subject, OCI_MANIFEST)
    body = json.dumps(document, indent=indent).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    put = parse_manifest(body, OCI_MANIFEST, digest if by_digest else "v1")
    assert put.record.digest == digest and put.record.payload == body and put.record.size == len(body)
    assert tuple(put.tags) == (() if by_digest else ("v1",))
    assert put.blobs == tuple(dict.fromkeys(d["digest"] for d in [document["config"], *document["layers"]]))
    assert put.manifests == ()
    assert put.record.subject == (document["subject"]["digest"] if subject is not None else None)
    assert put.record.artifact_type == config[1]
    assert put.record.annotations is None or json.loads(put.record.annotations) == annotations
    assert manifest_document(Manifest(body, OCI_MANIFEST, digest)) == (OCI_MANIFEST, document)


@PROPERTIES
@given(st.lists(blobs, max_size=6), st.none() | media_types)
def test_a_valid_index_keeps_its_children(children: list[bytes], artifact_type: str | None) -> None:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [_descriptor(child, OCI_MANIFEST) for child in children],
    }
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    body = json.dumps(document).encode()
    put = parse_manifest(body, None, "latest")
    assert put.manifests == tuple(str(Digest.of(child)) for child in children)
    assert put.blobs == () and put.record.media_type == OCI_INDEX
    assert put.record.artifact_type == artifact_type
