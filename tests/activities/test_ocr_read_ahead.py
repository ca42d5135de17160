"""Key frames read while the scene pass still runs (``ReadAhead``): the OCR stage takes
their lines instead of reading them again, and reads itself whatever was not read, was
written again since, or is still being read. The engines are stand-ins (shades of grey
read as numbers), so reads can be counted and held back; the scene pass and the real
engines run in the last two tests."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

import activities.ocr as ocr_module
from activities.ocr import (
    EnginePool,
    OcrActivities,
    OcrEngine,
    ReadAhead,
    RecognizedLine,
    warm_up_picture,
)
from activities.scenes import SceneActivities
from activities.workspace import Workspaces
from models.pipeline import DetectScenesInput, KeyframeFile, OcrInput, WorkspaceRef
from tests.activities.conftest import RecordingEnvironment
from tests.activities.test_ocr_frames_at_once import STEP, StubEngines, shade_keyframes


class CountedShades(OcrEngine):
    """Reads a flat grey frame as its shade number; counts its reads, and holds a read of
    ``held`` back until ``release`` is set."""

    name = "shades"

    def __init__(self, reads: list[int], held: int | None = None) -> None:
        self.reads = reads
        self.held = held
        self.release = threading.Event()
        self.holding = threading.Event()

    def read(self, image: np.ndarray) -> list[RecognizedLine]:
        shade = round(float(image.mean()) / STEP)
        if shade == self.held:
            self.holding.set()
            self.release.wait(10)
        self.reads.append(shade)
        return [RecognizedLine(text=f"shade {shade}", confidence=1.0, box=[[0, 0]] * 4)]


class Shades:
    """A stage's pool and the read-ahead's own engine, each counting its reads."""

    def __init__(self, held: int | None = None) -> None:
        self.stage_reads: list[int] = []
        self.ahead_reads: list[int] = []
        self.own = CountedShades(self.ahead_reads, held)
        self.pool = EnginePool("shades", lambda: CountedShades(self.stage_reads), 2)
        self.pool.spare = lambda: self.own  # type: ignore[method-assign]
        self.engines = StubEngines(self.pool)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def read_stage(
    workspaces: Workspaces,
    ref: WorkspaceRef,
    shades: Shades,
    ahead: ReadAhead,
    keyframes: list[KeyframeFile],
) -> list[list[str]]:
    result = RecordingEnvironment().run(
        OcrActivities(workspaces, shades.engines, read_ahead=ahead).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=keyframes),
    )
    return [[line.text for line in f.lines] for f in result.frames]


def offer_all(
    workspaces: Workspaces, ref: WorkspaceRef, ahead: ReadAhead, keyframes: list[KeyframeFile]
) -> None:
    for kf in keyframes:
        ahead.offer(workspaces.file(ref, kf.image_file), None)


def test_frames_read_ahead_are_taken_not_read_again(
    workspaces: Workspaces, ref: WorkspaceRef
) -> None:
    keyframes = shade_keyframes(workspaces, ref, [1, 2, 3, 4])
    shades = Shades()
    ahead = ReadAhead(shades.engines)
    offer_all(workspaces, ref, ahead, keyframes)
    wait_for(lambda: len(shades.ahead_reads) == 4)
    assert read_stage(workspaces, ref, shades, ahead, keyframes) == [
        [f"shade {n}"] for n in (1, 2, 3, 4)
    ]
    assert shades.stage_reads == []
    # Taken once: a second stage over the same frames reads them itself.
    assert read_stage(workspaces, ref, shades, ahead, keyframes) == [
        [f"shade {n}"] for n in (1, 2, 3, 4)
    ]
    assert sorted(shades.stage_reads) == [1, 2, 3, 4]


def test_a_frame_written_again_after_it_was_read_is_read_again(
    workspaces: Workspaces, ref: WorkspaceRef
) -> None:
    keyframes = shade_keyframes(workspaces, ref, [1, 2])
    shades = Shades()
    ahead = ReadAhead(shades.engines)
    offer_all(workspaces, ref, ahead, keyframes)
    wait_for(lambda: len(shades.ahead_reads) == 2)
    # A retried pass writes the second scene's key frame again, another picture.
    path = workspaces.file(ref, keyframes[1].image_file)
    before = os.stat(path).st_mtime_ns
    cv2.imwrite(str(path), np.full((72, 128, 3), 6 * STEP, np.uint8))
    os.utime(path, ns=(before + 10**9, before + 10**9))
    assert read_stage(workspaces, ref, shades, ahead, keyframes) == [["shade 1"], ["shade 6"]]
    assert shades.stage_reads == [6]


def test_frames_not_read_yet_or_still_being_read_are_read_by_the_stage(
    workspaces: Workspaces, ref: WorkspaceRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-ahead is held on the first frame: the stage waits a moment for it, then
    reads it itself, and reads the queued second one without waiting."""
    monkeypatch.setattr(ocr_module, "READ_AHEAD_WAIT_S", 0.2)
    keyframes = shade_keyframes(workspaces, ref, [1, 2])
    shades = Shades(held=1)
    ahead = ReadAhead(shades.engines)
    offer_all(workspaces, ref, ahead, keyframes)
    assert shades.own.holding.wait(10)
    try:
        started = time.monotonic()
        assert read_stage(workspaces, ref, shades, ahead, keyframes) == [["shade 1"], ["shade 2"]]
        assert time.monotonic() - started < 5
        assert sorted(shades.stage_reads) == [1, 2]
    finally:
        shades.own.release.set()
    # The queued frame left the queue when the stage took it: the read-ahead never reads it.
    wait_for(lambda: shades.ahead_reads == [1])
    time.sleep(0.1)
    assert shades.ahead_reads == [1]


def test_the_oldest_frames_go_past_the_most_kept(workspaces: Workspaces, ref: WorkspaceRef) -> None:
    """Held on a first frame, the read-ahead has four more offered while it can keep
    two: the two oldest go (one is being read), and the stage reads those itself."""
    keyframes = shade_keyframes(workspaces, ref, [9, 1, 2, 3])
    shades = Shades(held=9)
    ahead = ReadAhead(shades.engines, kept=2)
    offer_all(workspaces, ref, ahead, keyframes[:1])
    assert shades.own.holding.wait(10)
    offer_all(workspaces, ref, ahead, keyframes[1:])
    shades.own.release.set()
    wait_for(lambda: shades.ahead_reads == [9, 2, 3])
    assert read_stage(workspaces, ref, shades, ahead, keyframes) == [
        ["shade 9"],
        ["shade 1"],
        ["shade 2"],
        ["shade 3"],
    ]
    assert sorted(shades.stage_reads) == [1, 9]


def test_frames_taken_while_the_read_ahead_is_starved_do_not_pile_up(
    workspaces: Workspaces, ref: WorkspaceRef
) -> None:
    """Held on one frame (as a thread starved of CPU), the read-ahead is offered frames
    that stages take at once, far more than it keeps: its queue stays bounded."""
    keyframes = shade_keyframes(workspaces, ref, [9, 1])
    shades = Shades(held=9)
    ahead = ReadAhead(shades.engines, kept=4)
    offer_all(workspaces, ref, ahead, keyframes[:1])
    assert shades.own.holding.wait(10)
    try:
        path = workspaces.file(ref, keyframes[1].image_file)
        for _ in range(100):
            ahead.offer(path, None)
            assert ahead.take(path, "shades") is None  # queued, so the stage reads it
        assert len(ahead._queue) <= 8
    finally:
        shades.own.release.set()
    wait_for(lambda: shades.ahead_reads == [9])


def test_preload_builds_the_engine_once_on_a_thread_at_the_lowest_priority(
    workspaces: Workspaces, ref: WorkspaceRef
) -> None:
    keyframes = shade_keyframes(workspaces, ref, [1, 2])
    shades = Shades()
    built: list[tuple[str, int]] = []

    def spare() -> OcrEngine:
        thread = threading.current_thread()
        built.append((thread.name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        return shades.own

    shades.pool.spare = spare  # type: ignore[method-assign]
    ahead = ReadAhead(shades.engines)
    ahead.preload()
    assert built == [("ocr-read-ahead", 19)]  # the thread that reads
    # And it has read the warm-up picture once, before preload returned.
    assert shades.ahead_reads == [round(float(warm_up_picture().mean()) / STEP)]
    offer_all(workspaces, ref, ahead, keyframes)
    wait_for(lambda: len(shades.ahead_reads) == 3)
    assert shades.ahead_reads[1:] == [1, 2]
    assert len(built) == 1


def test_an_engine_that_cannot_be_built_is_tried_once_and_its_frames_left_to_the_stage(
    workspaces: Workspaces, ref: WorkspaceRef
) -> None:
    keyframes = shade_keyframes(workspaces, ref, [1, 2, 3])
    shades = Shades()
    builds: list[int] = []

    def no_engine() -> OcrEngine:
        builds.append(1)
        raise MemoryError("no memory for another engine")

    shades.pool.spare = no_engine  # type: ignore[method-assign]
    ahead = ReadAhead(shades.engines)
    offer_all(workspaces, ref, ahead, keyframes)
    wait_for(lambda: not ahead._queue and all(e.done.is_set() for e in ahead._entries.values()))
    assert builds == [1]
    assert read_stage(workspaces, ref, shades, ahead, keyframes) == [
        ["shade 1"],
        ["shade 2"],
        ["shade 3"],
    ]
    assert sorted(shades.stage_reads) == [1, 2, 3]
    assert shades.ahead_reads == []


class Recorder:
    def __init__(self) -> None:
        self.offered: list[tuple[Path, str | None, bool]] = []

    def offer(self, path: Path, engine: str | None) -> None:
        self.offered.append((path, engine, path.is_file()))


@pytest.mark.parametrize("text_read_after", [True, False])
def test_the_scene_pass_offers_each_key_frame_it_writes_when_ocr_follows(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, text_read_after: bool
) -> None:
    recorder = Recorder()
    result = RecordingEnvironment().run(
        SceneActivities(workspaces, 27.0, 15, read_ahead=recorder).detect_scenes,
        DetectScenesInput(
            workspace=ref,
            media_file=sample_in_workspace,
            keyframes=True,
            text_read_after=text_read_after,
            ocr_engine="rapidocr",
        ),
    )
    assert result.keyframes
    if not text_read_after:
        assert recorder.offered == []
        return
    assert recorder.offered == [
        (workspaces.file(ref, kf.image_file), "rapidocr", True) for kf in result.keyframes
    ]
