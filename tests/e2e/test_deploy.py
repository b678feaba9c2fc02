"""deploy/, checked with the real tools that will read it: Debian's nginx (`nginx -t`, then serving in front
of two registry processes), `systemd-analyze verify` and `systemd-sysusers`, `docker-compose config`, the
Kubernetes schemas (kubernetes-validate ships them, so no network), and the setting names, paths, ports and
users the files name, against the code and the image.

The compose file itself is not brought up here: its postgres, minio, mc and nginx images cannot be pulled
on these machines, and its default network would route to container addresses. The same topology runs
instead from real processes: two `registry serve` sharing one PostgreSQL index and one S3 bucket (moto),
behind Debian's nginx with deploy/nginx/registry.conf and a certificate from `registry cert init`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from registry.config import Settings, leaves
from tests.auth.conftest import pki  # noqa: F401  (a fixture)
from tests.e2e.test_skopeo import skopeo  # noqa: F401  (a fixture)
from tests.storage.conftest import moto_endpoint, new_bucket, s3_environment  # noqa: F401  (moto_endpoint)
from tests.support.images import build_busybox_layout
from tests.support.server import RegistryProcess
from tests.support.tools import free_port, require_tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NGINX_CONF = DEPLOY / "nginx" / "registry.conf"
UNIT = DEPLOY / "systemd" / "registry.service"
SYSUSERS = DEPLOY / "systemd" / "registry.sysusers"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
KUBERNETES = DEPLOY / "kubernetes" / "registry.yaml"
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"
KUBERNETES_VERSION = "1.30.0"


# ------------------------------------------------------------------------------------------------ nginx


def nginx_prefix(tmp_path: Path, certs: Path, site: str, upstreams: list[str], port: int) -> Path:
    """A private nginx prefix: a main config that includes `site` (our server block, with its upstream
    names, listen port and certificate paths pointed at this test's), logs and pid in the prefix."""
    prefix = tmp_path / "nginx"
    (prefix / "logs").mkdir(parents=True)
    servers = "".join(f"    server {upstream};\n" for upstream in upstreams)
    site = re.sub(r"(upstream registry \{\n)(?:    server .*\n)+", lambda m: m.group(1) + servers, site)
    site = site.replace("/etc/nginx/certs", str(certs)).replace("listen 443 ", f"listen 127.0.0.1:{port} ")
    (prefix / "site.conf").write_text(site)
    (prefix / "nginx.conf").write_text(
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log;\nevents {{}}\n"
        f"http {{\n  access_log {prefix}/logs/access.log;\n  include {prefix}/site.conf;\n}}\n"
    )
    return prefix


def nginx(prefix: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = require_tool("nginx")["nginx"]
    command = [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_nginx_accepts_the_config(tmp_path: Path, pki: Path) -> None:  # noqa: F811
    prefix = nginx_prefix(tmp_path, pki, NGINX_CONF.read_text(), ["127.0.0.1:5000"], free_port())
    tested = nginx(prefix, "-t")
    assert tested.returncode == 0 and "test is successful" in tested.stderr, tested.stderr
    # The check sees what Debian 12's nginx 1.22 refuses: `http2 on;` is 1.25.1's.
    newer = NGINX_CONF.read_text().replace("listen 443 ssl http2;", "listen 443 ssl;\n    http2 on;")
    prefix = nginx_prefix(tmp_path / "newer", pki, newer, ["127.0.0.1:5000"], free_port())
    assert 'unknown directive "http2"' in nginx(prefix, "-t").stderr


@pytest.fixture
def replicas(postgres, moto_endpoint: str, tmp_path: Path) -> Iterator[list[RegistryProcess]]:  # noqa: F811
    """Two registry processes sharing one PostgreSQL database and one S3 bucket, as in the compose file."""
    database, env = postgres.new_database(), s3_environment(moto_endpoint, new_bucket(moto_endpoint))
    started = [RegistryProcess(tmp_path / name, database, env) for name in ("a", "b")]
    yield started
    for process in started:
        if process.proc is not None:
            process.stop()


def test_nginx_in_front_of_two_replicas(
    replicas: list[RegistryProcess],
    pki: Path,  # noqa: F811
    skopeo,  # noqa: F811
    tmp_path: Path,
) -> None:
    port = free_port()
    for process in replicas:
        process.extra_env["REGISTRY_HTTP_HOST"] = f"https://localhost:{port}"
        process.start()
    prefix = nginx_prefix(tmp_path, pki, NGINX_CONF.read_text(), [r.host for r in replicas], port)
    proxy = subprocess.Popen(
        [
            require_tool("nginx")["nginx"],
            "-p",
            str(prefix),
            "-c",
            str(prefix / "nginx.conf"),
            "-g",
            "daemon off;",
        ]
    )
    try:
        cert_dir = pki / "certs"
        layout = build_busybox_layout(tmp_path / "busybox")
        ref = f"docker://localhost:{port}/team/busybox:1"
        skopeo("copy", "--retry-times", "3", "--dest-cert-dir", str(cert_dir), f"oci:{layout}:1", ref)
        skopeo("copy", "--src-cert-dir", str(cert_dir), ref, f"oci:{tmp_path / 'back'}:1")
        listed = skopeo("list-tags", "--cert-dir", str(cert_dir), f"docker://localhost:{port}/team/busybox")
        assert '"1"' in listed.stdout
    finally:
        proxy.terminate()
        proxy.wait(30)
    # nginx spread the requests over both replicas (round robin): they agree through the shared index.
    for process in replicas:
        assert " /v2/team/busybox/" in process.log.read_text(), process.log.read_text()[-3000:]


# ---------------------------------------------------------------------------------------------- systemd


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` checks the directives and that ExecStart's program exists: run it in a
    mount namespace of its own where /opt/registry is the README's virtual environment (this one)."""
    tools = require_tool("systemd-analyze", "unshare")
    registry = shutil.which("registry")
    assert registry, "the registry command of this virtual environment"
    script = (
        "set -e; mount -t tmpfs none /opt; mkdir -p /opt/registry/bin; "
        f'ln -s {registry} /opt/registry/bin/registry; {tools["systemd-analyze"]} verify "$1"'
    )
    for unit, expected in ((UNIT, 0), (_broken_unit(tmp_path), 1)):
        verified = subprocess.run(
            [tools["unshare"], "--mount", "sh", "-c", script, "verify", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert verified.returncode == expected, (unit, verified.stdout, verified.stderr)
    unit = UNIT.read_text()
    assert "ExecStart=/opt/registry/bin/registry serve" in unit
    assert "python3 -m venv /opt/registry" in README.read_text()  # where the README installs it
    assert re.search(r"^User=registry$", unit, re.M) and "registry" in SYSUSERS.read_text()


def _broken_unit(tmp_path: Path) -> Path:
    broken = tmp_path / "registry.service"
    broken.write_text(UNIT.read_text().replace("/opt/registry/bin/registry", "/opt/registry/bin/missing"))
    return broken


def test_sysusers_makes_the_user(tmp_path: Path) -> None:
    binary = require_tool("systemd-sysusers")["systemd-sysusers"]
    (tmp_path / "etc").mkdir()
    made = subprocess.run(
        [binary, f"--root={tmp_path}", str(SYSUSERS)], capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text()
    assert re.search(r"^registry:x:\d+:\d+:.*:/var/lib/registry:/usr/sbin/nologin$", passwd, re.M), passwd


# ---------------------------------------------------------------------------------------------- compose


def test_compose_config() -> None:
    tool = require_tool("docker-compose")["docker-compose"]
    checked = subprocess.run(
        [tool, "-f", str(COMPOSE), "config"], capture_output=True, text=True, timeout=60, cwd=COMPOSE.parent
    )
    assert checked.returncode == 0, checked.stderr
    services = yaml.safe_load(checked.stdout)["services"]
    assert {"postgres", "minio", "registry-a", "registry-b", "nginx", "certs"} <= set(services)
    for name in ("postgres", "minio", "registry-a", "registry-b", "nginx"):
        assert services[name].get("restart") == "unless-stopped", name
    # nginx's upstreams are the replicas, on the port the image listens on.
    upstreams = re.findall(r"server (\S+):(\d+);", NGINX_CONF.read_text())
    assert sorted(upstreams) == [("registry-a", "5000"), ("registry-b", "5000")]
    assert "EXPOSE 5000" in DOCKERFILE.read_text()
    # The replicas' settings are valid together (S3 with its bucket, PostgreSQL, token auth).
    settings = settings_of(services["registry-a"]["environment"])
    assert settings.storage.kind == "s3" and settings.index_url.startswith("postgresql+asyncpg://")


# ------------------------------------------------------------------------------------------- kubernetes


def test_kubernetes_manifests_match_their_schemas() -> None:
    documents = [d for d in yaml.safe_load_all(KUBERNETES.read_text()) if d]
    assert {d["kind"] for d in documents} >= {"Deployment", "Service"}
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):  # the check can fail
        kubernetes_validate.validate(
            {**documents[0], "spec": {**documents[0]["spec"], "replica": 2}}, KUBERNETES_VERSION, strict=True
        )
    pod = next(d for d in documents if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    env = {item["name"]: item["value"] for item in pod["containers"][0]["env"] if "value" in item}
    assert settings_of(env).auth.kind == "token"
    # The image's user: the uid the Dockerfile gives `registry`.
    uid = re.search(r"--uid (\d+)", DOCKERFILE.read_text())
    assert uid and pod["securityContext"]["runAsUser"] == int(uid.group(1))


# ---------------------------------------------------------------------------------------------- names


def settings_of(env: dict[str, str]) -> Settings:
    """The settings these REGISTRY_* variables make, checked as the server checks them at start."""
    keys = {leaf.env: leaf.key for leaf in leaves()}
    return Settings().with_overrides(
        {keys[name]: value for name, value in env.items() if name != "REGISTRY_CONFIG"}
    )


def test_deploy_files_name_only_real_settings() -> None:
    """Every REGISTRY_* variable in deploy/ and the Dockerfile is a setting (or REGISTRY_CONFIG), and the
    paths agree with the code's defaults and the README."""
    known = {leaf.env for leaf in leaves()} | {"REGISTRY_CONFIG"}
    files = [DOCKERFILE, *sorted(p for p in DEPLOY.rglob("*") if p.is_file())]
    for path in files:
        for name in set(re.findall(r"\bREGISTRY_[A-Z0-9_]+\b", path.read_text())):
            if name.startswith("REGISTRY_IMAGE_"):
                continue  # deploy/image/build's own variables
            assert name in known, f"{path.relative_to(ROOT)} names {name}, which is no setting"
    unit = UNIT.read_text()
    config_file = re.search(r"REGISTRY_CONFIG=(\S+)", unit)
    assert config_file and config_file.group(1) in README.read_text()
    assert "REGISTRY_DATA_DIR=/var/lib/registry" in unit and "StateDirectory=registry" in unit
    settings_of(dict(re.findall(r"^Environment=(REGISTRY_\w+)=(\S+)$", unit, re.M)))
    assert "REGISTRY_DATA_DIR=/var/lib/registry" in DOCKERFILE.read_text()
