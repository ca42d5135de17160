"""The Temporal client every edge (API, worker, CLI) connects with."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from reelscope.settings import Settings


async def connect(settings: Settings) -> Client:
    """Connect to Temporal with the Pydantic data converter (network)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
