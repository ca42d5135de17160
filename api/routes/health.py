"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from api.deps import get_client

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    detail: str | None = None


@router.get("/healthz", response_model=Health, summary="The API process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Temporal is reachable",
    responses={503: {"model": Health}},
)
async def readyz(request: Request) -> Health | JSONResponse:
    try:
        client = await get_client(request)
        healthy = await client.service_client.check_health()
    except Exception as exc:
        detail = getattr(exc, "detail", None) or str(exc)
        return JSONResponse(
            status_code=503, content=Health(status="unavailable", detail=str(detail)).model_dump()
        )
    if not healthy:
        return JSONResponse(status_code=503, content=Health(status="unavailable").model_dump())
    return Health(status="ok")


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests by route and status, and their latency",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    body = generate_latest(request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
