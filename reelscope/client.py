"""The Temporal client every edge (API, worker, CLI) connects with."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from reelscope.settings import Settings


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """Connect to Temporal with the Pydantic data converter (network)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )


def metrics_runtime(address: str) -> Runtime:
    """A Temporal runtime whose SDK metrics (workflow and activity counts, latencies,
    schedule-to-start, slots) Prometheus can scrape at ``http://address/metrics``.
    One per process: the worker makes it at start."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
