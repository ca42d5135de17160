"""Temporal refuses any payload over its blob size limit (2 MB by default), and a
workflow task that sends one fails for ever. A long talk's transcript, with word
timestamps, outgrows that (about 85 bytes a word: 2 MB at 2.5 hours of speech at 150
words a minute), and so can a long, text-heavy video's scenes on their way to the
store step. These tests run items on a dev server whose limit is lowered so far that
short videos meet the same fate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from models.jobs import Transcript
from reelscope.payloads import PAYLOADS_PREFIX
from reelscope.sample import SampleSpec
from reelscope.settings import Settings
from tests.conftest import (
    SAMPLE_NAME,
    run_ffmpeg,
    running_worker,
    serving_api,
    start_dev_server,
    workspace_files,
)
from tests.test_end_to_end import submit, wait_for_result
from worker import Models

pytestmark = pytest.mark.e2e

#: The lowered limit. The sample's result on its way to the store step is 1.5 kB, the
#: talk's transcript 19 kB; every other payload of their items is below it.
BLOB_LIMIT_BYTES = 1_200


@pytest.fixture(scope="module")
async def small_blob_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server(
        "--dynamic-config-value",
        f"limit.blobSize.error={BLOB_LIMIT_BYTES}",
        "--dynamic-config-value",
        f"limit.blobSize.warn={BLOB_LIMIT_BYTES // 2}",
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="module")
def talk(media_dir: Path) -> str:
    """About 130 s of the sample's speech over one still picture: one scene, one key
    frame, a long transcript."""
    name = "talk.mp4"
    if not (media_dir / name).exists():
        run_ffmpeg(
            "-f", "lavfi", "-i", "color=c=navy:size=320x240:rate=10",
            "-stream_loop", "7", "-i", str(media_dir / SAMPLE_NAME),
            "-map", "0:v", "-map", "1:a", "-shortest",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
            str(media_dir / name),
        )  # fmt: skip
    return name


async def run_job(
    env: WorkflowEnvironment, models: Models, url: str, data_dir: Path, **settings: Any
) -> tuple[dict[str, Any], Settings]:
    config = Settings(
        temporal_address=env.client.service_client.config.target_host,
        task_queue=f"payload-limits-{data_dir.name}",
        data_dir=data_dir,
        allow_private_urls=True,
        **settings,
    )
    async with running_worker(config, models), serving_api(config) as api:
        job_id = await submit(api, url)
        result, _ = await wait_for_result(api, job_id, timeout_s=240)
    assert result["state"] == "succeeded", result["items"][0]["error"]
    return result["items"][0], config


async def test_a_transcript_larger_than_a_temporal_payload_is_stored_whole(
    small_blob_env: WorkflowEnvironment, models: Models, media_url: str, talk: str, tmp_path: Path
) -> None:
    # Payloads are all kept in Temporal: the transcript must never be one.
    item, settings = await run_job(
        small_blob_env, models, f"{media_url}/{talk}", tmp_path / "talk", payload_offload_bytes=0
    )
    transcript = Transcript.model_validate(item["transcript"])
    # No payload could have carried it.
    size = len(transcript.model_dump_json())
    assert size > 10 * BLOB_LIMIT_BYTES, size
    # All of it: the speech goes on to the end.
    assert len(transcript.segments) > 20
    assert transcript.segments[-1].end_s > 0.9 * item["metadata"]["duration_s"]
    assert transcript.text == " ".join(s.text for s in transcript.segments).strip()
    assert all(segment.words for segment in transcript.segments)
    assert workspace_files(settings) == []


async def test_a_result_larger_than_a_temporal_payload_reaches_the_store_step(
    small_blob_env: WorkflowEnvironment,
    models: Models,
    media_url: str,
    sample_spec: SampleSpec,
    tmp_path: Path,
) -> None:
    # Without the artifact store's help, the workflow task that schedules the store
    # step fails for ever, and the job never ends (checked: it hung at "ocr").
    item, settings = await run_job(
        small_blob_env,
        models,
        f"{media_url}/{SAMPLE_NAME}",
        tmp_path / "sample",
        payload_offload_bytes=BLOB_LIMIT_BYTES - 200,
    )
    assert len(item["scenes"]) == len(sample_spec.shots)
    shown = [shot.text for shot in sample_spec.shots if shot.text]
    read = [line["text"] for scene in item["scenes"] for line in scene["text"]]
    assert len(read) >= len(shown), read
    offloaded = list((settings.artifacts_dir / PAYLOADS_PREFIX).iterdir())
    assert offloaded and all(p.stat().st_size >= BLOB_LIMIT_BYTES - 200 for p in offloaded)
