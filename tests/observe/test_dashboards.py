"""The shipped Grafana dashboard and Prometheus alert rules: every metric they name is one a live server
exposes (a renamed metric fails here, not silently on a dashboard), and the rules pass promtool."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.oci import OCI_MANIFEST, image_manifest, push_blob, put_manifest, sha256
from tests.support.server import RegistryProcess
from tests.support.tools import require_tool
from tests.support.webhooks import Receiver, endpoint_env

DEPLOY = Path(__file__).parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "registry.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"


def _names(expressions: list[str]) -> set[str]:
    """The registry's metric names in PromQL expressions (every one starts `registry_`; labels never do)."""
    return {name for expr in expressions for name in re.findall(r"\bregistry_[a-z0-9_]+", expr)}


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _alert_expressions() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _exposed(server: RegistryProcess) -> set[str]:
    text = httpx.get(f"{server.url}/metrics").text
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def _kept_answers_exposed(data_dir: Path) -> set[str]:
    """What a SQLite registry exposes once a pull was answered from memory (on PostgreSQL none is)."""
    kept = RegistryProcess(data_dir).start()
    try:
        with kept.client() as client:
            blob = f"/v2/dash/kept/blobs/{push_blob(client, 'dash/kept', b'pulled again')}"
            assert [client.head(blob).status_code for _ in range(5)] == [200] * 5
        return _exposed(kept)
    finally:
        kept.stop()


def test_every_metric_named_is_exposed(
    make_server: Callable[..., RegistryProcess], receiver: Receiver, tmp_path: Path
) -> None:
    server = make_server(**endpoint_env(receiver))
    with server.client() as client:
        layer = b"dashboard layer"
        assert (
            put_manifest(client, "dash/app", "v1", image_manifest(client, "dash/app", [layer])).status_code
            == 201
        )
        assert client.get("/v2/dash/app/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
        assert client.get(f"/v2/dash/app/blobs/{sha256(layer)}").status_code == 200
        assert client.get("/v2/dash/none/manifests/v1").status_code == 404
    receiver.wait_for(lambda got: len(got) >= 3)
    tokens = make_server(REGISTRY_AUTH_MODE="token")
    assert httpx.get(f"{tokens.url}/auth/token", params={"service": "registry"}).status_code == 200
    exposed = _exposed(server) | _exposed(tokens) | _kept_answers_exposed(tmp_path / "kept")
    named = _names(_dashboard_expressions()) | _names(_alert_expressions())
    assert len(named) > 15, named  # the expressions were read, not skipped
    missing = sorted(named - exposed)
    assert not missing, f"named in deploy/ but not exposed: {missing}"


def test_alert_rules_pass_promtool() -> None:
    promtool = require_tool("promtool")["promtool"]
    checked = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert {
        rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    } >= {
        "RegistryHighErrorRate",
        "RegistryNotReady",
        "RegistryDiskAlmostFull",
        "RegistryWebhookBacklog",
    }
