"""Keys as digests, every route but health behind them, per-key rate limits, the body
cap, and error bodies that leak nothing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.main import create_app
from api.security import hash_key
from reelscope.settings import Settings

KEY = "test-key-abc123"


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


@pytest.fixture
def secured(settings: Settings, tmp_path: Path) -> Settings:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# ops team\n{hash_key('second-key')}\n")
    return settings.model_copy(
        update={
            "api_keys": [hash_key(KEY)],
            "api_keys_file": keys_file,
            "rate_limit_per_minute": 5,
        }
    )


async def test_every_route_but_health_needs_a_key(secured: Settings) -> None:
    app = create_app(secured)
    async with client_for(app) as api:
        assert (await api.get("/healthz")).status_code == 200
        for method, path in [
            ("GET", "/v1/jobs/job-x"),
            ("GET", "/v1/jobs/job-x/result"),
            ("POST", "/v1/jobs"),
            ("DELETE", "/v1/jobs/job-x"),
            ("GET", "/v1/jobs/job-x/items/0/transcript.srt"),
            ("GET", "/openapi.json"),
            ("GET", "/docs"),
        ]:
            response = await api.request(method, path)
            assert response.status_code == 401, (method, path)
            assert response.json()["detail"]["type"] == "Unauthorized"
        wrong = await api.get("/openapi.json", headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
        bearer = await api.get("/openapi.json", headers={"Authorization": f"Bearer {KEY}"})
        assert bearer.status_code == 200
        from_file = await api.get("/openapi.json", headers={"X-API-Key": "second-key"})
        assert from_file.status_code == 200
        docs = await api.get(f"/docs?api_key={KEY}")
        assert docs.status_code == 200
        # The query-string key is for the docs pages only.
        assert (await api.get(f"/v1/jobs/job-x?api_key={KEY}")).status_code == 401


async def test_rate_limit_is_per_key_with_retry_after(secured: Settings) -> None:
    app = create_app(secured)
    async with client_for(app) as api:
        codes = [
            (await api.get("/openapi.json", headers={"X-API-Key": KEY})).status_code
            for _ in range(6)
        ]
        assert codes == [200] * 5 + [429]
        limited = await api.get("/openapi.json", headers={"X-API-Key": KEY})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        other = await api.get("/openapi.json", headers={"X-API-Key": "second-key"})
        assert other.status_code == 200, "another key has its own budget"


async def test_body_cap(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"max_request_bytes": 200}))
    async with client_for(app) as api:
        big = {"urls": [f"http://example.com/{'x' * 50}/{n}.mp4" for n in range(10)]}
        response = await api.post("/v1/jobs", json=big)
        assert response.status_code == 413
        assert response.json()["detail"]["type"] == "RequestTooLarge"


async def test_errors_leak_no_traces_or_paths(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("/very/secret/internal/path.py exploded")

    async with client_for(app) as api:
        response = await api.get("/boom")
    assert response.status_code == 500
    body = response.text
    assert "secret" not in body and "Traceback" not in body and ".py" not in body
    assert response.json()["detail"]["type"] == "Internal"
    assert "incident" in response.json()["detail"]["message"]


def test_keys_must_be_digests(settings: Settings) -> None:
    with pytest.raises(ValueError, match="digests"):
        create_app(settings.model_copy(update={"api_keys": ["plain-text-key"]}))


def test_a_deployment_that_requires_keys_refuses_to_start_without_one(settings: Settings) -> None:
    with pytest.raises(ValueError, match="requires API keys"):
        create_app(settings.model_copy(update={"require_api_keys": True}))
    create_app(settings.model_copy(update={"require_api_keys": True, "api_keys": [hash_key(KEY)]}))
