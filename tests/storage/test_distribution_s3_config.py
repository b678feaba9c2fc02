"""A fuller Distribution `config.yml` served as it is: the S3 store (a moto server), Basic authentication
from an htpasswd file, TLS, notifications, and keys this registry does not read (redis, s3 options)
named in warnings while skopeo pushes and pulls."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.auth.test_basic_auth import htpasswd_line
from tests.client.conftest import skopeo_push
from tests.e2e.test_distribution_config import _manifest_digest
from tests.storage.conftest import MOTO_KEYS, new_bucket, s3_client
from tests.support.images import build_busybox_layout, layout_descriptor
from tests.support.server import RegistryProcess
from tests.support.tools import run_registry

CONFIG = """\
version: 0.1
log:
  level: info
  formatter: json
storage:
  s3:
    accesskey: {access_key}
    secretkey: {secret_key}
    region: {region}
    regionendpoint: {endpoint}
    bucket: {bucket}
    rootdirectory: /distribution
    secure: false
    v4auth: true
  delete:
    enabled: true
  redirect:
    disable: true
http:
  addr: 127.0.0.1:{port}
  secret: not-needed-here
  tls:
    certificate: {pki}/server.crt
    key: {pki}/server.key
auth:
  htpasswd:
    realm: corp
    path: {root}/htpasswd
notifications:
  endpoints:
    - name: listener
      url: https://listener.invalid/event
      timeout: 500ms
redis:
  addr: localhost:6379
"""


@pytest.mark.clients
def test_s3_tls_htpasswd_config_serves(moto_endpoint: str, tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    made = run_registry("cert", "init", "--host", "localhost", "--ip", "127.0.0.1", "--out", str(pki))
    assert made.returncode == 0, made.stderr
    (tmp_path / "htpasswd").write_text(htpasswd_line("dora", "dora-password"))
    bucket = new_bucket(moto_endpoint)
    server = RegistryProcess(tmp_path / "data")
    config = tmp_path / "config.yml"
    config.write_text(
        CONFIG.format(
            **MOTO_KEYS, endpoint=moto_endpoint, bucket=bucket, port=server.port, pki=pki, root=tmp_path
        )
    )
    server.extra_env["REGISTRY_CONFIG"] = str(config)
    server.extra_env["REGISTRY_HTTP_TLS_CERTIFICATE"] = str(pki / "server.crt")  # the helper's https://
    server.start()
    try:
        layout = build_busybox_layout(tmp_path / "layout", "1")
        reference = f"{server.host}/team/busybox:1"
        skopeo_push(layout, "1", reference, "--dest-creds", "dora:dora-password")
        assert _manifest_digest(reference, "dora:dora-password") == layout_descriptor(layout, "1")["digest"]
        keys = [item["Key"] for item in s3_client(moto_endpoint).list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys and all(key.startswith("distribution/") for key in keys), keys
    finally:
        server.stop()
    log = server.log.read_text()
    for key in ("redis", "storage.s3.secure", "storage.s3.v4auth", "http.secret"):
        assert f"'{key}'" in log, key
