"""The whole pipeline over the REST API, on a real Temporal dev server, with real media
served over HTTP to yt-dlp, and real OCR and speech models."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import jiwer
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from models.jobs import JobStatus
from reelscope.query import describe_progress, query_item_progress, query_progress
from reelscope.sample import SPEECH_TEXT, SampleSpec
from reelscope.settings import Settings
from tests.conftest import (
    ANIMATION_SHOTS,
    SAMPLE_NAME,
    SAMPLE_WER_BOUND,
    SUBTITLE_SECONDS,
    SUBTITLES,
    running_worker,
    workspace_files,
)
from worker import Models
from workflows import PROGRESS_QUERY, MediaJobWorkflow

pytestmark = pytest.mark.e2e


def normalize(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", "", text.lower()).strip()


async def submit(api: httpx.AsyncClient, url: str, **options: Any) -> str:
    body: dict[str, Any] = {"url": url}
    if options:
        body["options"] = options
    response = await api.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status_url"] == f"/v1/jobs/{accepted['job_id']}"
    assert accepted["result_url"] == f"/v1/jobs/{accepted['job_id']}/result"
    return str(accepted["job_id"])


async def wait_for_result(
    api: httpx.AsyncClient, job_id: str, timeout_s: float = 180
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll until the job ends; returns (result, every status seen on the way)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = await api.get(f"/v1/jobs/{job_id}")
        assert status.status_code == 200, status.text
        seen.append(status.json())
        if seen[-1]["state"] != "running":
            result = await api.get(f"/v1/jobs/{job_id}/result")
            assert result.status_code == 200, result.text
            return result.json(), seen
        early = await api.get(f"/v1/jobs/{job_id}/result")
        assert early.status_code in (200, 409)
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} still running after {timeout_s}s: {seen[-1]}")


async def test_sample_video_end_to_end(
    api: httpx.AsyncClient,
    worker: Settings,
    media_url: str,
    sample_spec: SampleSpec,
    temporal_client: Client,
) -> None:
    job_id = await submit(api, f"{media_url}/{SAMPLE_NAME}")
    result, statuses = await wait_for_result(api, job_id)

    assert result["state"] == "succeeded", result
    (item,) = result["items"]
    assert item["state"] == "succeeded" and item["error"] is None
    assert item["kind"] == "video"

    meta = item["metadata"]
    assert meta["width"] == sample_spec.width and meta["height"] == sample_spec.height
    assert meta["fps"] == pytest.approx(sample_spec.fps, abs=0.01)
    assert meta["duration_s"] == pytest.approx(sample_spec.total_frames / sample_spec.fps, abs=0.1)
    assert meta["has_audio"] is True
    assert meta["video_codec"] == "h264" and meta["audio_codec"] == "aac"
    assert meta["size_bytes"] > 10_000

    # Cuts within ±1 frame of where the shots change.
    scenes = item["scenes"]
    found_cuts = [scene["start_frame"] for scene in scenes[1:]]
    assert len(found_cuts) == len(sample_spec.cut_frames), scenes
    for found, truth in zip(found_cuts, sample_spec.cut_frames, strict=True):
        assert abs(found - truth) <= 1, (found_cuts, sample_spec.cut_frames)
    for scene in scenes:
        assert scene["keyframes"], f"scene {scene['index']} has no key frame"
        for kf in scene["keyframes"]:
            assert scene["start_frame"] <= kf["frame"] < scene["end_frame"]
            assert kf["time_s"] == pytest.approx(kf["frame"] / sample_spec.fps, abs=0.01)

    # The drawn captions, read by OCR, in the scenes that show them and nowhere else.
    for scene, shot in zip(scenes, sample_spec.shots, strict=True):
        texts = [normalize(line["text"]) for line in scene["text"]]
        if shot.text:
            assert normalize(shot.text) in texts, (shot.text, scene["text"])
            line = next(x for x in scene["text"] if normalize(x["text"]) == normalize(shot.text))
            assert line["confidence"] > 0.8 and len(line["box"]) == 4
        else:
            assert texts == [], scene["text"]

    # The spoken words, within a word-error bound; timestamps inside the media.
    transcript = item["transcript"]
    assert transcript["language"] == "en"
    wer = jiwer.wer(normalize(SPEECH_TEXT), normalize(transcript["text"]))
    assert wer <= SAMPLE_WER_BOUND, (wer, transcript["text"])
    words = [w for seg in transcript["segments"] for w in seg["words"]]
    assert len(words) >= 20
    assert all(0 <= w["start_s"] <= w["end_s"] <= meta["duration_s"] + 0.5 for w in words)

    # Status went through stages with progress, and the workspace is gone.
    assert any(s["state"] == "running" for s in statuses) or len(statuses) == 1
    assert statuses[-1]["progress"] == 1.0
    assert workspace_files(worker) == []

    # The same job, queried as a program would, and its history replays deterministically.
    handle = temporal_client.get_workflow_handle(job_id)
    progress = await handle.query(PROGRESS_QUERY, result_type=JobStatus)
    assert progress.state == "succeeded"
    assert [s.state for s in progress.items[0].stages] == ["succeeded"] * 6
    # The typed helpers for programs: by query (needs a worker) and by describe.
    assert (await query_progress(temporal_client, job_id)).state == "succeeded"
    item_status = await query_item_progress(temporal_client, job_id, 0)
    assert item_status.stage == "done" and item_status.kind == "video"
    described = await describe_progress(temporal_client, job_id)
    assert described is not None and described.items[0].state == "succeeded"
    assert await describe_progress(temporal_client, "job-nothing-here") is None
    history = await handle.fetch_history()
    await Replayer(
        workflows=[MediaJobWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(history)


async def test_missing_link_ends_with_not_found(
    api: httpx.AsyncClient, worker: Settings, media_url: str
) -> None:
    started = time.monotonic()
    job_id = await submit(api, f"{media_url}/no-such-video.mp4")
    result, _ = await wait_for_result(api, job_id, timeout_s=60)
    assert time.monotonic() - started < 30
    assert result["state"] == "failed"
    (item,) = result["items"]
    assert item["state"] == "failed"
    assert item["error"]["type"] == "NotFound"
    assert "404" in item["error"]["message"] and "no-such-video.mp4" in item["error"]["message"]
    status = (await api.get(f"/v1/jobs/{job_id}")).json()
    assert status["items"][0]["error"]["type"] == "NotFound"
    assert status["items"][0]["stage"] == "resolve"
    assert workspace_files(worker) == []


@pytest.mark.parametrize(
    ("link", "kind"),
    [
        ("{media}/page.mp4", "CorruptMedia"),  # HTML served as video/mp4
        ("{media}/empty.mp4", "CorruptMedia"),  # zero bytes
        ("{media}/page.html", "UnsupportedUrl"),  # a page with no video on it
        ("http://no-such-host.invalid/clip.mp4", "DownloadFailed"),  # DNS fails
    ],
)
async def test_bad_links_end_with_typed_errors_within_seconds(
    api: httpx.AsyncClient, worker: Settings, media_url: str, link: str, kind: str
) -> None:
    started = time.monotonic()
    job_id = await submit(api, link.format(media=media_url))
    result, _ = await wait_for_result(api, job_id, timeout_s=60)
    assert time.monotonic() - started < 20
    (item,) = result["items"]
    assert item["state"] == "failed"
    assert item["error"]["type"] == kind, item["error"]
    assert item["error"]["message"].startswith(("resolve:", "download:", "probe:"))
    assert workspace_files(worker) == []


async def test_video_without_audio_has_scenes_and_an_empty_transcript(
    api: httpx.AsyncClient, worker: Settings, media_url: str
) -> None:
    job_id = await submit(api, f"{media_url}/silent.mp4")
    result, _ = await wait_for_result(api, job_id, timeout_s=120)
    (item,) = result["items"]
    assert item["state"] == "succeeded", item
    assert item["metadata"]["has_audio"] is False
    assert item["scenes"], "a silent video still has scenes"
    assert item["transcript"]["segments"] == []
    assert "no audio" in item["transcript"]["note"]


@pytest.mark.parametrize("manifest", ["hls/master.m3u8", "dash/manifest.mpd"])
async def test_a_streamed_video_is_fetched_segment_by_segment_and_read_whole(
    api: httpx.AsyncClient, worker: Settings, media_url: str, sample_spec: SampleSpec, manifest: str
) -> None:
    """A link to an HLS or DASH manifest, as sites stream video: video and sound come as
    separate renditions of 4 s segments, and the item is the whole video."""
    job_id = await submit(api, f"{media_url}/{manifest}")
    result, _ = await wait_for_result(api, job_id, timeout_s=120)
    (item,) = result["items"]
    assert item["state"] == "succeeded", item
    meta = item["metadata"]
    assert (meta["video_codec"], meta["audio_codec"]) == ("h264", "aac")
    assert meta["duration_s"] == pytest.approx(sample_spec.total_frames / sample_spec.fps, abs=0.2)
    cuts = [s["start_frame"] for s in item["scenes"][1:]]
    assert len(cuts) == len(sample_spec.cut_frames)
    assert all(abs(a - b) <= 1 for a, b in zip(cuts, sample_spec.cut_frames, strict=True))
    heard = normalize(item["transcript"]["text"])
    assert jiwer.wer(normalize(SPEECH_TEXT), heard) <= SAMPLE_WER_BOUND, heard


@pytest.mark.parametrize("name", ["animated.gif", "animated.webp"])
async def test_an_animated_image_is_read_as_a_silent_video(
    api: httpx.AsyncClient, worker: Settings, media_dir: Path, media_url: str, name: str
) -> None:
    """Its shots become scenes with their own text, every distinct line is also listed
    where an image's text is, and nothing is transcribed. FFmpeg decodes the GIF; the
    WebP's frames are turned into video first."""
    job_id = await submit(api, f"{media_url}/{name}")
    result, statuses = await wait_for_result(api, job_id, timeout_s=120)
    (item,) = result["items"]
    assert item["state"] == "succeeded", item
    assert item["kind"] == "image" and item["metadata"]["video_codec"] == name.split(".")[1]
    assert item["metadata"]["size_bytes"] == (media_dir / name).stat().st_size
    assert item["metadata"]["duration_s"] == pytest.approx(6.0, abs=0.15)
    captions = [caption for _, _, caption in ANIMATION_SHOTS]
    assert [[normalize(t["text"]) for t in s["text"]] for s in item["scenes"]] == [
        [normalize(c)] if c else [] for c in captions
    ]
    assert [round(s["start_s"], 1) for s in item["scenes"]] == [0.0, 2.0, 4.0]
    assert all(s["keyframes"] and s["keyframes"][0]["url"] for s in item["scenes"])
    assert [normalize(t["text"]) for t in item["text"]] == [normalize(c) for c in captions if c]
    assert item["transcript"] is None
    stages = [s["stage"] for s in statuses[-1]["items"][0]["stages"]]
    assert stages == ["download", "probe", "scenes", "keyframes", "ocr"]


async def test_stage_switches_skip_work(
    api: httpx.AsyncClient, worker: Settings, media_url: str
) -> None:
    job_id = await submit(
        api, f"{media_url}/{SAMPLE_NAME}", stages={"scenes": False, "transcript": True}
    )
    result, statuses = await wait_for_result(api, job_id)
    (item,) = result["items"]
    assert item["state"] == "succeeded"
    assert item["scenes"] == []
    assert item["transcript"]["text"]
    assert any("switched off" in note for note in item["notes"])
    stages = [s["stage"] for s in statuses[-1]["items"][0]["stages"]]
    assert stages == ["download", "probe", "transcribe"]


async def test_a_failed_transcription_keeps_the_scenes_and_their_text(
    api: httpx.AsyncClient, worker: Settings, media_url: str
) -> None:
    """The item fails, and says why, but what its vision stages found is kept, key
    frames included; the job's status names transcription as the stage that failed,
    though the vision stages ran on after it."""
    job_id = await submit(api, f"{media_url}/{SAMPLE_NAME}", whisper_model="no-such-model")
    result, statuses = await wait_for_result(api, job_id)
    (item,) = result["items"]
    assert item["state"] == "failed" and item["error"]["type"] == "ModelUnavailable"
    assert item["transcript"] is None
    assert len(item["scenes"]) == 4
    texts = [normalize(t["text"]) for s in item["scenes"] for t in s["text"]]
    assert normalize("OPEN SOURCE VIDEO") in texts
    keyframe = await api.get(item["scenes"][0]["keyframes"][0]["url"])
    assert keyframe.status_code == 200 and keyframe.content[:2] == b"\xff\xd8"
    status = statuses[-1]["items"][0]
    assert status["stage"] == "transcribe", status
    assert {s["stage"]: s["state"] for s in status["stages"]} == {
        "download": "succeeded",
        "probe": "succeeded",
        "scenes": "succeeded",
        "keyframes": "succeeded",
        "ocr": "succeeded",
        "transcribe": "failed",
    }


async def test_private_addresses_are_refused_by_default(
    api: httpx.AsyncClient, settings: Settings, models: Models, media_url: str
) -> None:
    strict = settings.model_copy(update={"allow_private_urls": False})
    async with running_worker(strict, models):
        port = media_url.rsplit(":", 1)[1]
        links = [
            f"http://localhost:{port}/{SAMPLE_NAME}",
            "http://169.254.169.254/latest/",
            "http://10.0.0.1/a.mp4",
            f"http://[::ffff:127.0.0.1]:{port}/{SAMPLE_NAME}",
        ]
        started = time.monotonic()
        job_id = (await api.post("/v1/jobs", json={"urls": links})).json()["job_id"]
        result, _ = await wait_for_result(api, job_id, timeout_s=60)
    assert time.monotonic() - started < 15
    assert [i["error"]["type"] for i in result["items"]] == ["UrlNotAllowed"] * 4
    assert all("public" in i["error"]["message"] for i in result["items"])


async def test_a_shot_whose_subtitles_change_lists_each_caption_once_in_order(
    api: httpx.AsyncClient, worker: Settings, media_url: str
) -> None:
    """One shot, four subtitles in turn: the scene has a key frame for each, and its
    text each caption once, timed while it was on screen."""
    job_id = await submit(api, f"{media_url}/subtitled.mp4")
    result, _ = await wait_for_result(api, job_id, timeout_s=120)
    (item,) = result["items"]
    assert item["state"] == "succeeded", item
    (scene,) = item["scenes"]
    assert len(scene["keyframes"]) >= len(SUBTITLES)
    assert all(kf["url"] for kf in scene["keyframes"])
    texts = [normalize(line["text"]) for line in scene["text"]]
    assert texts == [normalize(caption) for caption in SUBTITLES], scene["text"]
    for line, number in zip(scene["text"], range(len(SUBTITLES)), strict=True):
        assert number * SUBTITLE_SECONDS <= line["time_s"] < (number + 1) * SUBTITLE_SECONDS
