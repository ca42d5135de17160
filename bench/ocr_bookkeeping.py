"""What the OCR stage's own bookkeeping costs as a video's key frames grow.

    .venv/bin/python bench/ocr_bookkeeping.py [--frames 250,1000,3000] [--real 200]

A long video with burned-in subtitles gets a key frame for each caption, so its OCR
stage may read thousands. Each read ends in a heartbeat, which the SDK turns into a
payload (on the worker's event loop) before it throttles what reaches the server. This
bench times ``ocr_keyframes`` on ``--frames`` generated key frames (1280x720, each
with a caption of its own, so none repeats another's picture), in
``ActivityEnvironment``, whose heartbeat hook here encodes each heartbeat with the
worker's data converter as the SDK does:

- with an engine that returns one line at once, what is left is the stage's own cost
  per frame: if that grows with the frame count, the stage is quadratic;
- with the real default engine, on the first ``--real`` frames, what reading costs,
  for scale.

It prints milliseconds a frame, the seconds spent encoding heartbeats, and the largest
heartbeat's size.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment

from activities.ocr import EnginePool, OcrActivities, OcrEngine, OcrEngines, RecognizedLine
from activities.workspace import Workspaces
from models.jobs import KeyFrame
from models.pipeline import KeyframeFile, OcrInput, WorkspaceRef
from reelscope.settings import Settings
from worker import Models


class InstantReader(OcrEngine):
    """Returns one caption-sized line for any picture, without reading it."""

    name = "instant"

    def read(self, image: np.ndarray) -> list[RecognizedLine]:
        box = [[40.0, 620.0], [900.0, 620.0], [900.0, 670.0], [40.0, 670.0]]
        return [
            RecognizedLine(
                text="a caption of about forty characters here", confidence=0.97, box=box
            )
        ]


class InstantEngines(OcrEngines):
    def __init__(self, at_once: int) -> None:
        self.pool = EnginePool("instant", InstantReader, at_once)
        self.default = "instant"
        self.frames_at_once = at_once

    def get(self, name: str | None) -> OcrEngine:
        return self.pool


class EncodingEnvironment(ActivityEnvironment):
    """Encodes each heartbeat as the worker's SDK does, and times it."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.encode_s = 0.0
        self.largest = 0
        self.beats = 0
        self.on_heartbeat = self._encode

    def _encode(self, *details: Any) -> None:
        started = time.perf_counter()
        payloads = self.loop.run_until_complete(pydantic_data_converter.encode(list(details)))
        self.encode_s += time.perf_counter() - started
        self.largest = max(self.largest, sum(len(p.data) for p in payloads))
        self.beats += 1


def write_keyframes(workspaces: Workspaces, ref: WorkspaceRef, count: int) -> list[KeyframeFile]:
    folder = workspaces.create(ref) / "keyframes"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    background = cv2.GaussianBlur(
        rng.integers(40, 120, (720, 1280, 3), dtype=np.uint8), (31, 31), 9
    )
    keyframes = []
    for n in range(count):
        name = f"keyframes/at-{n:07d}.jpg"
        image = background.copy()
        caption = f"Caption {n}: the words change every time"
        cv2.putText(image, caption, (60, 650), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (255, 255, 255), 3)
        cv2.imwrite(str(workspaces.file(ref, name)), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        keyframes.append(
            KeyframeFile(
                scene_index=n // 4,
                keyframe=KeyFrame(time_s=n * 2.0, frame=n * 60),
                image_file=name,
            )
        )
    return keyframes


def time_stage(
    workspaces: Workspaces, engines: OcrEngines, ref: WorkspaceRef, keyframes: list[KeyframeFile]
) -> tuple[float, EncodingEnvironment, int]:
    env = EncodingEnvironment()
    started = time.perf_counter()
    result = env.run(
        OcrActivities(workspaces, engines).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=keyframes),
    )
    took = time.perf_counter() - started
    env.loop.close()
    # A second attempt starts afresh: what the first left in the workspace goes.
    for leftover in workspaces.path(ref).iterdir():
        if leftover.is_file():
            leftover.unlink()
    return took, env, sum(len(f.lines) for f in result.frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", default="250,1000,3000")
    parser.add_argument(
        "--real", type=int, default=200, help="Frames the real engine reads (0: none)."
    )
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.frames.split(",") if n.strip()})
    settings = Settings()
    work = Path(tempfile.mkdtemp(prefix="bench-ocr-books-"))
    try:
        workspaces = Workspaces(work)
        ref = WorkspaceRef(job_id="bench", item_index=0)
        keyframes = write_keyframes(workspaces, ref, max([*counts, args.real]))
        print(
            "| engine | key frames | s | ms a frame | s encoding heartbeats | heartbeats "
            "| largest heartbeat, bytes | lines |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        instant = InstantEngines(settings.ocr_frames_at_once)
        time_stage(workspaces, instant, ref, keyframes[:50])  # warm-up
        for count in counts:
            took, env, lines = time_stage(workspaces, instant, ref, keyframes[:count])
            print(
                f"| instant | {count} | {took:.2f} | {took / count * 1000:.2f} | {env.encode_s:.2f}"
                f" | {env.beats} | {env.largest} | {lines} |",
                flush=True,
            )
        if args.real:
            models = Models(settings)
            models.preload()
            time_stage(workspaces, models.ocr, ref, keyframes[:10])  # warm-up
            took, env, lines = time_stage(workspaces, models.ocr, ref, keyframes[: args.real])
            print(
                f"| {models.ocr.default} | {args.real} | {took:.2f} | {took / args.real * 1000:.2f}"
                f" | {env.encode_s:.2f} | {env.beats} | {env.largest} | {lines} |"
            )
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
