"""Discovery: the DSP version document and the did:web document (DESIGN.md §3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from connector.api.deps import ServicesDep
from connector.composition import DSP_PATH

router = APIRouter(tags=["discovery"])


@router.get("/.well-known/dspace-version")
async def dspace_version(services: ServicesDep) -> dict[str, Any]:
    return {
        "protocolVersions": [
            {
                "version": "2025-1",
                "path": DSP_PATH,
                "binding": "HTTPS",
                "identifierType": "did:web",
                "serviceId": services.did + "#dsp",
            }
        ]
    }


@router.get("/.well-known/did.json")
async def did_document(services: ServicesDep) -> JSONResponse:
    return JSONResponse(services.did_document, media_type="application/did+json")
