"""A client of one registry's /v2/ API: manifests, blobs, uploads and mounts, nothing about images.

One `httpx.AsyncClient` per registry, shared by every concurrent transfer, with the auth flow attached.
Errors become `RegistryClientError` carrying the registry's own error code and message, which is what a
user needs to see ("manifest unknown", "unauthorized: ...").
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

import httpx

from registry.client import certs, transport
from registry.client.auth import RegistryAuth
from registry.client.credentials import Credentials
from registry.client.errors import RegistryClientError
from registry.client.media import MANIFEST_ACCEPT

TIMEOUT: Final = httpx.Timeout(120.0, connect=15.0)


@dataclass(frozen=True)
class Manifest:
    data: bytes
    media_type: str
    digest: str | None  # as the registry announced it (Docker-Content-Digest), to be checked by the caller


def _error_detail(response: httpx.Response) -> str:
    try:
        errors = response.json()["errors"]
        return "; ".join(f"{e['code'].lower().replace('_', ' ')}: {e.get('message') or ''}" for e in errors)
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code} {response.reason_phrase}".strip()


def named(repository: str, reference: str) -> str:
    """`repo:tag` or `repo@sha256:...`: a digest (the only reference with a colon) joins with `@`."""
    return f"{repository}{'@' if ':' in reference else ':'}{reference}"


def check(response: httpx.Response, what: str) -> None:
    """Raise a RegistryClientError naming `what` failed, with the registry's reason, unless successful."""
    if not response.is_success:
        raise RegistryClientError(f"{what}: {_error_detail(response)}", response.status_code)


class RegistryClient:
    def __init__(
        self,
        api_host: str,
        credentials: Credentials | None = None,
        insecure: bool = False,
        ca_cert: Path | None = None,
        max_connections: int = 8,
    ) -> None:
        self.api_host = api_host
        self._endpoints = transport.candidates(api_host, insecure, ca_cert)
        self._auth = RegistryAuth(credentials)
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> RegistryClient:
        failures = []
        for endpoint in self._endpoints:
            http = httpx.AsyncClient(
                base_url=endpoint.base_url,
                verify=endpoint.verify,
                auth=self._auth,
                timeout=TIMEOUT,
                limits=self._limits,
            )
            try:
                # Unauthenticated on purpose: any HTTP answer (200 or 401) shows the registry is here.
                await http.get("/v2/", auth=None)
            # ssl.SSLError escapes httpx when TLS 1.3 refuses the client's certificate only after the
            # handshake, at the first read (granian answers that way, hypercorn during the handshake).
            except (httpx.TransportError, ssl.SSLError) as error:
                failures.append(f"{endpoint.base_url}: {error or type(error).__name__}")
                await http.aclose()
                continue
            self._http = http
            return self
        reasons = "; ".join(failures)
        hint = f" ({certs.hint(self.api_host)})" if "SSL" in reasons else ""
        raise RegistryClientError(f"cannot reach registry {self.api_host}: {reasons}{hint}")

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.http.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("RegistryClient used outside `async with`")
        return self._http

    async def check_login(self) -> None:
        """An authenticated GET /v2/: raises when the registry refuses the credentials."""
        check(await self.http.get("/v2/"), f"login to {self.api_host}")

    # ------------------------------------------------------------------------------------------ pulling

    async def get_manifest(self, repository: str, reference: str) -> Manifest:
        response = await self.http.get(
            f"/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
        )
        check(response, f"manifest {named(repository, reference)}")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return Manifest(response.content, media_type, response.headers.get("Docker-Content-Digest"))

    async def get_blob(self, repository: str, digest: str) -> bytes:
        response = await self.http.get(f"/v2/{repository}/blobs/{digest}")
        check(response, f"blob {digest} of {repository}")
        return response.content

    @contextlib.asynccontextmanager
    async def stream_blob(
        self, repository: str, digest: str, start: int = 0
    ) -> AsyncIterator[httpx.Response]:
        """The blob from byte `start` on: 206 when the Range was honoured, 200 with all bytes if not."""
        headers = {"Range": f"bytes={start}-"} if start else {}
        async with self.http.stream("GET", f"/v2/{repository}/blobs/{digest}", headers=headers) as response:
            if not response.is_success:
                await response.aread()
                check(response, f"blob {digest} of {repository}")
            yield response

    # ------------------------------------------------------------------------------------------ pushing

    async def blob_exists(self, repository: str, digest: str) -> bool:
        response = await self.http.head(f"/v2/{repository}/blobs/{digest}")
        if response.status_code == 404:
            return False
        check(response, f"blob {digest} of {repository}")
        return True

    async def mount_or_start(self, repository: str, digest: str, source: str | None) -> str | None:
        """Mount `digest` from `source`; None when mounted, else the Location of a new upload session."""
        params = {"mount": digest, "from": source} if source else {}
        response = await self.http.post(f"/v2/{repository}/blobs/uploads/", params=params)
        check(response, f"upload to {repository}")
        if response.status_code == 201 and source:
            return None
        return response.headers["Location"]

    async def put_upload(self, location: str, digest: str, body: bytes = b"") -> None:
        """Finish an upload session with its last bytes (or none), naming the digest they must have."""
        url = httpx.URL(location).copy_merge_params({"digest": digest})
        headers = {"Content-Type": "application/octet-stream"}
        check(await self.http.put(url, content=body, headers=headers), f"upload of {digest}")

    async def patch_upload(self, location: str, chunk: bytes, offset: int) -> str:
        """Send one chunk at `offset` of a chunked upload; returns the session's next Location."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
        }
        response = await self.http.patch(location, content=chunk, headers=headers)
        check(response, "chunk upload")
        return response.headers.get("Location", location)

    async def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str | None:
        response = await self.http.put(
            f"/v2/{repository}/manifests/{reference}", content=data, headers={"Content-Type": media_type}
        )
        check(response, f"manifest {named(repository, reference)}")
        return response.headers.get("Docker-Content-Digest")
