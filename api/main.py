"""The FastAPI application."""

from __future__ import annotations

import asyncio

from fastapi import Depends, FastAPI

from api.metrics import ApiMetrics, MetricsMiddleware
from api.routes import exports, health, jobs
from api.security import GatewayMiddleware, key_header_dependency, load_key_digests
from reelscope import __version__
from reelscope.artifacts import open_artifact_store
from reelscope.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    load_key_digests(settings)  # fail at start, not on the first request, if misconfigured

    app = FastAPI(
        title="Reelscope",
        version=__version__,
        summary="Video links in; metadata, scene cuts, key frames, on-screen text and "
        "transcript out, on Temporal.",
    )
    app.state.settings = settings
    app.state.store = open_artifact_store(settings)
    app.state.client = None  # connected on first use: see api.deps.get_client
    app.state.client_lock = asyncio.Lock()
    key_scheme = [Depends(key_header_dependency())]
    app.include_router(health.router)
    app.include_router(jobs.router, dependencies=key_scheme)
    app.include_router(exports.router, dependencies=key_scheme)
    app.add_middleware(GatewayMiddleware, settings=settings)
    app.state.metrics = ApiMetrics()
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
