"""`GET /v2/<name>/referrers/<digest>`: the manifests whose `subject` is that digest, as an OCI index."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry.api.common import digest_param, repository, services
from registry.types import OCI_INDEX


async def list_referrers(request: Request) -> Response:
    name, subject = repository(request), digest_param(request)
    artifact_type = request.query_params.get("artifactType") or None
    found = await services(request).manifests.referrers(name, subject, artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}
    return JSONResponse(body, headers=headers, media_type=OCI_INDEX)
