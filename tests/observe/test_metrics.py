"""/metrics on a real `registry serve`: requests and events counted once each, added up across worker
processes (each worker's within batch.DELAY), storage gauges from the index, and the operator's choice of
address and credentials."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import bcrypt
import httpx
from prometheus_client.parser import text_string_to_metric_families

from registry.observe.batch import DELAY
from tests.support.oci import image_manifest, put_manifest
from tests.support.server import RegistryProcess
from tests.support.tools import free_port

MAX_TRIES = 400
REQUESTS = dict(route="get_manifest", method="GET", status="200")


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, parsed by prometheus-client's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def _settled(found: dict[tuple[str, frozenset], float], pulls: int) -> bool:
    """Every count of the test in: the pulls, and the push, which a worker that served no pull may
    hold for up to DELAY (its counter file exists from its first count, before it is written)."""
    histogram = dict(route="get_manifest", method="GET")
    return (
        value(found, "registry_http_requests_total", **REQUESTS) == pulls
        and value(found, "registry_http_request_duration_seconds_count", **histogram) == pulls
        and value(found, "registry_events_total", target="manifest", action="pull") == pulls
        and value(found, "registry_events_total", target="manifest", action="push") == 1
        and value(found, "registry_events_total", target="blob", action="push") == 2
        and value(found, "registry_events_total", target="tag", action="delete") == 1
    )


def _workers_with_metrics(directory: Path) -> set[str]:
    """The processes that have recorded a counter: each writes its own `counter_<pid>.db`."""
    return {path.stem.partition("_")[2] for path in directory.glob("counter_*.db")}


def test_push_and_pull_add_up_across_two_workers(
    make_server: Callable[..., RegistryProcess], tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    stale = directory / "counter_999999.db"
    stale.write_bytes(os.urandom(64))  # left by an earlier run: must not be added to this one
    server = make_server(REGISTRY_SERVER_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(directory))
    assert not stale.exists()
    repo = "metrics/app"
    layer = os.urandom(3000)
    with server.client() as client:
        body = image_manifest(client, repo, layers=[layer])
        assert put_manifest(client, repo, "v1", body).status_code == 201
    # Pull on fresh connections until both workers have served some (checked, not assumed).
    pulls = 0
    while len(_workers_with_metrics(directory)) < 2 or pulls < 4:
        assert pulls < MAX_TRIES, "the second worker never served a request"
        response = httpx.get(f"{server.url}/v2/{repo}/manifests/v1", headers={"Accept": "*/*"})
        assert response.status_code == 200
        pulls += 1
    with server.client() as client:
        assert client.delete(f"/v2/{repo}/manifests/v1").status_code == 202
        # The worker answering /metrics adds its own counts first; the other's arrive within DELAY.
        deadline = time.monotonic() + 3 * DELAY
        found = samples(client.get("/metrics").text)
        while not _settled(found, pulls) and time.monotonic() < deadline:
            time.sleep(DELAY / 10)
            found = samples(client.get("/metrics").text)

    assert value(found, "registry_events_total", target="manifest", action="pull") == pulls
    assert value(found, "registry_event_bytes_total", target="manifest", action="pull") == pulls * len(body)
    assert value(found, "registry_events_total", target="manifest", action="push") == 1
    assert value(found, "registry_events_total", target="blob", action="push") == 2  # config and layer
    assert value(found, "registry_events_total", target="tag", action="delete") == 1
    assert value(found, "registry_http_requests_total", **REQUESTS) == pulls
    histogram = dict(route="get_manifest", method="GET")
    assert value(found, "registry_http_request_duration_seconds_count", **histogram) == pulls
    assert value(found, "registry_http_sent_bytes_total", route="get_manifest") == pulls * len(body)
    assert value(found, "registry_http_received_bytes_total", route="put_manifest") == len(body)
    assert value(found, "registry_storage_blob_bytes") >= len(layer)
    assert value(found, "registry_storage_blobs") >= 2


def test_unknown_paths_and_refusals_have_bounded_labels(make_server: Callable[..., RegistryProcess]) -> None:
    server = make_server()
    with server.client() as client:
        for n in range(3):
            assert client.get(f"/no/such/path/{n}").status_code == 404
        assert client.request("BREW", "/v2/").status_code == 405
        found = samples(client.get("/metrics").text)
    assert value(found, "registry_http_requests_total", route="unmatched", method="GET", status="404") == 3
    assert (
        value(found, "registry_http_requests_total", route="version_check", method="other", status="405") == 1
    )
    labels = {dict(key[1]).get("route") for key in found if key[0] == "registry_http_requests_total"}
    assert not any("/" in label for label in labels if label), labels


def test_metrics_on_their_own_address_with_credentials(
    make_server: Callable[..., RegistryProcess], tmp_path: Path
) -> None:
    htpasswd = tmp_path / "metrics.htpasswd"
    htpasswd.write_text("prometheus:" + bcrypt.hashpw(b"scrape-secret", bcrypt.gensalt(4)).decode() + "\n")
    port = free_port()
    server = make_server(
        REGISTRY_SERVER_ENGINE="hypercorn",
        REGISTRY_HTTP_DEBUG_ADDR=f"127.0.0.1:{port}",
        REGISTRY_METRICS_HTPASSWD=str(htpasswd),
    )
    metrics_url = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{server.url}/metrics").status_code == 404  # not on the registry's address
    assert httpx.get(f"{metrics_url}/v2/").status_code == 404  # nothing but the operator's paths there
    assert httpx.get(f"{metrics_url}/healthz").status_code == 200
    refused = httpx.get(f"{metrics_url}/metrics")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
    assert httpx.get(f"{metrics_url}/metrics", auth=("prometheus", "wrong")).status_code == 401
    scraped = httpx.get(f"{metrics_url}/metrics", auth=("prometheus", "scrape-secret"))
    assert scraped.status_code == 200
    found = samples(scraped.text)
    assert value(found, "registry_http_requests_total", route="healthz", method="GET", status="200") == 1
    assert value(found, "registry_http_requests_total", route="metrics", method="GET", status="401") == 2


def test_metrics_can_be_turned_off(make_server: Callable[..., RegistryProcess]) -> None:
    server = make_server(REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED="false")
    assert httpx.get(f"{server.url}/metrics").status_code == 404
    assert httpx.get(f"{server.url}/v2/").status_code == 200
