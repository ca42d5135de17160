"""Reelscope against its floor and against the naive script, in one run.

    .venv/bin/python bench/pipeline.py [--runs 3] [--sizes 720p,1080p] [--seconds 60]
                                       [--media FILE ...]

On generated 60 s clips (fixed content: 4 s shots, every other captioned, speech
throughout; written to a temp dir, never committed), and on any video files given with
``--media``, it measures, per clip, the median of ``--runs`` runs of:

(a) Reelscope end to end through the API: submit → result, on a stack it starts
    (Temporal dev server, one worker process, the API process). It learns that the
    job ended from the workflow (a long poll), not by polling the API.
(b) The floor: the same activity code and settings called in this one process, no
    Temporal: max(ASR alone, decode + scenes + key frames + OCR alone), with scenes
    and key frames in one decode, as the worker does.
(b') The same two paths of (b) beside each other in this one process, transcription
    on a thread of its own, as the item workflow runs them. b'/b is what sharing the
    CPUs costs; a/b' is what Temporal, the worker and the API add to it.
(c) The naive script: yt-dlp download, ``scenedetect.detect(path, ContentDetector())``,
    PaddleOCR with default settings on each scene's middle frame, faster-whisper with
    default settings (beam 5, no VAD), one after another.

Models are loaded before timing in (b) and (c), as they are in a running worker, and
each of (a), (b) and (c) first runs ``--warmup`` times per clip untimed (default 1), so
no median holds a first run's one-time costs. (b) runs in this process, set up as a
worker sets up its own (glibc malloc, ``worker.tune_malloc``; once the models are
loaded, one BLAS thread and the objects alive kept from the garbage collector); (c)
runs in a process of its own with the defaults, as a user's script would. Per-stage
times of (a) come from the item workflow's activity events, and the time before the
stages from the job's and the item's histories. From (a)'s CPU seconds it also prints how low a/b
could go with no CPU ever idle and no orchestration cost.

(d) Decoding alone: every frame of the clip's video decoded with PyAV's FFmpeg on
    frame threads, one per CPU, and nothing else done with it. A job that decodes every
    frame cannot take less; the naive script decodes every frame too, through OpenCV's
    FFmpeg, and converts each to colour. Where d/c is over 0.5, a/c ≤ 0.5 needs frames
    left undecoded, which Reelscope does only while the picture stands still (below
    50 fps) or one frame in two (50 fps and more).

A file given with ``--media`` has no known truth, so its accuracy row gives what each
system found (scenes, text lines, words heard) side by side instead of scores.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jiwer
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment

from activities.images import ffmpeg_decodes_frames
from activities.ocr import OcrActivities, ReadAhead
from activities.probe import ProbeActivities
from activities.scenes import SceneActivities
from activities.transcribe import TranscribeActivities, bundled_whisper_path
from activities.workspace import Workspaces
from bench.local_stack import LocalStack
from bench.machine import describe
from eval.systems import default_paddleocr
from models.pipeline import (
    DetectScenesInput,
    OcrInput,
    ProbeInput,
    TranscribeInput,
    WorkspaceRef,
)
from reelscope.cli import serve_folder
from reelscope.sample import SPEECH_TEXT, SampleSpec, make_sample
from reelscope.settings import Settings
from worker import Models, malloc_settings, settle_process, tune_malloc

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
#: The per-stage key for the time from a job's start to its scene pass's start.
LEAD_IN = "before the stages"


def norm(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", "", text.lower())


@dataclass(frozen=True)
class Clip:
    """One clip the bench times: a generated one (its truth known) or a user's file."""

    name: str
    path: Path
    spec: SampleSpec | None = None


def wer(spec: SampleSpec, text: str) -> float:
    # The track loops to fill the clip; it takes over 4 s to say, so this many loops
    # hold every word heard, and the truth is cut to the words heard below.
    loops = math.ceil(spec.total_frames / spec.fps / 4) + 1
    said = " ".join([SPEECH_TEXT] * loops)
    truth = norm(said).split()
    heard = norm(text).split()
    return float(jiwer.wer(" ".join(truth[: max(len(heard), 1)]), " ".join(heard)))


def captions_found(spec: SampleSpec, texts: list[str]) -> str:
    wanted = {norm(s.text) for s in spec.shots if s.text}
    seen = {norm(t) for t in texts}
    return f"{len(wanted & seen)}/{len(wanted)}"


def quality(clip: Clip, scenes: int, texts: list[str], transcript: str) -> str:
    """One system's accuracy on a clip: scored against the truth of a generated clip,
    or, for a user's file, what it found."""
    if clip.spec is None:
        return (
            f"{scenes} scenes, {len({norm(t) for t in texts})} distinct text lines, "
            f"{len(norm(transcript).split())} words"
        )
    return (
        f"{scenes}/{len(clip.spec.shots)} scenes, {captions_found(clip.spec, texts)} "
        f"captions, WER {wer(clip.spec, transcript):.3f}"
    )


# -- (b) the floor ------------------------------------------------------------------


def floor_run(
    clip: Path, models: Models, settings: Settings, work: Path, read_ahead: ReadAhead | None
) -> dict[str, float]:
    """``read_ahead``: the worker's, where its settings have one (``REELSCOPE_OCR_READ_AHEAD``)."""
    workspaces = Workspaces(work / "floor-ws")
    ref = WorkspaceRef(job_id="job-floor", item_index=0)
    folder = workspaces.create(ref)
    shutil.copy(clip, folder / "media.mp4")
    # Untimed: what the worker learns before its stages, so that both are given the
    # same inputs (a file with no audio track is not transcribed).
    probe = ActivityEnvironment().run(
        ProbeActivities(workspaces).probe_media,
        ProbeInput(workspace=ref, media_file="media.mp4", title=clip.name),
    )
    has_audio = probe.metadata.has_audio
    transcribe = TranscribeActivities(
        workspaces, models.whisper, settings.whisper_beam_size
    ).transcribe_audio
    scan = SceneActivities(
        workspaces,
        settings.scene_threshold,
        settings.min_scene_len_frames,
        settings.scene_detector,
        settings.scene_decode_threads,
        spare_cpus=settings.cpus_beside_transcription,
        skip_nonreference=settings.scene_skip_nonreference_frames,
        skip_b_deblocking=settings.scene_skip_b_frame_deblocking,
        niceness=settings.vision_niceness,
        text_changes=settings.scene_text_changes,
        read_ahead=read_ahead,
    ).detect_scenes
    ocr = OcrActivities(workspaces, models.ocr, settings.vision_niceness, read_ahead).ocr_keyframes

    def speech() -> None:
        ActivityEnvironment().run(
            transcribe,
            TranscribeInput(
                workspace=ref,
                media_file="media.mp4",
                duration_s=probe.metadata.duration_s,
                has_audio=has_audio,
            ),
        )

    def vision() -> None:
        env = ActivityEnvironment()
        scenes = env.run(
            scan,
            DetectScenesInput(
                workspace=ref,
                media_file="media.mp4",
                keyframes=True,
                transcription_beside=has_audio,
                text_read_after=True,
            ),
        )
        env.run(ocr, OcrInput(workspace=ref, keyframes=scenes.keyframes or []))

    started = time.perf_counter()
    speech()
    asr = time.perf_counter() - started
    started = time.perf_counter()
    vision()
    vision_s = time.perf_counter() - started
    # The same two, beside each other, as the item workflow runs them: what sharing the
    # CPUs costs, apart from Temporal and the API.
    started, cpu_started = time.perf_counter(), time.process_time()
    beside = threading.Thread(target=speech)
    beside.start()
    vision()
    beside.join()
    together = time.perf_counter() - started
    # Every thread of this process, ONNX Runtime's and CTranslate2's pools included.
    together_cpu = time.process_time() - cpu_started
    shutil.rmtree(work / "floor-ws")
    return {
        "asr": asr,
        "vision": vision_s,
        "floor": max(asr, vision_s),
        "together": together,
        "together_cpu": together_cpu,
    }


# -- (d) decoding alone ---------------------------------------------------------------


def decode_alone(clip: Path) -> tuple[float, int]:
    """Seconds to decode every frame of ``clip``'s first video stream on frame threads,
    one per CPU this process may use, and the frames decoded."""
    started = time.perf_counter()
    frames = 0
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "FRAME"
        stream.thread_count = len(os.sched_getaffinity(0))
        for _ in container.decode(stream):
            frames += 1
    return time.perf_counter() - started, frames


# -- (c) the naive script -------------------------------------------------------------


class Naive:
    """What a user would write by hand, with each library's defaults. PaddleOCR gets the
    bundled PP-OCRv6 models (its default models come from a hub, unreachable offline)
    and no document-orientation, unwarping or text-line models (the same reason)."""

    def __init__(self, work: Path) -> None:
        from faster_whisper import WhisperModel

        self.ocr = default_paddleocr(work / "naive-models")
        self.whisper = WhisperModel(str(bundled_whisper_path()), device="cpu", compute_type="int8")
        self.work = work

    def run(self, url: str) -> tuple[float, dict[str, Any]]:
        import av
        import cv2
        import scenedetect
        import yt_dlp

        out = self.work / "naive-dl"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        with yt_dlp.YoutubeDL(
            {
                "outtmpl": str(out / "%(id)s.%(ext)s"),
                "quiet": True,
                "no_warnings": True,
                "noprogress": True,
            }
        ) as ydl:
            info = ydl.extract_info(url, download=True)
        path = info["requested_downloads"][0]["filepath"]
        scenes = scenedetect.detect(path, scenedetect.ContentDetector())
        capture = cv2.VideoCapture(path)
        texts: list[str] = []
        for start, end in scenes:
            capture.set(cv2.CAP_PROP_POS_FRAMES, (start.frame_num + end.frame_num) // 2)
            ok, frame = capture.read()
            if ok:
                texts += list(self.ocr.predict(frame)[0]["rec_texts"])
        capture.release()
        transcript = ""
        # faster-whisper cannot open a file with no audio track, so a script meant for
        # any video checks first.
        with av.open(path) as container:
            has_audio = bool(container.streams.audio)
        if has_audio:
            segments, _ = self.whisper.transcribe(path)
            transcript = " ".join(s.text for s in segments)
        elapsed = time.perf_counter() - started
        # Not part of the script, so not timed: whether its OpenCV can decode the video
        # at all. opencv-python's own FFmpeg opens AV1 but decodes it only on hardware,
        # so the script then finds no scene and reads no text, and says nothing.
        capture = cv2.VideoCapture(path)
        video_read = bool(capture.read()[0])
        capture.release()
        return elapsed, {
            "scenes": len(scenes),
            "texts": texts,
            "transcript": transcript,
            "video_read": video_read,
        }


def _naive_serve(conn: Any, work: Path) -> None:
    """The naive script's process: loads its models, then runs it for each URL sent."""
    naive = Naive(work)
    conn.send("ready")
    while (url := conn.recv()) is not None:
        try:
            conn.send(naive.run(url))
        except Exception as exc:
            # What the user's script would have stopped with (a link yt-dlp cannot
            # download, say): reported in the tables instead of ending the bench.
            first_line = (str(exc).splitlines() or [""])[0][:200]
            conn.send((math.nan, {"error": f"{exc.__class__.__name__}: {first_line}"}))


class NaiveProcess:
    """``Naive`` in a process of its own (spawned: glibc's malloc defaults, not the
    ones this process takes from the worker), its models loaded before the first run."""

    def __init__(self, work: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_naive_serve, args=(child, work), daemon=True)
        self._process.start()
        if self._conn.recv() != "ready":
            raise RuntimeError("the naive script's process did not start")

    def run(self, url: str) -> tuple[float, dict[str, Any]]:
        self._conn.send(url)
        result: tuple[float, dict[str, Any]] = self._conn.recv()
        return result

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(30)


# -- (a) Reelscope through the API ----------------------------------------------------


async def reelscope_run(
    api: httpx.AsyncClient, client: Client, url: str
) -> tuple[float, dict[str, Any], dict[str, float]]:
    started = time.perf_counter()
    job = (await api.post("/v1/jobs", json={"url": url, "options": {"refresh": True}})).json()
    job_id = job["job_id"]
    # Wait on the job workflow's own result (a long poll) rather than polling the API
    # every few ms: on 2 CPUs that polling would take CPU from the job it measures.
    # bench/status.py measures the status path.
    await client.get_workflow_handle(job_id).result()
    result = (await api.get(f"/v1/jobs/{job_id}/result")).json()
    item = result["items"][0]
    if item["state"] != "succeeded":
        error = item.get("error") or {}
        raise SystemExit(
            f"{url}: Reelscope did not process it ({item['state']}: "
            f"{error.get('type')}: {error.get('message')}), so there is nothing to compare"
        )
    if item["kind"] != "video" and not item["scenes"]:
        raise SystemExit(f"{url}: Reelscope read it as a still image; the bench times videos")
    elapsed = time.perf_counter() - started
    stages: dict[str, float] = {}
    history = await client.get_workflow_handle(f"{job_id}.0").fetch_history()
    scheduled: dict[int, str] = {}
    started_at: dict[int, Any] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = (
                event.activity_task_scheduled_event_attributes.activity_type.name
            )
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started_at[event.activity_task_started_event_attributes.scheduled_event_id] = (
                event.event_time.ToDatetime()
            )
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = event.activity_task_completed_event_attributes.scheduled_event_id
            took = (event.event_time.ToDatetime() - started_at[sid]).total_seconds()
            stages[scheduled[sid]] = took
    # From the job's start to the scene pass's: resolve, route, download, probe and the
    # workflow tasks between them, when the item's two paths have not begun.
    job_history = await client.get_workflow_handle(job_id).fetch_history()
    job_started = job_history.events[0].event_time.ToDatetime()
    scenes_started = next(
        (t for sid, t in started_at.items() if scheduled[sid] == "detect_scenes"), None
    )
    if scenes_started is not None:
        stages[LEAD_IN] = (scenes_started - job_started).total_seconds()
    return elapsed, result, stages


def cpu_seconds(processes: list[psutil.Process]) -> list[float]:
    """User + system CPU seconds each process has used so far, all its threads."""
    return [sum(p.cpu_times()[:2]) for p in processes]


def median(values: list[float]) -> float:
    return statistics.median(values)


def sharing_table(rows: list[dict[str, Any]], cpus: int) -> list[str]:
    """a/b split in two, as lines to print: (b') the floor's two paths beside each other
    in its one process, with no Temporal and no API, over (b), which gives each path
    the whole machine (what sharing the CPUs costs); and (a) over (b') (what Temporal,
    the worker and the API add, the cost the goal's 30 % is about). The two multiply
    to a/b. Each run's own a/b' pairs numbers taken seconds apart."""
    lines = [
        "",
        f"Where a/b goes: the floor gives ASR and vision each all {cpus} CPUs. (b') is the "
        "same two paths beside each other in one plain process, no Temporal, no API; "
        "b'/b is what sharing the CPUs costs, and a/b' what Temporal, the worker and "
        "the API add to that (a/b = b'/b × a/b'):",
        "",
        "| clip | (a) | (b) | (b') both paths at once, one process | b'/b: CPUs shared "
        "| a/b': Temporal and the API | runs' own a/b' | a/b |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        own = ", ".join(
            f"{a / t:.3f}" for (a, _, _), t in zip(r["runs"], r["together_runs"], strict=True)
        )
        lines.append(
            f"| {r['size']} | {r['a']:.2f} | {r['b']:.2f} | {r['together']:.2f}"
            f" | {r['together'] / r['b']:.3f} | {r['a'] / r['together']:.3f} | {own}"
            f" | {r['a'] / r['b']:.3f} |"
        )
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--sizes", default="720p,1080p", help="Generated clips to time; '' for none."
    )
    parser.add_argument(
        "--seconds",
        type=int,
        default=60,
        help="Length of the generated clips (default 60; whole 4 s shots). A job's fixed "
        "cost (the steps before and after the stages) weighs more on a shorter clip.",
    )
    parser.add_argument(
        "--media",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="A video file of your own to time as well (repeatable); it is served to "
        "Reelscope and the naive script over HTTP, as the generated clips are.",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="Untimed runs of (a), (b) and (c) per clip before the timed ones (default 1).",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Extra setting for the worker process, e.g. REELSCOPE_WHISPER_THREADS=1 (repeatable).",
    )
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if args.seconds < 4:
        parser.error("--seconds: at least 4 (one shot)")
    if not sizes and not args.media:
        parser.error("nothing to time: give --sizes or --media")
    for path in args.media:
        if not path.is_file():
            parser.error(f"--media {path}: no such file")
        # A video, or an animated GIF or PNG (read as silent videos); not a still.
        if not ffmpeg_decodes_frames(path):
            parser.error(
                f"--media {path}: not a video file (PyAV decodes no more than one frame of it)"
            )
    # Before this process starts threads or loads models, as the worker does.
    tune_malloc(malloc_settings(Settings().keep_freed_memory))

    work = Path(tempfile.mkdtemp(prefix="reelscope-bench-"))
    media = work / "media"
    clips = []
    for size in sizes:
        width, height = SIZES[size]
        spec = SampleSpec.long(width, height, seconds=args.seconds)
        stem = f"clip-{size}" if args.seconds == 60 else f"clip-{size}-{args.seconds}s"
        name = size if args.seconds == 60 else f"{size} {args.seconds} s"
        print(f"rendering the {name} clip ...", flush=True)
        clips.append(Clip(name, make_sample(media / f"{stem}.mp4", spec), spec))
    for n, path in enumerate(args.media):
        # Numbered, so that two files of one name stay apart.
        served = media / f"media-{n}{path.suffix}"
        served.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, served)
        clips.append(Clip(path.name, served))
    server, media_url = serve_folder(media)

    worker_env = dict(kv.split("=", 1) for kv in args.worker_env)
    rows: list[dict[str, Any]] = []
    first_job: tuple[str, float] | None = None
    naive: NaiveProcess | None = None
    stack = LocalStack(work, worker_env)
    try:
        await stack.__aenter__()
        await stack.start_worker()
        settings = Settings(data_dir=work / "bench-data")
        print("loading models for (b) and (c) ...", flush=True)
        models = Models(settings)
        models.preload()
        settle_process(settings)  # as the worker does once its models are loaded
        read_ahead = models.read_ahead if settings.ocr_read_ahead else None
        naive = NaiveProcess(work)
        # The stack's processes, in LocalStack's order.
        stack_cpu = [psutil.Process(p.pid) for p in stack.processes]
        client = await Client.connect(
            stack.temporal_address, data_converter=pydantic_data_converter
        )
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api:
            for clip in clips:
                size = clip.name
                url = f"{media_url}/{clip.path.name}"
                a_times, b_times, c_times, d_times = [], [], [], []
                naive_error: str | None = None
                stage_runs: list[dict[str, float]] = []
                a_cpu: list[list[float]] = []
                floors: list[dict[str, float]] = []
                for run in range(args.warmup):
                    print(f"{size} warm-up {run + 1}/{args.warmup}", flush=True)
                    took, _, _ = await reelscope_run(api, client, url)
                    first_job = first_job or (size, took)
                    floor_run(clip.path, models, settings, work, read_ahead)
                    naive.run(url)
                for run in range(args.runs):
                    print(f"{size} run {run + 1}/{args.runs}: reelscope, floor, naive", flush=True)
                    cpu_before = cpu_seconds(stack_cpu)
                    a, result, stages = await reelscope_run(api, client, url)
                    a_cpu.append(
                        [t - b for t, b in zip(cpu_seconds(stack_cpu), cpu_before, strict=True)]
                    )
                    a_times.append(a)
                    stage_runs.append(stages)
                    floor = floor_run(clip.path, models, settings, work, read_ahead)
                    floors.append(floor)
                    b_times.append(floor["floor"])
                    c, naive_out = naive.run(url)
                    c_times.append(c)
                    naive_error = naive_error or naive_out.get("error")
                    decoded, frames_decoded = decode_alone(clip.path)
                    d_times.append(decoded)
                item = result["items"][0]
                texts = [t["text"] for s in item["scenes"] for t in s["text"]]
                rows.append(
                    {
                        "size": size,
                        "a": median(a_times),
                        "b": median(b_times),
                        "c": median(c_times),
                        "d": median(d_times),
                        "runs": list(zip(a_times, b_times, c_times, strict=True)),
                        "d_runs": d_times,
                        "d_frames": frames_decoded,
                        "asr": median([f["asr"] for f in floors]),
                        "vision": median([f["vision"] for f in floors]),
                        "together": median([f["together"] for f in floors]),
                        "together_runs": [f["together"] for f in floors],
                        "together_cpu": median([f["together_cpu"] for f in floors]),
                        "a_cpu": [median(list(col)) for col in zip(*a_cpu, strict=True)],
                        "stages": {
                            k: median([s.get(k, 0.0) for s in stage_runs]) for k in stage_runs[0]
                        },
                        "a_quality": quality(
                            clip,
                            len(item["scenes"]),
                            texts,
                            (item["transcript"] or {}).get("text", ""),
                        ),
                        "c_quality": f"failed: {naive_error}"
                        if naive_error
                        else quality(
                            clip, naive_out["scenes"], naive_out["texts"], naive_out["transcript"]
                        ),
                        "c_read": naive_error is not None or naive_out["video_read"],
                        "c_error": naive_error,
                    }
                )
    finally:
        if naive is not None:
            naive.close()
        await stack.__aexit__(None, None, None)
        server.shutdown()
        # The clips, the models' copies and the stack's data: 20-210 MB a run.
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{describe()}; median of {args.runs} runs, seconds\n")
    print(
        "| clip | (a) Reelscope via API | (b) floor: max(ASR, vision) | ASR alone | "
        "vision alone | ASR beside vision, one process | (c) naive script | a/b | a/c |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        # Ratios to three places: at two, 0.504 would print as 0.50.
        unread = "" if r["c_read"] else " †"
        c_time, a_c = f"{r['c']:.2f}{unread}", f"{r['a'] / r['c']:.3f}{unread}"
        if r["c_error"]:
            c_time, a_c = "failed ‡", "-"
        print(
            f"| {r['size']} | {r['a']:.2f} | {r['b']:.2f} | {r['asr']:.2f} | {r['vision']:.2f}"
            f" | {r['together']:.2f} | {c_time} | {r['a'] / r['b']:.3f} | {a_c} |"
        )
    for r in rows:
        if r["c_error"]:
            print(f"\n‡ The naive script stopped on {r['size']}: {r['c_error']}")
    if not all(r["c_read"] for r in rows):
        print(
            "\n† The naive script's OpenCV decoded no frame of this file, so the script "
            "found no scene and read no text, and its time is no comparison. "
            "opencv-python's own FFmpeg decodes AV1 only on hardware; Reelscope decodes "
            "with PyAV's FFmpeg, which has dav1d."
        )
    print(
        "\nEach run, in order: (a), (b) and (c) a few seconds apart, so that a shared "
        "machine's slower and quicker spells fall on all three; the naive script's time "
        "shows which spell a run fell in:\n"
    )
    print("| clip | run | (a) | (b) | (c) | a/b | a/c |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        for number, (a, b, c) in enumerate(r["runs"], start=1):
            a_c = "-" if math.isnan(c) else f"{a / c:.3f}"  # NaN: the script failed
            print(f"| {r['size']} | {number} | {a:.2f} | {b:.2f} | {c:.2f} | {a / b:.3f} | {a_c} |")
    for r in rows:
        # Each run's own ratio pairs numbers taken seconds apart; the table above pairs
        # medians that may come from different runs, and so different spells.
        ratios = [a / b for a, b, _ in r["runs"]]
        line = f"\n{r['size']}: the median of the runs' own a/b is {median(ratios):.3f}"
        if not r["c_error"]:
            line += f", of their a/c {median([a / c for a, _, c in r['runs']]):.3f}"
        print(line)
    if first_job:
        print(
            f"\n(a) of the worker's first job, an untimed {first_job[0]} warm-up: "
            f"{first_job[1]:.1f} s. Warm-ups are left out of the medians."
        )
    print(
        "\nAccuracy on the same runs (generated clips: scenes found / truth, captions "
        "read, WER; your files: what each found):\n"
    )
    print("| clip | Reelscope | naive script |")
    print("| --- | --- | --- |")
    for r in rows:
        naive_found = r["c_quality"] if r["c_read"] else f"no frame decoded: {r['c_quality']}"
        print(f"| {r['size']} | {r['a_quality']} | {naive_found} |")
    print(
        "\nReelscope per-stage activity time (median, seconds; transcription runs beside "
        "the vision stages):\n"
    )
    for r in rows:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
        print(f"- {r['size']}: {parts}")
    cpus = len(os.sched_getaffinity(0))
    print(
        f"\nCPU seconds per job (median), and the shortest time that much work can take "
        f"on {cpus} CPUs:\n"
    )
    print(
        "| clip | (a) worker | (a) Temporal server | (a) API | (a) total | (a) bound "
        "| ASR beside vision, one process | its bound |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        worker, server, api_cpu = r["a_cpu"][2], r["a_cpu"][0], r["a_cpu"][1]
        total = worker + server + api_cpu
        print(
            f"| {r['size']} | {worker:.1f} | {server:.1f} | {api_cpu:.1f} | {total:.1f}"
            f" | {total / cpus:.1f} | {r['together_cpu']:.1f} | {r['together_cpu'] / cpus:.1f} |"
        )
    print(
        "\nHow low a/b can go with this much work and no orchestration cost: (a)'s CPU "
        f"seconds spread over all {cpus} CPUs with none ever idle (the bound over (b)), "
        "and the same started only when the scene pass starts, after the part before "
        "the stages (that part's own CPU is in the bound too, so the truth lies "
        "between the two):\n"
    )
    print("| clip | before the stages | (a) bound | (b) | bound / b | (before + bound) / b | a/b |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        bound = sum(r["a_cpu"]) / cpus
        lead_in = r["stages"].get(LEAD_IN, 0.0)
        print(
            f"| {r['size']} | {lead_in:.2f} | {bound:.2f} | {r['b']:.2f} | {bound / r['b']:.3f}"
            f" | {(lead_in + bound) / r['b']:.3f} | {r['a'] / r['b']:.3f} |"
        )

    for line in sharing_table(rows, cpus):
        print(line)

    print(
        f"\nHow low a/c can go where every frame is decoded: (d) the clip's video decoded "
        f"alone, every frame, on {cpus} frame threads (median of the runs; each run's "
        "own d/c beside it), against (c), which decodes every frame too:\n"
    )
    print("| clip | frames | (d) decoding alone | (c) | d/c | runs' own d/c | a/c |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if r["c_error"] or not r["c_read"]:
            continue
        own = ", ".join(f"{d / c:.3f}" for d, (_, _, c) in zip(r["d_runs"], r["runs"], strict=True))
        print(
            f"| {r['size']} | {r['d_frames']} | {r['d']:.2f} | {r['c']:.2f}"
            f" | {r['d'] / r['c']:.3f} | {own}"
            f" | {r['a'] / r['c']:.3f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
