"""The v1 contract's edges: validation, unknown ids, and status with no worker."""

from __future__ import annotations

import time

import httpx
from temporalio.client import Client


async def test_malformed_body_gets_422_with_the_reason(api: httpx.AsyncClient) -> None:
    for body in (
        {},
        {"url": "not a url"},
        {"url": "ftp://example.com/a.mp4"},
        {"url": "http://example.com/a.mp4", "options": {"ocr_engine": "tesseract"}},
        {"url": "http://example.com/a.mp4", "surprise": 1},
    ):
        response = await api.post("/v1/jobs", json=body)
        assert response.status_code == 422, (body, response.text)
        detail = response.json()["detail"]
        assert detail and all("msg" in d and "loc" in d for d in detail)


async def test_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    for path in ("/v1/jobs/job-doesnotexist", "/v1/jobs/job-doesnotexist/result"):
        response = await api.get(path)
        assert response.status_code == 404
        assert response.json()["detail"]["type"] == "NotFound"


async def test_health_and_readiness(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok", "detail": None}
    assert (await api.get("/readyz")).status_code == 200


async def test_status_answers_with_no_worker_running(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    """No worker polls this test's task queue: status comes from describe + memo."""
    accepted = (await api.post("/v1/jobs", json={"url": "http://example.com/a.mp4"})).json()
    job_id = accepted["job_id"]
    try:
        started = time.monotonic()
        response = await api.get(f"/v1/jobs/{job_id}")
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        status = response.json()
        assert status["state"] == "running"
        assert status["items"][0]["source_url"] == "http://example.com/a.mp4"
        assert status["items"][0]["state"] == "pending"
        assert status["items"][0]["stage"] == "resolve"
        assert elapsed < 5, "status must not wait for a worker"
        result = await api.get(f"/v1/jobs/{job_id}/result")
        assert result.status_code == 409
        assert result.json()["state"] == "running"
    finally:
        await temporal_client.get_workflow_handle(job_id).terminate("test cleanup")
    ended = (await api.get(f"/v1/jobs/{job_id}")).json()
    assert ended["state"] == "failed"


async def test_openapi_documents_every_model(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    for name in (
        "JobRequest",
        "JobAccepted",
        "JobStatus",
        "JobResult",
        "ItemResult",
        "Scene",
        "Transcript",
        "MediaMetadata",
        "ErrorInfo",
    ):
        assert name in components
    for name in (
        "JobRequest",
        "JobAccepted",
        "JobStatus",
        "JobResult",
        "Scene",
        "Transcript",
        "MediaMetadata",
        "ErrorInfo",
    ):
        schema_of = components[name]
        has_examples = schema_of.get("examples") or any(
            "examples" in field for field in schema_of.get("properties", {}).values()
        )
        assert has_examples, f"{name} has no example in /docs"
