"""API metrics for Prometheus: requests by route template and status, latency."""

from __future__ import annotations

import re

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from api.security import hash_key
from reelscope.settings import Settings


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_requests_are_counted_by_route_template_and_status(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"api_keys": [hash_key("k")]}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
        for job in ("job-a", "job-b", "job-c"):
            assert (await api.get(f"/v1/jobs/{job}")).status_code == 401
        assert (await api.get("/healthz")).status_code == 200
        assert (await api.get("/nowhere", headers={"X-API-Key": "k"})).status_code == 404
        missing = await api.get("/v1/jobs/job-d", headers={"X-API-Key": "k"})
        assert missing.status_code == 404
        scraped = await api.get("/metrics")  # open, like the health checks
    assert scraped.status_code == 200
    counts = samples(scraped.text, "reelscope_api_requests_total")
    # Refused before routing: the gateway answers, so the route is not matched.
    assert counts[(("method", "GET"), ("route", "unmatched"), ("status", "401"))] == 3
    assert counts[(("method", "GET"), ("route", "/healthz"), ("status", "200"))] == 1
    assert counts[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    assert counts[(("method", "GET"), ("route", "/v1/jobs/{job_id}"), ("status", "404"))] == 1
    assert not re.search(r"job-[abcd]", scraped.text), "no raw paths as label values"
    latency = samples(scraped.text, "reelscope_api_request_duration_seconds_count")
    assert latency[(("method", "GET"), ("route", "/healthz"))] == 1
