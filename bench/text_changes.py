"""What watching for changed text costs the scene pass, and what it adds to OCR.

    .venv/bin/python bench/text_changes.py [--runs 3] [--media clip.mp4 ...]

First, ``TextChangeWatch.look`` alone on frames of 720p, 1080p and 2160p (soft noise,
no text): milliseconds a look, and a minute of video at two looks a second. Then, for
each ``--media`` file (default: the pipeline bench's 720p clip, rendered to a temp dir),
the scene pass with ``text_changes`` off and on, alternating, ``--runs`` times each:
median seconds and CPU-seconds of the pass, the key frames written, and the OCR reads
they cost (median seconds of ``ocr_keyframes`` over them). Models load before timing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
from temporalio.testing import ActivityEnvironment

from activities.ocr import OcrActivities
from activities.scenes import SceneActivities
from activities.text_changes import LOOK_SECONDS, TextChangeWatch
from activities.workspace import Workspaces
from models.pipeline import DetectScenesInput, OcrInput, WorkspaceRef
from reelscope.sample import SampleSpec, make_sample
from reelscope.settings import Settings
from worker import Models


def look_cost() -> None:
    rng = np.random.default_rng(1)
    print("| frame | ms a look | ms a minute of video |\n| --- | --- | --- |")
    for height, width in ((720, 1280), (1080, 1920), (2160, 3840)):
        frames = [
            cv2.GaussianBlur(rng.integers(0, 255, (height, width), dtype=np.uint8), (7, 7), 3)
            for _ in range(4)
        ]
        watch: TextChangeWatch[None] = TextChangeWatch(30.0)
        looks = 200
        started = time.perf_counter()
        for n in range(looks):
            watch.look(n * watch.every, frames[n % 4], None)
        each = (time.perf_counter() - started) / looks
        per_minute = each * 60 / LOOK_SECONDS
        print(f"| {width}x{height} | {each * 1000:.2f} | {per_minute * 1000:.0f} |")


def scene_pass(media: Path, models: Models, settings: Settings, runs: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-text-"))
    try:
        workspaces = Workspaces(work)
        ref = WorkspaceRef(job_id="job-bench", item_index=0)
        name = "media" + media.suffix
        shutil.copy(media, workspaces.create(ref) / name)
        env = ActivityEnvironment()
        ocr = OcrActivities(workspaces, models.ocr).ocr_keyframes
        scans = {
            on: SceneActivities(
                workspaces,
                settings.scene_threshold,
                settings.min_scene_len_frames,
                settings.scene_detector,
                settings.scene_decode_threads,
                skip_nonreference=settings.scene_skip_nonreference_frames,
                skip_b_deblocking=settings.scene_skip_b_frame_deblocking,
                text_changes=on,
            ).detect_scenes
            for on in (False, True)
        }
        walls: dict[bool, list[float]] = {False: [], True: []}
        cpus: dict[bool, list[float]] = {False: [], True: []}
        reads: dict[bool, list[float]] = {False: [], True: []}
        keyframes: dict[bool, int] = {}
        for run in range(runs):
            # Off and on alternate, first one then the other, so a slow spell of a
            # shared machine falls on both.
            for on in (False, True) if run % 2 == 0 else (True, False):
                wall, cpu = time.perf_counter(), time.process_time()
                result = env.run(
                    scans[on],
                    DetectScenesInput(
                        workspace=ref, media_file=name, keyframes=True, transcription_beside=False
                    ),
                )
                walls[on].append(time.perf_counter() - wall)
                cpus[on].append(time.process_time() - cpu)
                keyframes[on] = len(result.keyframes or [])
                started = time.perf_counter()
                env.run(ocr, OcrInput(workspace=ref, keyframes=result.keyframes or []))
                reads[on].append(time.perf_counter() - started)
        for on in (False, True):
            print(
                f"| {media.name} | {'on' if on else 'off'} | {statistics.median(walls[on]):.2f} | "
                f"{statistics.median(cpus[on]):.2f} | {keyframes[on]} | "
                f"{statistics.median(reads[on]):.2f} |"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--media", type=Path, action="append", default=[])
    args = parser.parse_args()
    look_cost()
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="bench-text-data-")))
    models = Models(settings)
    models.preload()
    media = args.media
    if not media:
        folder = Path(tempfile.mkdtemp(prefix="bench-text-clip-"))
        media = [make_sample(folder / "bench-720p.mp4", SampleSpec.long(1280, 720, seconds=60))]
    print(
        "\n| media | watch | scene pass s | scene pass CPU-s | key frames | OCR s |\n"
        "| --- | --- | --- | --- | --- | --- |"
    )
    for path in media:
        scene_pass(path, models, settings, args.runs)


if __name__ == "__main__":
    main()
