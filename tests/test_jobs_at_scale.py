"""Batches, posts with several items, partial success, cache, idempotency, cancel and
exports: through the API, on a real Temporal dev server, with real media and models."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Any

import httpx
import pytest
import srt
import webvtt
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from reelscope.settings import Settings
from tests.conftest import (
    CAPTION_IMAGE_TEXT,
    PRIVATE_USER,
    SAMPLE_NAME,
    activities_in_history,
    running_worker,
    serving_api,
    workspace_files,
)
from tests.test_end_to_end import submit, wait_for_result
from worker import Models

pytestmark = pytest.mark.e2e

PIPELINE_ACTIVITIES = {
    "download_media",
    "fetch_image",
    "probe_media",
    "detect_scenes",
    "extract_keyframes",
    "ocr_keyframes",
    "transcribe_audio",
}


async def post(api: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await api.post("/v1/jobs", json=body, headers=headers)


async def activities_run(client: Client, workflow_id: str) -> list[str]:
    """Activity types a workflow ran, local ones included."""
    return [kind for kind, _ in await activities_in_history(client, workflow_id)]


def seconds(vtt_time: str) -> float:
    hours, minutes, secs = vtt_time.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(secs)


def words(text: str) -> str:
    return re.sub(r"[^A-Z0-9 ]", "", text.upper())


async def test_batch_with_a_broken_link_keeps_its_siblings(
    api: httpx.AsyncClient, worker: Settings, media_url: str
) -> None:
    links = [f"{media_url}/{SAMPLE_NAME}", f"{media_url}/missing.mp4", f"{media_url}/silent.mp4"]
    job_id = (await post(api, {"urls": links})).json()["job_id"]
    result, _ = await wait_for_result(api, job_id)
    assert result["state"] == "partially_succeeded"
    states = [(i["index"], i["source_url"], i["state"]) for i in result["items"]]
    assert states == [
        (0, links[0], "succeeded"),
        (1, links[1], "failed"),
        (2, links[2], "succeeded"),
    ]
    broken = result["items"][1]
    assert broken["error"]["type"] == "NotFound" and "missing.mp4" in broken["error"]["message"]
    assert len(result["items"][0]["scenes"]) == 4 and result["items"][2]["scenes"]
    assert workspace_files(worker) == []


async def test_a_links_password_fetches_the_media_and_is_shown_nowhere(
    api: httpx.AsyncClient, worker: Settings, media_url: str, temporal_client: Client
) -> None:
    """A link with a user name and password fetches what the server guards with them;
    the statuses, the result, the error of a wrong password, and what Temporal's Web UI
    shows of the job (its summary and the failures in its histories) hide the password."""
    user, password = PRIVATE_USER.split(":")
    host = media_url.removeprefix("http://")
    links = [
        f"http://{PRIVATE_USER}@{host}/private/silent.mp4",
        f"http://{user}:wrong-one@{host}/private/silent.mp4",
    ]
    job_id = (await post(api, {"urls": links})).json()["job_id"]
    result, seen = await wait_for_result(api, job_id)
    assert [item["state"] for item in result["items"]] == ["succeeded", "failed"], result
    assert result["items"][0]["source_url"] == f"http://{user}:***@{host}/private/silent.mp4"
    refused = result["items"][1]["error"]
    assert refused["type"] == "DownloadFailed", refused
    assert f"http://{user}:***@{host}/private/silent.mp4" in refused["message"], refused
    shown = json.dumps([result, *seen])
    assert password not in shown and "wrong-one" not in shown

    description = await temporal_client.get_workflow_handle(job_id).describe()
    summary = f"{description.static_summary} {description.static_details}"
    assert f"{user}:***@" in summary and password not in summary
    failures = []
    # The wrong password is refused while the link is resolved, in the job's own history.
    for workflow_id in (job_id, f"{job_id}.0"):
        handle = temporal_client.get_workflow_handle(workflow_id)
        async for event in handle.fetch_history_events():
            attributes = getattr(event, event.WhichOneof("attributes"))
            if hasattr(attributes, "failure") and attributes.HasField("failure"):
                failures.append(attributes.failure.message)
    assert failures and not [f for f in failures if "wrong-one" in f or password in f], failures


async def test_batch_over_the_cap_is_refused(api: httpx.AsyncClient, settings: Settings) -> None:
    links = [f"http://example.com/{n}.mp4" for n in range(settings.max_batch_urls + 1)]
    response = await post(api, {"urls": links})
    assert response.status_code == 422
    assert response.json()["detail"]["type"] == "BatchTooLarge"
    assert str(settings.max_batch_urls) in response.json()["detail"]["message"]
    both = await post(api, {"url": links[0], "urls": links[:2]})
    assert both.status_code == 422 and "exactly one" in both.text


async def test_post_with_several_videos_and_an_image_link(
    api: httpx.AsyncClient, worker: Settings, media_url: str, temporal_client: Client
) -> None:
    """A picture with no file extension, sent as application/octet-stream, is an image
    item too, told by its first bytes. It is stored sideways, as phones store photos,
    and read upright as its EXIF tag says. So is an iPhone's HEIC photo after it. The
    next post names its video only in its Open Graph tags, the last its two videos only
    in its linked data (JSON-LD), by links relative to the page."""
    links = [
        f"{media_url}/post.html",
        f"{media_url}/caption.jpg",
        f"{media_url}/photo",
        f"{media_url}/photo.heic",
        f"{media_url}/shared.html",
        f"{media_url}/linked.html",
    ]
    job_id = (await post(api, {"urls": links})).json()["job_id"]
    result, _ = await wait_for_result(api, job_id)
    assert result["state"] == "succeeded", result
    kinds = [(i["kind"], i["media_url"].rsplit("/", 1)[-1]) for i in result["items"]]
    assert kinds == [
        ("video", SAMPLE_NAME),
        ("video", "silent.mp4"),
        ("image", "caption.jpg"),
        ("image", "photo"),
        ("image", "photo.heic"),
        ("video", "8f3a2c"),
        ("video", "silent.mp4"),
        ("video", "8f3a2c"),
    ]
    assert [i["source_url"] for i in result["items"]][:2] == [f"{media_url}/post.html"] * 2
    # Titled as the posts give them, not by the files' names.
    titles = [i["metadata"]["title"] for i in result["items"]]
    assert titles == [
        "A post with two clips (1)",
        "A post with two clips (2)",
        "caption",
        "photo",
        "photo",
        "A shared clip",
        "Linked clip one",
        "Linked clip two",
    ]

    video, _, image, photo, heic, shared, *linked = result["items"]
    assert shared["scenes"] and shared["transcript"]["segments"] == []
    assert [i["source_url"] for i in linked] == [f"{media_url}/linked.html"] * 2
    assert all(i["state"] == "succeeded" and i["scenes"] for i in linked), linked
    assert len(video["scenes"]) == 4 and "sunny" in video["transcript"]["text"]
    assert heic["metadata"]["video_codec"] == "heif"
    for picture in (image, photo, heic):
        assert picture["scenes"] == [] and picture["transcript"] is None
        assert [words(t["text"]) for t in picture["text"]] == [CAPTION_IMAGE_TEXT]
        assert picture["metadata"]["width"] == 960 and picture["metadata"]["height"] == 540

    # Each item is its own workflow, so it has its own history in the Web UI.
    assert "fetch_image" in await activities_run(temporal_client, f"{job_id}.2")
    assert "transcribe_audio" in await activities_run(temporal_client, f"{job_id}.0")

    # Key frames are served, at the URLs the result lists.
    url = video["scenes"][1]["keyframes"][0]["url"]
    assert url == f"/v1/jobs/{job_id}/items/0/keyframes/1.jpg"
    jpeg = await api.get(url)
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert jpeg.content[:2] == b"\xff\xd8"
    assert (await api.get(f"/v1/jobs/{job_id}/items/0/keyframes/99.jpg")).status_code == 404


async def test_identical_resubmission_is_served_from_cache(
    api: httpx.AsyncClient, worker: Settings, media_url: str, temporal_client: Client
) -> None:
    body = {"url": f"{media_url}/{SAMPLE_NAME}"}
    first_id = (await post(api, body)).json()["job_id"]
    first, _ = await wait_for_result(api, first_id)
    assert first["items"][0]["cached"] is False

    second_id = (await post(api, body)).json()["job_id"]
    assert second_id != first_id
    second, _ = await wait_for_result(api, second_id)
    item = second["items"][0]
    assert item["cached"] is True and item["state"] == "succeeded"
    assert item["scenes"] == [
        {
            **s,
            "keyframes": [
                {**k, "url": k["url"].replace(first_id, second_id)} for k in s["keyframes"]
            ],
        }
        for s in first["items"][0]["scenes"]
    ]
    assert item["transcript"] == first["items"][0]["transcript"]
    ran = await activities_in_history(temporal_client, f"{second_id}.0")
    assert ran == [("lookup_cache", "cache")], ran
    assert (await api.get(item["scenes"][0]["keyframes"][0]["url"])).status_code == 200

    third_id = (await post(api, {**body, "options": {"refresh": True}})).json()["job_id"]
    third, _ = await wait_for_result(api, third_id)
    assert third["items"][0]["cached"] is False
    assert PIPELINE_ACTIVITIES & set(await activities_run(temporal_client, f"{third_id}.0"))


async def test_a_worker_with_other_models_or_thresholds_does_not_serve_the_cache(
    settings: Settings, models: Models, media_url: str, temporal_client: Client
) -> None:
    """An operator who changes a result-shaping setting (here OCR's score threshold)
    gets fresh results for links sent before; the same settings again serve the cache."""
    body = {"url": f"{media_url}/caption.jpg"}

    async def cached(config: Settings) -> bool:
        async with running_worker(config, models), serving_api(config) as api:
            job_id = (await post(api, body)).json()["job_id"]
            result, _ = await wait_for_result(api, job_id)
        item = result["items"][0]
        assert item["state"] == "succeeded", item
        assert [words(t["text"]) for t in item["text"]] == [CAPTION_IMAGE_TEXT]
        ran = await activities_run(temporal_client, f"{job_id}.0")
        assert (ran == ["lookup_cache"]) is item["cached"], ran
        return bool(item["cached"])

    assert not await cached(settings)
    # The models are the test session's, so the text read stays the same: what this
    # checks is whether the worker serves the cache, from the settings it was given.
    stricter = settings.model_copy(update={"ocr_rec_score_thresh": 0.55})
    assert not await cached(stricter), "served a result made with another threshold"
    assert await cached(settings)
    assert await cached(stricter)


async def test_a_file_two_posts_link_is_served_from_cache_with_each_posts_title(
    api: httpx.AsyncClient, worker: Settings, media_url: str
) -> None:
    # Processed afresh, so the cache holds the file as the first post titled it.
    first_id = (
        await post(api, {"url": f"{media_url}/shared.html", "options": {"refresh": True}})
    ).json()["job_id"]
    first, _ = await wait_for_result(api, first_id)
    assert first["items"][0]["metadata"]["title"] == "A shared clip"
    assert first["items"][0]["cached"] is False

    second_id = (await post(api, {"url": f"{media_url}/linked.html"})).json()["job_id"]
    second, _ = await wait_for_result(api, second_id)
    same_file = second["items"][1]
    assert same_file["media_url"] == first["items"][0]["media_url"]
    assert same_file["cached"] is True
    assert same_file["metadata"]["title"] == "Linked clip two"
    assert same_file["source_url"] == f"{media_url}/linked.html"
    assert same_file["scenes"] == [
        {
            **s,
            "keyframes": [
                {**k, "url": k["url"].replace(f"{first_id}/items/0", f"{second_id}/items/1")}
                for k in s["keyframes"]
            ],
        }
        for s in first["items"][0]["scenes"]
    ]


async def test_idempotent_retry_returns_the_same_job(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    key = f"test-{uuid.uuid4()}"
    body = {"url": "http://example.com/a.mp4"}
    first = await post(api, body, **{"Idempotency-Key": key})
    assert first.status_code == 202
    job_id = first.json()["job_id"]
    try:
        run_id = (await temporal_client.get_workflow_handle(job_id).describe()).run_id
        again = await post(api, body, **{"Idempotency-Key": key})
        assert again.status_code == 202 and again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert (await temporal_client.get_workflow_handle(job_id).describe()).run_id == run_id
        other = await post(api, {"url": "http://example.com/b.mp4"}, **{"Idempotency-Key": key})
        assert other.status_code == 422
        assert other.json()["detail"]["type"] == "IdempotencyKeyReused"
        fresh = await post(api, body)
        assert fresh.json()["job_id"] != job_id, "no key: a new job each time"
        await temporal_client.get_workflow_handle(fresh.json()["job_id"]).terminate("cleanup")
    finally:
        await temporal_client.get_workflow_handle(job_id).terminate("test cleanup")
    # Once the job has ended, the key still maps to it.
    ended = await post(api, body, **{"Idempotency-Key": key})
    assert ended.json()["job_id"] == job_id


async def test_cancel_during_transcription(
    api: httpx.AsyncClient, worker: Settings, media_url: str, temporal_client: Client
) -> None:
    worker.max_parallel_items = 1  # item 0 finishes before item 1 starts
    links = [f"{media_url}/{SAMPLE_NAME}", f"{media_url}/longer.mp4"]
    job_id = (await post(api, {"urls": links, "options": {"refresh": True}})).json()["job_id"]
    deadline = time.monotonic() + 120
    while True:
        status = (await api.get(f"/v1/jobs/{job_id}")).json()
        items = status["items"]
        if len(items) == 2 and items[1]["state"] == "running":
            asr = [s for s in items[1]["stages"] if s["stage"] == "transcribe"]
            # Early in the transcription, so it is surely still running when the
            # cancel reaches it (heartbeats, and so progress, arrive every 2 s).
            if asr and asr[0]["state"] == "running" and 0 < asr[0]["progress"] < 0.5:
                break
        assert status["state"] == "running" and time.monotonic() < deadline, status
        await asyncio.sleep(0.2)
    assert items[0]["state"] == "succeeded"

    cancelled_at = time.monotonic()
    response = await api.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 202
    while (await api.get(f"/v1/jobs/{job_id}")).json()["state"] == "running":
        assert time.monotonic() - cancelled_at < 30, "cancel must land within seconds"
        await asyncio.sleep(0.2)

    result = (await api.get(f"/v1/jobs/{job_id}/result")).json()
    assert result["state"] == "cancelled"
    assert result["items"][0]["state"] == "succeeded" and len(result["items"][0]["scenes"]) == 4
    assert result["items"][1]["state"] == "cancelled"
    # The running transcription noticed the cancel and ended as cancelled, and no stage
    # was started after the cancel arrived; only the clean-up ran.
    history = await temporal_client.get_workflow_handle(f"{job_id}.1").fetch_history()
    scheduled: dict[int, str] = {}
    ended: dict[str, str] = {}
    after_cancel: list[str] = []
    cancel_seen = False
    for event in history.events:
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            cancel_seen = True
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activity_type = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = activity_type
            if cancel_seen:
                after_cancel.append(activity_type)
        elif name in ("ACTIVITY_TASK_COMPLETED", "ACTIVITY_TASK_CANCELED"):
            attributes = (
                event.activity_task_completed_event_attributes
                if name == "ACTIVITY_TASK_COMPLETED"
                else event.activity_task_canceled_event_attributes
            )
            ended[scheduled[attributes.scheduled_event_id]] = name
    assert cancel_seen
    assert ended["transcribe_audio"] == "ACTIVITY_TASK_CANCELED", ended
    assert after_cancel == ["remove_workspace"], after_cancel
    assert "remove_workspace" in await activities_run(temporal_client, f"{job_id}.1")
    assert workspace_files(worker) == []
    again = await api.delete(f"/v1/jobs/{job_id}")
    assert again.status_code == 409


async def test_subtitles_parse_and_match_the_transcript(
    api: httpx.AsyncClient, worker: Settings, media_url: str
) -> None:
    job_id = (await post(api, {"url": f"{media_url}/{SAMPLE_NAME}"})).json()["job_id"]
    result, _ = await wait_for_result(api, job_id)
    segments = result["items"][0]["transcript"]["segments"]

    srt_text = await api.get(f"/v1/jobs/{job_id}/items/0/transcript.srt")
    assert srt_text.status_code == 200
    cues = list(srt.parse(srt_text.text))
    assert [c.content for c in cues] == [s["text"] for s in segments]
    assert [round(c.start.total_seconds(), 3) for c in cues] == [s["start_s"] for s in segments]

    vtt_text = await api.get(f"/v1/jobs/{job_id}/items/0/transcript.vtt")
    assert vtt_text.headers["content-type"].startswith("text/vtt")
    captions = list(webvtt.from_string(vtt_text.text))
    assert [c.text for c in captions] == [s["text"] for s in segments]
    assert [seconds(c.end) for c in captions] == pytest.approx(
        [s["end_s"] for s in segments], abs=0.002
    )
    missing = await api.get(f"/v1/jobs/{job_id}/items/5/transcript.srt")
    assert missing.status_code == 404


async def test_status_shows_attempts_and_the_last_failure_while_retrying(
    api: httpx.AsyncClient, worker: Settings, media_url: str
) -> None:
    url = f"{media_url}/flaky/{uuid.uuid4().hex}/{SAMPLE_NAME}"
    job_id = (await post(api, {"url": url, "options": {"refresh": True}})).json()["job_id"]
    seen: dict[str, Any] | None = None
    deadline = time.monotonic() + 60
    while seen is None and time.monotonic() < deadline:
        status = (await api.get(f"/v1/jobs/{job_id}")).json()
        for stage in status["items"][0]["stages"]:
            if stage["stage"] == "download" and (stage.get("attempt") or 0) >= 2:
                seen = stage
        assert status["state"] == "running" or seen, status
        await asyncio.sleep(0.1)
    assert seen is not None, "no retry was visible in the status"
    assert "503" in (seen["last_failure"] or ""), seen
    result, _ = await wait_for_result(api, job_id)
    assert result["state"] == "succeeded", "the third attempt succeeds"


async def test_a_download_never_waits_behind_the_cpu_stages(
    settings: Settings, models: Models, media_url: str, temporal_client: Client
) -> None:
    """With one CPU slot, held by a long item's scene detection or transcription, a
    second item still downloads and probes: I/O stages have slots of their own."""
    settings.max_concurrent_activities = 1
    async with running_worker(settings, models), serving_api(settings) as api:
        busy = await submit(api, f"{media_url}/longer.mp4", refresh=True)

        async def busy_cpu_stage() -> str | None:
            item = (await api.get(f"/v1/jobs/{busy}")).json()["items"]
            running = (
                [s["stage"] for s in item[0]["stages"] if s["state"] == "running"] if item else []
            )
            return next((s for s in running if s in ("scenes", "transcribe")), None)

        deadline = time.monotonic() + 60
        while (first := await busy_cpu_stage()) is None:
            assert time.monotonic() < deadline, "the long item never reached a CPU stage"
            await asyncio.sleep(0.1)
        quick = await submit(api, f"{media_url}/{SAMPLE_NAME}", refresh=True)
        deadline = time.monotonic() + 60
        while True:
            stages = {
                s["stage"]: s["state"]
                for s in ((await api.get(f"/v1/jobs/{quick}")).json()["items"] or [{}])[0].get(
                    "stages", []
                )
            }
            if stages.get("download") == "succeeded" and stages.get("probe") == "succeeded":
                break
            assert time.monotonic() < deadline, stages
            await asyncio.sleep(0.1)
        # Meanwhile the long item still holds the only CPU slot with the same stage, and
        # the quick one waits for it.
        assert await busy_cpu_stage() == first
        assert stages.get("scenes") != "succeeded" and stages.get("transcribe") != "succeeded"
        history = await temporal_client.get_workflow_handle(f"{quick}.0").fetch_history()
        queues = {
            e.activity_task_scheduled_event_attributes.activity_type.name: (
                e.activity_task_scheduled_event_attributes.task_queue.name
            )
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        }
        assert queues["download_media"] == f"{settings.host_task_queue}-io", queues
        assert queues["probe_media"] == f"{settings.host_task_queue}-io", queues
        for job_id in (busy, quick):
            assert (await api.delete(f"/v1/jobs/{job_id}")).status_code == 202
        for job_id in (busy, quick):
            deadline = time.monotonic() + 60
            while (await api.get(f"/v1/jobs/{job_id}")).json()["state"] == "running":
                assert time.monotonic() < deadline, "cancel must land within seconds"
                await asyncio.sleep(0.2)
