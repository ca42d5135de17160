"""Before/after of each speed lever, measured in one process on the bench's 720p clip.

    .venv/bin/python bench/levers.py [--runs 3]

Each row times the same work with a lever off and on (median of ``--runs``), next to
what it does to accuracy where it could change it. Models are loaded before timing, as
in a running worker. The clip is the one ``bench/pipeline.py`` renders (60 s, 15
shots, every other captioned, speech throughout), written to a temp dir.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from temporalio.testing import ActivityEnvironment
from yt_dlp import YoutubeDL

from activities.download import DownloadActivities, FetchPolicy, warm_downloader
from activities.frames import FrameActivities
from activities.ocr import OcrActivities, OcrEngines, OcrSettings, RecognizedLine
from activities.resolve import ResolveActivities
from activities.scenes import SceneActivities
from activities.transcribe import TranscribeActivities
from activities.workspace import Workspaces
from bench.pipeline import SIZES, wer
from models.pipeline import (
    DetectScenesInput,
    DownloadInput,
    ExtractKeyframesInput,
    KeyframeFile,
    OcrInput,
    ResolveInput,
    TranscribeInput,
    WorkspaceRef,
)
from reelscope.cli import serve_folder
from reelscope.sample import SampleSpec, make_sample
from reelscope.settings import Settings, usable_cpus
from worker import Models

ROOT = Path(__file__).resolve().parents[1]
ROWS: list[str] = []

#: Run in a new interpreter: the first link a worker process resolves, with or without
#: the warm-up the worker does as it starts.
FIRST_LINK = """
import sys, time
from temporalio.testing import ActivityEnvironment
from activities.download import FetchPolicy, warm_downloader
from activities.resolve import ResolveActivities
from models.pipeline import ResolveInput
if sys.argv[2] == "warm":
    warm_downloader()
resolve = ResolveActivities(FetchPolicy(allow_private=True)).resolve_link
started = time.perf_counter()
ActivityEnvironment().run(resolve, ResolveInput(url=sys.argv[1], max_items=1))
print(time.perf_counter() - started)
"""

#: Run in a new interpreter: what the worker's workflow sandbox spends setting up one
#: job's two workflow runs (the job and its item), each of which imports workflows/.
SANDBOX_RUNS = """
import asyncio, time
import temporalio.workflow
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from workflows import MediaItemWorkflow, MediaJobWorkflow
runner = SandboxedWorkflowRunner()
definitions = [
    temporalio.workflow._Definition.must_from_class(c)
    for c in (MediaJobWorkflow, MediaItemWorkflow)
]
async def one_job():
    for definition in definitions:
        runner.prepare_workflow(definition)
asyncio.run(one_job())
started = time.perf_counter()
for _ in range(20):
    asyncio.run(one_job())
print((time.perf_counter() - started) / 20)
"""


#: Run in a new interpreter, set up as a worker (freed memory kept, or only the arena
#: cap): Whisper on the clip in a thread, as a worker runs it, twice; the CPU seconds
#: and page faults of the second.
WHISPER_MEMORY = """
import resource, sys, threading
from worker import malloc_settings, tune_malloc
tune_malloc(malloc_settings(sys.argv[2] == "keep"))
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio
from activities.transcribe import bundled_whisper_path
from reelscope.settings import Settings
settings = Settings()
model = WhisperModel(str(bundled_whisper_path()), device="cpu", compute_type="int8",
                     cpu_threads=settings.whisper_threads)
audio = decode_audio(sys.argv[1], sampling_rate=16000)
def transcribe():
    pieces, _ = model.transcribe(audio, beam_size=settings.whisper_beam_size,
        word_timestamps=True, vad_filter=True, condition_on_previous_text=False)
    list(pieces)
for _ in range(2):
    before = resource.getrusage(resource.RUSAGE_SELF)
    thread = threading.Thread(target=transcribe)
    thread.start()
    thread.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
print(after.ru_minflt - before.ru_minflt, after.ru_stime - before.ru_stime, cpu)
"""


def last_numbers(script: str, *args: str, env: dict[str, str] | None = None) -> list[float]:
    """Runs ``script`` in a new interpreter; the numbers its last line prints."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    ).stdout
    return [float(n) for n in out.strip().splitlines()[-1].split()]


def last_number(script: str, *args: str, env: dict[str, str] | None = None) -> float:
    """Runs ``script`` in a new interpreter; the one number its last line prints."""
    (number,) = last_numbers(script, *args, env=env)
    return number


def timed(runs: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """Median seconds of ``runs`` calls, and the last call's result."""
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def cpu_timed(runs: int, work: Callable[[], Any]) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (this process, all threads) of
    ``runs`` calls."""
    walls, cpus = [], []
    for _ in range(runs):
        cpu, started = time.process_time(), time.perf_counter()
        work()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def row(lever: str, off: str, on: str, t_off: float, t_on: float, note: str = "") -> None:
    line = f"| {lever} | {off}: {t_off:.2f} s | {on}: {t_on:.2f} s | {t_off / t_on:.2f}× | {note} |"
    ROWS.append(line)
    print(line, flush=True)


def small_text_frame(width: int, height: int, fraction: float) -> tuple[np.ndarray, list[str]]:
    """A frame with four words in letters ``fraction`` of the frame's height."""
    words = ["NORTH HARBOR", "QUIET MORNING", "SEVEN BRIDGES", "GOLDEN FIELD"]
    image = Image.new("RGB", (width, height), (60, 90, 120))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(8, int(height * fraction)))
    for i, word in enumerate(words):
        position = (int(width * (0.1 + 0.2 * i)), int(height * (0.2 + 0.18 * i)))
        draw.text(position, word, font=font, fill=(240, 240, 240))
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), words


#: Slides ``slide_frame`` renders for the recognition-batch row, and text lines on each.
SLIDES = 4
SLIDE_LINES = 10
SLIDE_WORDS = (
    *("revenue", "grew", "across", "every", "region", "while", "costs", "fell", "and"),
    *("retention", "improved", "after", "the", "new", "onboarding", "flow", "shipped"),
    *("in", "March", "so", "the", "team", "cut", "deploy", "times", "by", "half"),
)


def slide_frame(seed: int) -> tuple[np.ndarray, list[str]]:
    """A 1080p slide of ``SLIDE_LINES`` lines of 2 to 9 words, dark on light, as a
    screen recording of a talk shows; and its lines."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (1920, 1080), (248, 248, 244))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=44)
    lines = [
        " ".join(rng.choice(SLIDE_WORDS, int(rng.integers(2, 10)))) for _ in range(SLIDE_LINES)
    ]
    for i, line in enumerate(lines):
        draw.text((100, 60 + i * 100), line, font=font, fill=(25, 25, 25))
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), lines


#: Menus ``menu_frame`` renders for the same rows, and words on each.
MENUS = 3
MENU_WORDS = 50
MENU_ITEMS = ("Tea", "Coffee", "Bread", "Milk", "Jam", "Rice", "Soup", "Cake", "Pie", "Fish")


def menu_frame(seed: int) -> tuple[np.ndarray, list[str]]:
    """A 1080p board of ``MENU_WORDS`` short items with prices, in ten rows; and its
    items. Each is narrower than the recogniser's least width."""
    rng = np.random.default_rng(seed)
    image = np.full((1080, 1920, 3), (240, 240, 235), np.uint8)
    items = []
    for n in range(MENU_WORDS):
        item = f"{MENU_ITEMS[int(rng.integers(len(MENU_ITEMS)))]} {int(rng.integers(1, 99))}"
        origin = (60 + (n % 5) * 370, 90 + (n // 5) * 100)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(image, item, origin, font, 1.3, (20, 20, 20), 3, cv2.LINE_AA)
        items.append(item)
    return image, items


def read_right(read: list[list[RecognizedLine]], truth: list[list[str]]) -> int:
    """How many of each frame's ``truth`` lines it read exactly."""
    return sum(
        line in {ln.text for ln in frame}
        for frame, lines in zip(read, truth, strict=True)
        for line in lines
    )


def compare_lines(
    before: list[list[RecognizedLine]], after: list[list[RecognizedLine]]
) -> tuple[bool, float]:
    """Whether each frame read the same lines, and the most a box corner moved (px)."""
    same_text = [[ln.text for ln in frame] for frame in before] == [
        [ln.text for ln in frame] for frame in after
    ]
    moved = max(
        (
            float(np.abs(np.array(a.box) - np.array(b.box)).max())
            for frame_before, frame_after in zip(before, after, strict=True)
            for a, b in zip(frame_before, frame_after, strict=False)
        ),
        default=0.0,
    )
    return same_text, moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = args.runs

    work = Path(tempfile.mkdtemp(prefix="reelscope-levers-"))
    spec = SampleSpec.long(*SIZES["720p"])
    print("rendering the 720p clip ...", flush=True)
    clip = make_sample(work / "clip.mp4", spec)
    settings = Settings(data_dir=work / "data")
    print("loading models ...", flush=True)
    # Once untimed: the first load on a machine also prepares the OCR model folders
    # (the 8-bit detector's build among them), which a worker does once, not per job.
    Models(settings).preload()
    models = Models(settings)
    load_s, _ = timed(1, models.preload)
    workspaces = Workspaces(work / "ws")
    ref = WorkspaceRef(job_id="job-levers", item_index=0)
    shutil.copy(clip, workspaces.create(ref) / "media.mp4")
    env = ActivityEnvironment()

    def scene_pass(decode_threads: int) -> Callable[..., Any]:
        return SceneActivities(
            workspaces,
            settings.scene_threshold,
            settings.min_scene_len_frames,
            settings.scene_detector,
            decode_threads,
            skip_nonreference=settings.scene_skip_nonreference_frames,
            skip_b_deblocking=settings.scene_skip_b_frame_deblocking,
            text_changes=settings.scene_text_changes,
        ).detect_scenes

    scenes_activity = scene_pass(settings.scene_decode_threads)
    transcribe = TranscribeActivities(
        workspaces, models.whisper, settings.whisper_beam_size
    ).transcribe_audio

    print(f"\n720p, 60 s, median of {runs} runs\n")
    print("| lever | off | on | speed-up | accuracy |")
    print("| --- | --- | --- | --- | --- |")

    # Models loaded once per worker process, instead of per request.
    t_asr, _ = timed(
        runs, lambda: env.run(transcribe, TranscribeInput(workspace=ref, media_file="media.mp4"))
    )
    row(
        "models loaded once per process",
        "load + transcribe",
        "transcribe",
        load_s + t_asr,
        t_asr,
        f"loading OCR and Whisper takes {load_s:.1f} s",
    )

    # Scene detection with auto-downscale (PySceneDetect's, to 256 px wide).
    from scenedetect import AdaptiveDetector, SceneManager, open_video

    def scenes_at(auto: bool) -> int:
        video = open_video(str(clip), backend="opencv")
        manager = SceneManager()
        manager.auto_downscale = auto
        if not auto:
            manager.downscale = 1
        manager.add_detector(AdaptiveDetector(min_scene_len=settings.min_scene_len_frames))
        manager.detect_scenes(video)
        return len(manager.get_scene_list())

    t_full, n_full = timed(runs, lambda: scenes_at(False))
    t_small, n_small = timed(runs, lambda: scenes_at(True))
    row(
        "scene detection auto-downscale",
        "full size",
        "256 px wide",
        t_full,
        t_small,
        f"{n_full} and {n_small} scenes of {len(spec.shots)}",
    )

    # One decode for scenes and key frames.
    def two_passes() -> list[KeyframeFile]:
        scenes = env.run(scenes_activity, DetectScenesInput(workspace=ref, media_file="media.mp4"))
        return env.run(
            FrameActivities(workspaces).extract_keyframes,
            ExtractKeyframesInput(
                workspace=ref, media_file="media.mp4", fps=scenes.fps, scenes=scenes.scenes
            ),
        ).keyframes

    def one_pass() -> list[KeyframeFile]:
        result = env.run(
            scenes_activity,
            DetectScenesInput(workspace=ref, media_file="media.mp4", keyframes=True),
        )
        return result.keyframes or []

    t_two, kf_two = timed(runs, two_passes)
    t_one, keyframes = timed(runs, one_pass)
    row(
        "scenes and key frames in one decode",
        "two decodes",
        "one",
        t_two,
        t_one,
        f"{len(kf_two)} and {len(keyframes)} key frames",
    )

    # The scene pass's content score and key-frame sharpness in fewer passes: off puts
    # back PySceneDetect's own AdaptiveDetector and cv2.meanStdDev, for this pass only.
    import activities.scenes as scene_module

    def library_sharpness(grey: np.ndarray) -> float:
        _, std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_16S))
        return float(std[0, 0]) ** 2

    def scene_pass_picks(library: bool) -> tuple[list[int], list[int]]:
        with contextlib.ExitStack() as stack:
            if library:
                stack.enter_context(
                    mock.patch.object(
                        scene_module,
                        "make_detector",
                        lambda kind, threshold, length: AdaptiveDetector(min_scene_len=length),
                    )
                )
                stack.enter_context(
                    mock.patch.object(scene_module, "grey_sharpness", library_sharpness)
                )
            result = env.run(
                scenes_activity,
                DetectScenesInput(workspace=ref, media_file="media.mp4", keyframes=True),
            )
        return [s.start_frame for s in result.scenes], [
            k.keyframe.frame for k in result.keyframes or []
        ]

    same = scene_pass_picks(True) == scene_pass_picks(False)
    t_lib, cpu_lib = cpu_timed(runs, lambda: scene_pass_picks(True))
    t_ours, cpu_ours = cpu_timed(runs, lambda: scene_pass_picks(False))
    row(
        "scene score and key-frame sharpness in fewer passes",
        "PySceneDetect's score, meanStdDev",
        "one absdiff, exact sums",
        t_lib,
        t_ours,
        f"CPU {cpu_lib:.2f} → {cpu_ours:.2f} s; same cuts and key frames: {same}",
    )

    # Transcription beside the vision path (2 CPUs: they share them).
    ocr = OcrActivities(workspaces, models.ocr).ocr_keyframes

    def vision(
        ocr_keyframes: Callable[..., Any] = ocr, scenes: Callable[..., Any] = scenes_activity
    ) -> None:
        found = env.run(
            scenes, DetectScenesInput(workspace=ref, media_file="media.mp4", keyframes=True)
        )
        env.run(ocr_keyframes, OcrInput(workspace=ref, keyframes=found.keyframes or []))

    def speech(asr: Callable[..., Any] = transcribe) -> None:
        env.run(asr, TranscribeInput(workspace=ref, media_file="media.mp4"))

    def beside(
        ocr_keyframes: Callable[..., Any] = ocr,
        scenes: Callable[..., Any] = scenes_activity,
        asr: Callable[..., Any] = transcribe,
    ) -> None:
        thread = threading.Thread(target=speech, args=(asr,))
        thread.start()
        vision(ocr_keyframes, scenes)
        thread.join()

    def serial() -> None:
        speech()
        vision()

    t_serial, _ = timed(runs, serial)
    t_beside, _ = timed(runs, beside)
    row("transcription beside the vision path", "one after the other", "beside", t_serial, t_beside)

    # Thread counts for a job's two paths, which share the CPUs: FFmpeg's own count of
    # decoding threads and Whisper on every CPU (Reelscope's defaults until session 5),
    # against one decoding thread (what the defaults give this clip beside
    # transcription) and Whisper on half the CPUs.
    greedy_whisper = Models(settings.model_copy(update={"whisper_threads": usable_cpus()})).whisper
    greedy_whisper.get(None)
    greedy_asr = TranscribeActivities(
        workspaces, greedy_whisper, settings.whisper_beam_size
    ).transcribe_audio
    ffmpeg_threads = scene_pass(0)
    splits = {
        "FFmpeg's decoding threads, Whisper on all CPUs": (ffmpeg_threads, greedy_asr),
        "one decoding thread, Whisper on all CPUs": (scene_pass(1), greedy_asr),
        "FFmpeg's decoding threads, Whisper on half": (ffmpeg_threads, transcribe),
    }
    base_name = next(iter(splits))
    t_split, cpu_split = {}, {}
    for name, (scenes, asr) in splits.items():
        t_split[name], cpu_split[name] = cpu_timed(runs, partial(beside, ocr, scenes, asr))
    t_ours, cpu_ours = cpu_timed(runs, beside)
    labels = {
        "one decoding thread, Whisper on all CPUs": "scene pass on one decoding thread",
        "FFmpeg's decoding threads, Whisper on half": "Whisper on half the CPUs",
    }
    for name, lever in labels.items():
        row(
            lever,
            base_name,
            name,
            t_split[base_name],
            t_split[name],
            f"CPU {cpu_split[base_name]:.1f} → {cpu_split[name]:.1f} s; scene pass and OCR "
            "beside transcription",
        )
    row(
        "both (the defaults, for this clip)",
        base_name,
        "one decoding thread, Whisper on half",
        t_split[base_name],
        t_ours,
        f"CPU {cpu_split[base_name]:.1f} → {cpu_ours:.1f} s",
    )

    # OCR detection size, and what it costs in small text.
    images = [cv2.imread(str(workspaces.file(ref, kf.image_file))) for kf in keyframes]
    small_frames = [small_text_frame(1920, 1080, f) for f in (0.012, 0.015, 0.02)]

    def ocr_with(
        side: int,
        threads: int,
        skip_flat: bool = False,
        det_int8: bool = True,
        rec_batch_by_width: bool = True,
        frames: list[np.ndarray] | None = None,
    ) -> tuple[float, str, list[list[RecognizedLine]]]:
        engine = OcrEngines(
            OcrSettings(
                det_limit_side_len=side,
                threads=threads,
                skip_flat_regions=skip_flat,
                det_int8=det_int8,
                rec_batch_by_width=rec_batch_by_width,
                cache_dir=work / "models",
            ),
            "paddleocr",
        ).get(None)
        targets = images if frames is None else frames
        engine.read(targets[0])
        t, lines = timed(runs, lambda: [engine.read(image) for image in targets])
        found = []
        for (frame, words), fraction in zip(small_frames, (1.2, 1.5, 2.0), strict=True):
            read = {line.text.strip().upper() for line in engine.read(frame)}
            found.append(f"{sum(w in read for w in words)}/4 at {fraction}%")
        return t, ", ".join(found), lines

    # The cap alone: every row here looks at the whole frame.
    results = {side: ocr_with(side, settings.ocr_threads) for side in (1920, 960, 736, 640)}
    for side in (960, 736, 640):
        row(
            f"OCR detection capped at {side} px",
            "full size (1920 px cap)",
            f"{side} px",
            results[1920][0],
            results[side][0],
            f"small words read, full: {results[1920][1]}; capped: {results[side][1]}",
        )
    t_one_thread, _, _ = ocr_with(960, 1)
    row(
        "OCR threads = CPUs",
        "1 thread",
        f"{settings.ocr_threads} threads",
        t_one_thread,
        results[960][0],
        f"{len(images)} key frames, one at a time",
    )
    # Detection given only the regions of a frame that are not flat, against the whole
    # frame, both at the worker's cap.
    cap = settings.ocr_det_limit_side_len
    t_whole, small_whole, lines_whole = results.get(cap) or ocr_with(cap, settings.ocr_threads)
    t_skip, small_skip, lines_skip = ocr_with(cap, settings.ocr_threads, skip_flat=True)
    same_text, moved = compare_lines(lines_whole, lines_skip)
    row(
        "OCR detection skips flat regions",
        "whole frame",
        "busy regions only",
        t_whole,
        t_skip,
        f"{len(images)} key frames, same lines: {same_text}, boxes moved at most "
        f"{moved:.0f} px; small words read, whole: {small_whole}; regions: {small_skip}",
    )
    # The 8-bit detector against the float one, on whole frames (as a busy frame is
    # detected), at the worker's cap.
    t_float, small_float, lines_float = ocr_with(cap, settings.ocr_threads, det_int8=False)
    same_text, moved = compare_lines(lines_float, lines_whole)
    row(
        "OCR detection on an 8-bit copy of the model",
        "32-bit floats",
        "8-bit",
        t_float,
        t_whole,
        f"{len(images)} whole key frames, same lines: {same_text}, boxes moved at most "
        f"{moved:.0f} px; small words read, float: {small_float}; 8-bit: {small_whole}",
    )

    # Text lines batched only with lines of about their width, against PaddleOCR's
    # batches of 6 however wide (each padded to its widest line): on slides of lines of
    # every length, and on menus of short words, all at the recogniser's least width.
    threads = settings.ocr_threads
    for label, rendered in (
        (f"{SLIDES} slides of {SLIDE_LINES} lines", [slide_frame(n) for n in range(SLIDES)]),
        (f"{MENUS} menus of {MENU_WORDS} short words", [menu_frame(n) for n in range(MENUS)]),
    ):
        pictures = [image for image, _ in rendered]
        truth = [lines for _, lines in rendered]
        t_fixed, _, fixed = ocr_with(cap, threads, rec_batch_by_width=False, frames=pictures)
        t_width, _, by_width = ocr_with(cap, threads, frames=pictures)
        same_text, _ = compare_lines(fixed, by_width)
        row(
            "OCR lines batched by width",
            "batches of 6",
            "alike widths, at most 6",
            t_fixed,
            t_width,
            f"{label}, same lines: {same_text}; lines read right, batches of 6: "
            f"{read_right(fixed, truth)}, by width: {read_right(by_width, truth)} of "
            f"{sum(len(lines) for lines in truth)}",
        )

    # Key frames read at once, each on an engine of its own, against one engine with
    # every thread reading them one at a time. Through the OCR stage, as a job runs it.
    def ocr_stage(frames_at_once: int) -> Callable[..., Any]:
        engines = Models(settings.model_copy(update={"ocr_frames_at_once": frames_at_once})).ocr
        engines.preload()
        return OcrActivities(workspaces, engines).ocr_keyframes

    one_at_a_time, at_once = ocr_stage(1), ocr_stage(settings.ocr_frames_at_once)
    read_all = OcrInput(workspace=ref, keyframes=keyframes)
    env.run(one_at_a_time, read_all)
    env.run(at_once, read_all)
    t_one, cpu_one = cpu_timed(runs, lambda: env.run(one_at_a_time, read_all))
    t_at_once, cpu_at_once = cpu_timed(runs, lambda: env.run(at_once, read_all))
    same = env.run(one_at_a_time, read_all) == env.run(at_once, read_all)
    per_frame = max(1, settings.ocr_threads // settings.ocr_frames_at_once)
    row(
        "OCR key frames read at once",
        f"one at a time, on {settings.ocr_threads} threads",
        f"{settings.ocr_frames_at_once} at once, {per_frame} thread(s) each",
        t_one,
        t_at_once,
        f"CPU {cpu_one:.1f} → {cpu_at_once:.1f} s; same lines and boxes: {same}",
    )

    # ONNX Runtime's idle pool threads sleep rather than spin. What it changes shows
    # when the CPUs are shared: the vision path beside transcription, as a job runs.
    with mock.patch("activities.ocr.onnx_threads_that_sleep", contextlib.nullcontext):
        spinning = Models(settings).ocr
        spinning.preload()
    spinning_ocr = OcrActivities(workspaces, spinning).ocr_keyframes

    t_spin, _ = timed(runs, lambda: beside(spinning_ocr))
    t_sleep, _ = timed(runs, beside)
    row(
        "OCR pool threads sleep when idle",
        "spinning (ONNX Runtime's default)",
        "sleeping",
        t_spin,
        t_sleep,
        "scene pass and OCR beside transcription; same sessions otherwise",
    )

    # Key frames that show the same picture are read once.
    looped = work / "looped.mp4"
    loop = ["-v", "error", "-y", "-stream_loop", "2", "-i", str(clip), "-c", "copy"]
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), *loop, str(looped)], check=True)
    shutil.copy(looped, workspaces.file(ref, "looped.mp4"))
    looped_kf = (
        env.run(
            scenes_activity,
            DetectScenesInput(workspace=ref, media_file="looped.mp4", keyframes=True),
        ).keyframes
        or []
    )
    engine = models.ocr.get(None)
    every = [cv2.imread(str(workspaces.file(ref, kf.image_file))) for kf in looped_kf]
    with ThreadPoolExecutor(models.ocr.frames_at_once) as readers:
        t_every, _ = timed(runs, lambda: list(readers.map(engine.read, every)))
    t_once, _ = timed(runs, lambda: env.run(ocr, OcrInput(workspace=ref, keyframes=looped_kf)))
    row(
        "pictures shown again are read once",
        f"all {len(every)} key frames",
        "distinct ones",
        t_every,
        t_once,
        "the clip played 3 times in a row; same text",
    )

    # ASR: VAD and beam size.
    _, model = models.whisper.get(None)

    def whisper(vad: bool, beam: int) -> str:
        pieces, _ = model.transcribe(
            str(clip),
            beam_size=beam,
            vad_filter=vad,
            word_timestamps=True,
            condition_on_previous_text=False,
        )
        return " ".join(p.text for p in pieces)

    base_t, base_text = timed(runs, lambda: whisper(False, 5))
    for vad, beam in ((True, 5), (False, 1), (True, 1)):
        t, text = timed(runs, partial(whisper, vad, beam))
        row(
            f"ASR {'VAD' if vad else 'no VAD'}, beam {beam}",
            "no VAD, beam 5 (faster-whisper's defaults)",
            "this",
            base_t,
            t,
            f"WER {wer(spec, base_text):.3f} → {wer(spec, text):.3f}",
        )
    # glibc's malloc as a worker sets it up: a process each, so each starts from glibc's
    # own state.
    kept, returned = [], []
    for _ in range(runs):
        returned.append(last_numbers(WHISPER_MEMORY, str(clip), "return"))
        kept.append(last_numbers(WHISPER_MEMORY, str(clip), "keep"))
    (faults_off, sys_off, cpu_off), (faults_on, sys_on, cpu_on) = (
        [statistics.median(column) for column in zip(*results, strict=True)]
        for results in (returned, kept)
    )
    row(
        "freed memory kept while the stages run",
        "glibc's way, large blocks unmapped when freed (CPU-s)",
        "kept for reuse (CPU-s)",
        cpu_off,
        cpu_on,
        f"Whisper on the clip in a thread, a process each; page faults {faults_off:.0f} → "
        f"{faults_on:.0f}, kernel time {sys_off:.2f} → {sys_on:.2f} s",
    )
    # Before a video's stages start: resolving the link, downloading it, and setting up
    # the job's two workflow runs.
    server, media_url = serve_folder(work)
    link = f"{media_url}/{clip.name}"
    policy = FetchPolicy(allow_private=True)
    resolve = ResolveActivities(policy).resolve_link
    download = DownloadActivities(workspaces, work / "data", policy).download_media
    fetched = iter(range(10**6))

    def resolve_and_download() -> None:
        env.run(resolve, ResolveInput(url=link, max_items=1))
        fetch_ref = WorkspaceRef(job_id=f"job-fetch-{next(fetched)}", item_index=0)
        env.run(download, DownloadInput(workspace=fetch_ref, url=link))

    warm_downloader()
    resolve_and_download()
    fetches = max(10, 5 * runs)
    with (
        mock.patch("activities.download.new_downloader", YoutubeDL),
        mock.patch("activities.resolve.new_downloader", YoutubeDL),
    ):
        t_off, cpu_off = cpu_timed(fetches, resolve_and_download)
    t_on, cpu_on = cpu_timed(fetches, resolve_and_download)
    row(
        "yt-dlp's extractor list worked out once per process",
        "for each YoutubeDL (yt-dlp's way)",
        "once",
        t_off,
        t_on,
        f"resolve + download of the clip over loopback, median of {fetches}; "
        f"CPU {cpu_off:.3f} → {cpu_on:.3f} s",
    )
    from yt_dlp.networking import common as yt_networking

    per_thread = yt_networking.make_ssl_context
    with (
        mock.patch("activities.download.reuse_tls_contexts", lambda: None),
        mock.patch.object(
            yt_networking, "make_ssl_context", getattr(per_thread, "__wrapped__", per_thread)
        ),
    ):
        t_off, cpu_off = cpu_timed(fetches, resolve_and_download)
    t_on, cpu_on = cpu_timed(fetches, resolve_and_download)
    row(
        "yt-dlp's TLS context built once per thread",
        "for each YoutubeDL (yt-dlp's way)",
        "once per thread",
        t_off,
        t_on,
        f"resolve + download of the clip over loopback, median of {fetches}; "
        f"CPU {cpu_off:.3f} → {cpu_on:.3f} s",
    )
    cold = statistics.median(last_number(FIRST_LINK, link, "cold") for _ in range(runs))
    warm = statistics.median(last_number(FIRST_LINK, link, "warm") for _ in range(runs))
    row(
        "yt-dlp warmed up as the worker starts",
        "first link of a new process",
        "after the warm-up",
        cold,
        warm,
        "resolve of the clip; the warm-up runs before the worker takes work",
    )
    server.shutdown()
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "workflows", "models"], cwd=ROOT, check=True
    )
    with tempfile.TemporaryDirectory() as no_bytecode:
        from_source = statistics.median(
            last_number(
                SANDBOX_RUNS,
                env={
                    **os.environ,
                    "PYTHONPYCACHEPREFIX": no_bytecode,
                    "PYTHONDONTWRITEBYTECODE": "1",
                },
            )
            for _ in range(runs)
        )
    from_bytecode = statistics.median(last_number(SANDBOX_RUNS) for _ in range(runs))
    row(
        "workflow modules compiled at install",
        "compiled in each sandbox",
        "bytecode",
        from_source,
        from_bytecode,
        f"the workflow sandbox's set-up of one job's two workflow runs: "
        f"{from_source * 1000:.1f} → {from_bytecode * 1000:.1f} ms",
    )
    shutil.rmtree(work, ignore_errors=True)
    print("\n| lever | off | on | speed-up | accuracy |\n| --- | --- | --- | --- | --- |")
    print("\n".join(ROWS))


if __name__ == "__main__":
    main()
