"""Which requests may be answered again from memory, and how much memory that takes
(registry/api/kept.py, registry/unchanged.py). What the answers are is tested on a real server in
tests/api/test_kept_answers.py."""

from __future__ import annotations

import time
from typing import Any

import pytest

from registry.api.kept import KEEP, Answer, KeptAnswers, Miss
from registry.unchanged import KeptWhileUnchanged
from tests.support.asgi import http_scope

MANIFEST = "/v2/kept/app/manifests/latest"
ACCEPT = (b"accept", b"application/vnd.oci.image.manifest.v1+json")


class Versions:
    """The index's version as the test sets it: what a commit would do to the WAL index header."""

    def __init__(self) -> None:
        self.now: bytes | None = b"one"

    def __call__(self) -> bytes | None:
        return self.now


def _kept(versions: Versions, max_header_size: int = 8192) -> KeptAnswers:
    return KeptAnswers(versions, max_header_size)


def _answered(kept: KeptAnswers, scope: dict[str, Any], until: float = float("inf")) -> None:
    """The request went the whole way, its handler marked its 200 answer, the observe layer kept it."""
    miss = kept.find(scope)
    assert isinstance(miss, Miss)
    scope.update(route="the route", path_params={"name": "kept/app"})
    scope[KEEP] = (None, until)
    kept.keep(miss, scope, 200, [(b"content-type", b"text/plain")], b"body")


def test_the_same_request_is_answered_again_until_the_index_changes() -> None:
    versions = Versions()
    kept = _kept(versions)
    _answered(kept, http_scope("GET", MANIFEST, headers=[ACCEPT]))
    answer = kept.find(http_scope("GET", MANIFEST, headers=[ACCEPT, (b"user-agent", b"another")]))
    assert isinstance(answer, Answer)
    assert (answer.body, answer.route, answer.path_params) == (b"body", "the route", {"name": "kept/app"})
    versions.now = b"two"
    assert isinstance(kept.find(http_scope("GET", MANIFEST, headers=[ACCEPT])), Miss)
    versions.now = b"one"  # a version seen before is no promise: everything was forgotten
    assert isinstance(kept.find(http_scope("GET", MANIFEST, headers=[ACCEPT])), Miss)


def test_method_path_and_accept_tell_answers_apart() -> None:
    kept = _kept(Versions())
    _answered(kept, http_scope("GET", MANIFEST, headers=[ACCEPT]))
    others = [
        http_scope("HEAD", MANIFEST, headers=[ACCEPT]),
        http_scope("GET", MANIFEST + "x", headers=[ACCEPT]),
        http_scope("GET", MANIFEST),
        http_scope("GET", MANIFEST, headers=[(b"accept", b"application/vnd.oci.image.index.v1+json")]),
        http_scope("GET", MANIFEST, headers=[ACCEPT, ACCEPT]),
    ]
    for scope in others:
        assert isinstance(kept.find(scope), Miss), scope


@pytest.mark.parametrize(
    "scope",
    [
        http_scope("PUT", MANIFEST, headers=[ACCEPT]),
        http_scope("DELETE", MANIFEST, headers=[ACCEPT]),
        http_scope("GET", MANIFEST, "n=1", headers=[ACCEPT]),
        http_scope("HEAD", MANIFEST, headers=[ACCEPT, (b"range", b"bytes=0-0")]),
        http_scope("GET", MANIFEST, headers=[ACCEPT, (b"content-length", b"3")]),
        http_scope("GET", MANIFEST, headers=[ACCEPT, (b"transfer-encoding", b"chunked")]),
        http_scope("GET", MANIFEST, headers=[ACCEPT, (b"x-big", b"x" * 9000)]),
    ],
    ids=["put", "delete", "query", "range", "body", "chunked-body", "headers-over-the-limit"],
)
def test_requests_an_answer_could_not_cover_go_the_whole_way(scope: dict[str, Any]) -> None:
    kept = _kept(Versions())
    plain = {**scope, "method": "GET", "query_string": b"", "headers": [ACCEPT]}
    _answered(kept, plain)
    assert kept.find(scope) is None


def test_without_a_version_nothing_is_kept() -> None:
    """PostgreSQL, or a commit half published: every request reads the database."""
    versions = Versions()
    versions.now = None
    assert _kept(versions).find(http_scope("GET", MANIFEST, headers=[ACCEPT])) is None


def test_unmarked_and_failed_answers_are_not_kept() -> None:
    kept = _kept(Versions())
    scope = http_scope("GET", MANIFEST, headers=[ACCEPT])
    miss = kept.find(scope)
    assert isinstance(miss, Miss)
    scope.update(route="r", path_params={})
    kept.keep(miss, scope, 200, [], b"no handler marked it")
    assert isinstance(kept.find(scope), Miss)
    scope[KEEP] = (None, float("inf"))
    kept.keep(miss, scope, 404, [], b"not found")
    assert isinstance(kept.find(scope), Miss)


def test_an_answer_is_given_again_only_until_its_time() -> None:
    """A blob HEAD's answer holds while the blob's link is fresh; after that the HEAD must refresh it,
    and its new answer replaces the old."""
    kept = _kept(Versions())
    scope = http_scope("HEAD", "/v2/kept/app/blobs/sha256:" + "0" * 64)
    _answered(kept, scope, until=time.time() + 3600)
    assert isinstance(kept.find(scope), Answer)
    later = http_scope("HEAD", "/v2/kept/app/blobs/sha256:" + "1" * 64)
    _answered(kept, later, until=time.time() - 1)
    assert isinstance(kept.find(later), Miss)
    _answered(kept, later, until=time.time() + 3600)
    assert isinstance(kept.find(later), Answer)


def test_an_answer_computed_under_an_older_version_is_not_kept() -> None:
    """The version is read before the request goes in: a commit meanwhile may have changed the answer."""
    versions = Versions()
    kept = _kept(versions)
    scope = http_scope("GET", MANIFEST, headers=[ACCEPT])
    miss = kept.find(scope)
    assert isinstance(miss, Miss)
    versions.now = b"two"
    assert isinstance(kept.find(http_scope("GET", "/v2/other/manifests/latest")), Miss)
    scope.update(route="r", path_params={})
    scope[KEEP] = (None, float("inf"))
    kept.keep(miss, scope, 200, [], b"computed under version one")
    assert isinstance(kept.find(scope), Miss)


def test_memory_is_bounded_by_entries_entry_size_and_total() -> None:
    values: KeptWhileUnchanged[int, bytes] = KeptWhileUnchanged(max_entries=3, max_entry=10, max_total=25)
    assert values.get(b"v", 0) is None  # first sight of the version
    values.keep(b"v", 0, b"too big", size=11)
    assert values.get(b"v", 0) is None
    for key in range(5):
        values.keep(b"v", key, b"x", size=10)
    assert len(values) == 2  # the third would pass 25 bytes in all
    values.keep(b"v", 2, b"x", size=5)
    values.keep(b"v", 3, b"x", size=0)
    assert len(values) == 3
    assert values.get(b"v", 3) is None  # past max_entries
    values.keep(b"v", 0, b"again", size=10)  # replaces, and takes no more room
    assert values.get(b"v", 0) == b"again"
    values.keep(b"v", 2, b"bigger", size=10)  # 10 + 10 + 10 + 0: over 25 in all, refused
    assert values.get(b"v", 2) == b"x"
    assert values.get(b"w", 0) is None
    assert len(values) == 0
