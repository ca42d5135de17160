"""Temporal refuses any payload over its blob size limit (2 MB by default). A long
talk's transcript, with word timestamps, outgrows that: about 85 bytes a word, 2 MB
at 2.5 hours of speech at 150 words a minute. These tests run an item on a dev server
whose limit is lowered far enough that a short video's transcript would break it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from models.jobs import Transcript
from reelscope.settings import Settings
from reelscope.stack import dev_server_dynamic_config_args, temporal_binary
from tests.conftest import SAMPLE_NAME, run_ffmpeg, running_worker, serving_api, workspace_files
from tests.test_end_to_end import submit, wait_for_result
from worker import Models

pytestmark = pytest.mark.e2e

#: The lowered limit: the talk's transcript (about 19 kB) is well over it, and every
#: other payload of its item (one scene, one key frame) well below it.
BLOB_LIMIT_BYTES = 12_000


@pytest.fixture(scope="module")
async def small_blob_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
        dev_server_extra_args=[
            *dev_server_dynamic_config_args(),
            "--dynamic-config-value",
            f"limit.blobSize.error={BLOB_LIMIT_BYTES}",
            "--dynamic-config-value",
            f"limit.blobSize.warn={BLOB_LIMIT_BYTES // 2}",
        ],
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


async def test_a_transcript_larger_than_a_temporal_payload_is_stored_whole(
    small_blob_env: WorkflowEnvironment,
    models: Models,
    media_url: str,
    talk: str,
    tmp_path: Path,
) -> None:
    settings = Settings(
        temporal_address=small_blob_env.client.service_client.config.target_host,
        task_queue="payload-limits",
        data_dir=tmp_path / "data",
        allow_private_urls=True,
    )
    async with running_worker(settings, models), serving_api(settings) as api:
        job_id = await submit(api, f"{media_url}/{talk}")
        result, _ = await wait_for_result(api, job_id, timeout_s=240)
    assert result["state"] == "succeeded", result["items"][0]["error"]
    (item,) = result["items"]
    transcript = Transcript.model_validate(item["transcript"])
    # No payload could have carried it.
    size = len(transcript.model_dump_json())
    assert size > 1.5 * BLOB_LIMIT_BYTES, size
    # All of it: the speech goes on to the end.
    assert len(transcript.segments) > 20
    assert transcript.segments[-1].end_s > 0.9 * item["metadata"]["duration_s"]
    assert transcript.text == " ".join(s.text for s in transcript.segments).strip()
    assert all(segment.words for segment in transcript.segments)
    assert workspace_files(settings) == []
