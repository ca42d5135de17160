"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from temporalio.client import Client

from reelscope.artifacts import ArtifactStore
from reelscope.client import connect
from reelscope.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_client(request: Request) -> Client:
    """The app's Temporal client, connected on first use so the API can start (and
    answer /healthz) while Temporal is still coming up."""
    state = request.app.state
    if state.client is None:
        async with state.client_lock:
            if state.client is None:
                try:
                    state.client = await asyncio.wait_for(connect(state.settings), timeout=5)
                except Exception as exc:
                    raise HTTPException(
                        503,
                        detail={
                            "type": "TemporalUnavailable",
                            "message": f"cannot reach Temporal at "
                            f"{state.settings.temporal_address}: {exc}",
                        },
                    ) from None
    client: Client = state.client
    return client


def get_store(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
ClientDep = Annotated[Client, Depends(get_client)]
