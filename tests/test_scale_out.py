"""Scale-out without a shared disk: two worker processes with separate data dirs and an
S3-protocol artifact store (moto's server on loopback), a worker killed while it holds
an item's files, a busy worker told apart from a lost one, and the metrics an operator
scrapes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from reelscope.artifacts import S3ArtifactStore
from reelscope.settings import Settings
from tests.conftest import (
    SAMPLE_NAME,
    activities_in_history,
    free_port,
    running_worker,
    serving_api,
    workspace_files,
)
from tests.test_durability import WorkerProcess, wait_for_stage
from tests.test_end_to_end import wait_for_result
from worker import Models

pytestmark = pytest.mark.e2e

BUCKET = "reelscope-test"
CREDENTIALS = {"s3_access_key_id": "test-key", "s3_secret_access_key": "test-secret"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-protocol server (moto in server mode) on loopback, with one bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["s3_access_key_id"],
        aws_secret_access_key=CREDENTIALS["s3_secret_access_key"],
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def s3_settings(settings: Settings, endpoint: str, data_dir: Path) -> Settings:
    return settings.model_copy(
        update={
            "data_dir": data_dir,
            "artifact_store": f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}",
            "s3_endpoint_url": endpoint,
            "s3_region": "us-east-1",
            "s3_access_key_id": CREDENTIALS["s3_access_key_id"],
            "s3_secret_access_key": SecretStr(CREDENTIALS["s3_secret_access_key"]),
        }
    )


def worker_env(settings: Settings, metrics_port: int | None = None) -> dict[str, str]:
    secret = settings.s3_secret_access_key
    env = {
        "REELSCOPE_ARTIFACT_STORE": settings.artifact_store,
        "REELSCOPE_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "REELSCOPE_S3_REGION": settings.s3_region or "",
        "REELSCOPE_S3_ACCESS_KEY_ID": settings.s3_access_key_id or "",
        "REELSCOPE_S3_SECRET_ACCESS_KEY": secret.get_secret_value() if secret else "",
    }
    if metrics_port:
        env["REELSCOPE_WORKER_METRICS_ADDRESS"] = f"127.0.0.1:{metrics_port}"
    return env


def holder(workers: list[WorkerProcess], job_id: str, index: int) -> WorkerProcess:
    """The worker whose disk holds the item's workspace."""
    found = [w for w in workers if (w.settings.workspaces_dir / job_id / str(index)).is_dir()]
    assert len(found) == 1, [str(w.settings.data_dir) for w in workers]
    return found[0]


async def test_two_workers_with_separate_disks_survive_losing_the_one_holding_an_item(
    settings: Settings, s3_endpoint: str, media_url: str, temporal_client: Client, tmp_path: Path
) -> None:
    api_settings = s3_settings(settings, s3_endpoint, tmp_path / "api")
    api_settings.heartbeat_timeout_s = 5.0
    # Progress reaches the server every 0.5 s: with the default 2 s, the long clip's
    # transcription (a few seconds) could end between two heartbeats and never be seen
    # under way, which failed CI once.
    api_settings.heartbeat_throttle_s = 0.5
    # A pinned stage nobody takes for 5 s asks whether its worker is still there.
    api_settings.pinned_schedule_to_start_s = 5.0
    metrics_ports = [free_port(), free_port()]
    workers = [
        WorkerProcess(
            api_settings.model_copy(update={"data_dir": tmp_path / f"disk-{n}"}),
            f"worker-{n}",
            worker_env(api_settings, metrics_ports[n]),
        )
        for n in range(2)
    ]
    async with serving_api(api_settings) as api:
        try:
            await asyncio.gather(*(w.start() for w in workers))
            links = [f"{media_url}/long.mp4", f"{media_url}/{SAMPLE_NAME}"]
            response = await api.post(
                "/v1/jobs", json={"urls": links, "options": {"refresh": True}}
            )
            job_id = response.json()["job_id"]
            await wait_for_stage(
                api,
                job_id,
                lambda s: s["stage"] == "transcribe" and 0 < s["progress"] < 0.8,
                "transcription of the long clip under way",
                item_index=0,
            )
            lost = holder(workers, job_id, 0)
            survivor = next(w for w in workers if w is not lost)
            lost.kill()
            result, _ = await wait_for_result(api, job_id, timeout_s=300)
            # The survivor's Temporal SDK metrics, as Prometheus scrapes them.
            async with httpx.AsyncClient() as http:
                port = metrics_ports[workers.index(survivor)]
                scraped = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        finally:
            await asyncio.gather(*(w.stop() for w in workers))

        assert result["state"] == "succeeded", [
            (item["state"], item["error"], item["notes"]) for item in result["items"]
        ]
        long_item = result["items"][0]
        assert len(long_item["scenes"]) == 20
        assert "processed again on another worker" in " ".join(long_item["notes"])
        assert long_item["transcript"]["segments"], "speech was transcribed after the move"
        activities = await activities_in_history(temporal_client, f"{job_id}.0")
        assert [a for a in activities if a[0] == "route_item"] == [
            ("route_item", "route"),
            ("route_item", "route.1"),
        ]
        assert ("ping_host", "presence.1") in activities, "it asked before moving the item"

        # Key frames come from the bucket: the API's own data dir holds no artifacts.
        keyframe = long_item["scenes"][3]["keyframes"][0]["url"]
        image = await api.get(keyframe)
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
        assert not api_settings.artifacts_dir.exists()
        for worker in workers:
            assert not worker.settings.artifacts_dir.exists()
        assert workspace_files(survivor.settings) == []

        assert "temporal_activity_execution_latency" in scraped
        assert 'activity_type="transcribe_audio"' in scraped

        # The lost worker comes back with its old disk: its janitor removes the files
        # of the item that moved away.
        assert (lost.settings.workspaces_dir / job_id / "0").is_dir()
        back = WorkerProcess(lost.settings, "worker-back", lost.extra_env)
        await back.start()
        await back.stop()
        assert workspace_files(lost.settings) == []


async def test_a_busy_worker_is_waited_for_not_replaced(
    settings: Settings, models: Models, media_url: str, temporal_client: Client
) -> None:
    # One slot: whichever of the scene pass and transcription takes it first, the other
    # waits longer than the schedule-to-start limit; the worker is busy, not gone, so
    # the item stays put. The limit is well under either stage's time for the 80 s
    # clip: with 2 s, a fast CPU (a Xeon with AMX) sometimes finished the first stage
    # in time and nothing waited long enough to be asked about.
    settings.max_concurrent_activities = 1
    settings.pinned_schedule_to_start_s = 0.5
    async with running_worker(settings, models), serving_api(settings) as api:
        response = await api.post(
            "/v1/jobs", json={"url": f"{media_url}/long.mp4", "options": {"refresh": True}}
        )
        job_id = response.json()["job_id"]
        result, _ = await wait_for_result(api, job_id, timeout_s=300)
    assert result["state"] == "succeeded", result
    assert not result["items"][0]["notes"], result["items"][0]["notes"]
    activities = await activities_in_history(temporal_client, f"{job_id}.0")
    assert [a for a in activities if a[0] == "route_item"] == [("route_item", "route")]
    assert any(a[0] == "ping_host" for a in activities), "the wait outlasted the limit"


def test_the_s3_store_keeps_keys_inside_and_expires_what_outlived_retention(
    s3_endpoint: str,
) -> None:
    store = S3ArtifactStore(
        BUCKET,
        f"unit-{uuid.uuid4().hex[:8]}",
        endpoint_url=s3_endpoint,
        region="us-east-1",
        access_key_id=CREDENTIALS["s3_access_key_id"],
        secret_access_key=CREDENTIALS["s3_secret_access_key"],
    )
    store.write_bytes("results/job-a/0.json", b"{}")
    assert store.read_bytes("results/job-a/0.json") == b"{}"
    assert store.read_bytes("results/job-a/1.json") is None
    assert store.copy("results/job-a/0.json", "cache/k1/result.json")
    assert not store.copy("results/job-a/9.json", "cache/k2/result.json")
    age = store.age_s("cache/k1/result.json")
    assert age is not None and -5 < age < 60
    assert store.age_s("cache/missing/result.json") is None
    with pytest.raises(ValueError):
        store.write_bytes("../escape", b"x")
    assert store.read_bytes("results/../x") is None

    time.sleep(1.1)  # S3 times are whole seconds
    store.write_bytes("results/job-b/0.json", b"fresh")
    assert store.sweep(retention_s=1, cache_ttl_s=3600) == 1
    assert store.read_bytes("results/job-a/0.json") is None
    assert store.read_bytes("results/job-b/0.json") == b"fresh"
    assert store.read_bytes("cache/k1/result.json") == b"{}"
