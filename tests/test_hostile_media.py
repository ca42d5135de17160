"""Untrusted media through the API: each file ends in a typed, final error or a
documented partial result, within seconds, with nothing left in the workspaces."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from reelscope.settings import Settings
from tests.conftest import PODCAST_TITLE, SAMPLE_NAME, running_worker, workspace_files
from tests.test_end_to_end import submit, wait_for_result
from worker import Models

pytestmark = pytest.mark.e2e


async def outcome(api: httpx.AsyncClient, url: str) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    job_id = await submit(api, url, refresh=True)
    result, _ = await wait_for_result(api, job_id, timeout_s=90)
    return {**result["items"][0], "job_id": job_id}, time.monotonic() - started


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("no_tracks.mp4", "CorruptMedia"),  # moov present, zero streams
        ("too_wide.mp4", "MediaTooLarge"),  # absurd dimensions, refused before decoding
        ("bomb.png", "MediaTooLarge"),  # decompression bomb
        ("fake.jpg", "CorruptMedia"),  # HTML named as an image
        ("half.jpg", "CorruptMedia"),  # image truncated mid-stream
    ],
)
async def test_hostile_files_end_in_typed_errors(
    api: httpx.AsyncClient, worker: Settings, media_url: str, name: str, kind: str
) -> None:
    item, took = await outcome(api, f"{media_url}/{name}")
    assert item["state"] == "failed", item
    assert item["error"]["type"] == kind, item["error"]
    assert took < 20
    assert workspace_files(worker) == []
    # The job's status names the stage that failed, as the item's own status does.
    job = (await api.get(f"/v1/jobs/{item['job_id']}")).json()["items"][0]
    states = [(s["stage"], s["state"]) for s in job["stages"]]
    assert [stage for stage, state in states if state == "failed"] == [job["stage"]], job
    ran = states[: [stage for stage, _ in states].index(job["stage"])]
    assert all(state == "succeeded" for _, state in ran), job
    # The stages after it never ran: the item lists none as still to come.
    assert states[-1] == (job["stage"], "failed"), job


async def test_truncated_video_gives_a_documented_partial_result(
    api: httpx.AsyncClient, worker: Settings, media_url: str
) -> None:
    item, took = await outcome(api, f"{media_url}/truncated.mp4")
    assert item["state"] == "succeeded", item
    assert any("ends early" in note for note in item["notes"]), item["notes"]
    assert 0 < item["scenes"][-1]["end_frame"] < 480
    assert item["scenes"][1]["start_frame"] == 120, "cuts before the break are kept"
    assert took < 20
    assert workspace_files(worker) == []


@pytest.mark.parametrize("name", ["audio_only.m4a", "podcast.mp3"])
async def test_audio_only_gives_a_transcript_only(
    api: httpx.AsyncClient, worker: Settings, media_url: str, name: str
) -> None:
    """An MP3 with cover art, as podcasts are published, is audio: its cover picture
    (a video stream of one frame, at 90000 fps by FFmpeg's count) was once taken for
    its video, and a 720p cover on 30 s of audio failed as too large to decode.

    A link straight to a file is titled by the file's own title tag where it has one
    (the podcast's episode title), else by its name."""
    item, _ = await outcome(api, f"{media_url}/{name}")
    assert item["state"] == "succeeded", item
    title = PODCAST_TITLE if name == "podcast.mp3" else "audio_only"
    assert item["metadata"]["title"] == title
    assert item["scenes"] == [] and "sunny and warm" in item["transcript"]["text"]
    assert any("no video stream" in note for note in item["notes"])
    assert any("cover picture" in note for note in item["notes"]) == (name == "podcast.mp3")
    assert item["metadata"]["video_codec"] is None and item["metadata"]["has_audio"]


@pytest.mark.parametrize("name", ["two_tracks.mkv", "speech_second.mp4"])
async def test_a_second_audio_track_is_named_and_the_one_a_player_plays_transcribed(
    api: httpx.AsyncClient, worker: Settings, media_url: str, name: str
) -> None:
    """The speech is in the first track, marked default, or in the second, marked
    default after a silent, unmarked first: before, that one gave no speech."""
    item, _ = await outcome(api, f"{media_url}/{name}")
    assert item["state"] == "succeeded", item
    assert "sunny and warm" in item["transcript"]["text"]
    assert any("2 audio tracks; one is transcribed" in note for note in item["notes"]), item
    assert len(item["scenes"]) == 4


async def test_overlong_media_is_refused(
    api: httpx.AsyncClient, settings: Settings, models: Models, media_url: str
) -> None:
    short_limit = settings.model_copy(update={"max_duration_s": 10.0})
    async with running_worker(short_limit, models):
        item, took = await outcome(api, f"{media_url}/{SAMPLE_NAME}")
    assert item["error"]["type"] == "MediaTooLong", item
    assert "16 s, over the 10 s limit" in item["error"]["message"]
    assert took < 20
    assert workspace_files(short_limit) == []
