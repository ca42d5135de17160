"""The Temporal client every edge (API, worker, CLI) connects with."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from reelscope.artifacts import open_artifact_store
from reelscope.payloads import external_storage
from reelscope.settings import Settings


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """Connect to Temporal with the Pydantic data converter (network), which keeps
    payloads of ``settings.payload_offload_bytes`` or more in the artifact store
    (``reelscope.payloads``)."""
    converter = pydantic_data_converter
    if settings.payload_offload_bytes:
        storage = external_storage(open_artifact_store(settings), settings.payload_offload_bytes)
        converter = dataclasses.replace(converter, external_storage=storage)
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=converter,
        runtime=runtime,
    )


def metrics_runtime(address: str) -> Runtime:
    """A Temporal runtime whose SDK metrics (workflow and activity counts, latencies,
    schedule-to-start, slots) Prometheus can scrape at ``http://address/metrics``.
    One per process: the worker makes it at start."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
