"""TLS: the protocol floor, certificate trust, and client certificates (mTLS) against a CA bundle."""

from __future__ import annotations

import datetime
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.auth.conftest import cli, ssl_context, tls_env
from tests.support.server import RegistryProcess

pytestmark = pytest.mark.both_servers


def client_certificate(ca_dir: Path, out: Path, name: str) -> tuple[Path, Path]:
    """A client certificate for `name` issued by the CA in `ca_dir` (as a company PKI would)."""
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.cert").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return out / f"{name}.cert", out / f"{name}.key"


class MutualTLSProcess(RegistryProcess):
    client_cert: tuple[Path, Path]
    ca: Path

    def ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(*map(str, self.client_cert))
        return httpx.get(self.url + "/v2/", verify=context, timeout=1).status_code == 200


@pytest.fixture(scope="module")
def mtls(pki: Path, engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MutualTLSProcess]:
    root = tmp_path_factory.mktemp("mtls")
    process = MutualTLSProcess(
        root / "data", "", {**tls_env(pki), "REGISTRY_HTTP_TLS_CLIENTCAS": str(pki / "ca.crt")}, engine
    )
    process.client_cert = client_certificate(pki, root / "client", "ci-runner")
    process.ca = pki / "ca.crt"
    yield process.start()
    process.stop()


@pytest.fixture(scope="module")
def plain_tls(pki: Path, engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    process = RegistryProcess(tmp_path_factory.mktemp("tls") / "data", "", tls_env(pki), engine).start()
    yield process
    process.stop()


def test_client_certificates_are_required_and_checked(
    mtls: MutualTLSProcess, pki: Path, tmp_path: Path
) -> None:
    assert mtls.ready()
    with pytest.raises(httpx.TransportError):  # no certificate at all
        httpx.get(mtls.url + "/v2/", verify=ssl_context(pki), timeout=5).raise_for_status()
    other_ca = tmp_path / "other-ca"
    assert cli("cert", "init", "--ip", "127.0.0.1", "--out", str(other_ca)) == 0
    context = ssl_context(pki)
    context.load_cert_chain(*map(str, client_certificate(other_ca, tmp_path / "client", "intruder")))
    with pytest.raises(httpx.TransportError):  # a certificate from a CA the registry does not trust
        httpx.get(mtls.url + "/v2/", verify=context, timeout=5).raise_for_status()


def test_tls_1_2_is_the_floor(plain_tls: RegistryProcess, pki: Path) -> None:
    def handshake(version: ssl.TLSVersion) -> int:
        context = ssl_context(pki)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = version
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # so the client itself is willing to speak old TLS
        return httpx.get(plain_tls.url + "/v2/", verify=context, timeout=5).status_code

    assert handshake(ssl.TLSVersion.TLSv1_2) == 200
    assert handshake(ssl.TLSVersion.TLSv1_3) == 200
    for old in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
        with pytest.raises(httpx.TransportError):
            handshake(old)


def test_the_certificate_is_checked_by_clients(plain_tls: RegistryProcess, pki: Path) -> None:
    with pytest.raises(httpx.TransportError):  # not signed by a CA the default store knows
        httpx.get(plain_tls.url + "/v2/", timeout=5)
    response = httpx.get(plain_tls.url + "/v2/", verify=ssl_context(pki), timeout=5)
    assert response.status_code == 200 and response.url.scheme == "https"
    with httpx.Client(verify=ssl_context(pki), timeout=5) as client:  # by name as well as by address
        assert client.get(f"https://localhost:{plain_tls.port}/v2/").status_code == 200
