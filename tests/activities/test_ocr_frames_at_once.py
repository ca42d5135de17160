"""How the OCR stage reads key frames at once, with a stand-in engine. The real engines
reading at once are tested in test_frames_and_ocr.py; here the engine is a stub, so the
tests can make reads finish out of order and fail on purpose."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from activities.ocr import (
    FRAMES_FILE,
    EnginePool,
    OcrActivities,
    OcrEngine,
    OcrEngines,
    RecognizedLine,
)
from activities.workspace import Workspaces
from models.jobs import KeyFrame
from models.pipeline import FrameText, KeyframeFile, OcrInput, WorkspaceRef
from tests.activities.conftest import RecordingEnvironment, by_frame

#: Grey levels of the stand-in key frames: far enough apart that none looks like another.
STEP = 24


class ShadeReader(OcrEngine):
    """Reads a flat grey frame as its shade number. Dark frames take longest, so reads
    started first finish last. Records how many reads overlap, in all and per engine."""

    name = "shades"

    def __init__(self, overlap: Overlap, fail_on: int | None = None) -> None:
        self.overlap = overlap
        self.fail_on = fail_on
        self.busy = False

    def read(self, image: np.ndarray) -> list[RecognizedLine]:
        shade = round(float(image.mean()) / STEP)
        if self.busy:
            self.overlap.shared_engine = True
        self.busy = True
        with self.overlap.lock:
            self.overlap.now += 1
            self.overlap.most = max(self.overlap.most, self.overlap.now)
        try:
            time.sleep(0.01 * (10 - shade))
            if shade == self.fail_on:
                raise RuntimeError(f"engine failed on shade {shade}")
            return [RecognizedLine(text=f"shade {shade}", confidence=1.0, box=[[0, 0]] * 4)]
        finally:
            with self.overlap.lock:
                self.overlap.now -= 1
            self.busy = False


class Overlap:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.shared_engine = False


class StubEngines(OcrEngines):
    def __init__(self, pool: EnginePool) -> None:
        self.default = pool.name
        self.frames_at_once = pool.size
        self.pool = pool

    def get(self, name: str | None) -> OcrEngine:
        return self.pool


def shade_keyframes(
    workspaces: Workspaces, ref: WorkspaceRef, shades: list[int]
) -> list[KeyframeFile]:
    folder = workspaces.create(ref) / "keyframes"
    folder.mkdir()
    keyframes = []
    for index, shade in enumerate(shades):
        name = f"keyframes/scene-{index}.jpg"
        cv2.imwrite(str(workspaces.file(ref, name)), np.full((72, 128, 3), shade * STEP, np.uint8))
        keyframes.append(
            KeyframeFile(
                scene_index=index,
                keyframe=KeyFrame(time_s=float(index), frame=index),
                image_file=name,
            )
        )
    return keyframes


@pytest.mark.parametrize("at_once", [1, 2, 3])
def test_each_scene_gets_its_own_frames_lines_however_reads_overlap(
    workspaces: Workspaces, ref: WorkspaceRef, at_once: int
) -> None:
    """Eight key frames, the fifth and the last showing the second's picture again."""
    shades = [1, 2, 3, 4, 2, 5, 6, 2]
    keyframes = shade_keyframes(workspaces, ref, shades)
    overlap = Overlap()
    pool = EnginePool("shades", lambda: ShadeReader(overlap), at_once)
    env = RecordingEnvironment()
    result = env.run(
        OcrActivities(workspaces, StubEngines(pool)).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=keyframes),
    )
    assert [f.scene_index for f in result.frames] == list(range(len(shades)))
    assert [[line.text for line in f.lines] for f in result.frames] == [
        [f"shade {shade}"] for shade in shades
    ]
    assert [f.lines[0].time_s for f in result.frames] == [float(i) for i in range(len(shades))]
    # Six distinct pictures: each read once, on at most ``at_once`` engines at a time.
    assert len(pool.engines) == min(at_once, 6)
    assert overlap.most == min(at_once, 6)
    assert not overlap.shared_engine
    done = [b.done for b in env.heartbeats if b.done]
    assert done == sorted(done) and done[-1] == len(shades)
    # Every frame is on disk, once, for a retry to pick up.
    on_disk = workspaces.file(ref, FRAMES_FILE).read_text().splitlines()
    assert sorted(
        (FrameText.model_validate_json(line) for line in on_disk), key=by_frame
    ) == sorted(result.frames, key=by_frame)


def test_a_failed_read_fails_the_stage_and_stops_its_readers(
    workspaces: Workspaces, ref: WorkspaceRef
) -> None:
    keyframes = shade_keyframes(workspaces, ref, [1, 2, 3, 4, 5, 6])
    overlap = Overlap()
    pool = EnginePool("shades", lambda: ShadeReader(overlap, fail_on=3), 2)
    with pytest.raises(RuntimeError, match="shade 3"):
        RecordingEnvironment().run(
            OcrActivities(workspaces, StubEngines(pool)).ocr_keyframes,
            OcrInput(workspace=ref, keyframes=keyframes),
        )
    assert overlap.now == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("ocr-frame")]


def test_a_pool_builds_engines_only_when_reads_overlap() -> None:
    built = []

    def build() -> OcrEngine:
        built.append(ShadeReader(Overlap()))
        return built[-1]

    pool = EnginePool("shades", build, 3)
    image = np.full((72, 128, 3), 2 * STEP, np.uint8)
    for _ in range(3):
        assert pool.read(image)[0].text == "shade 2"
    assert len(built) == 1
    pool.fill()
    assert len(built) == len(pool.engines) == 3


class CountingReader(ShadeReader):
    def __init__(self, overlap: Overlap) -> None:
        super().__init__(overlap)
        self.reads = 0

    def read(self, image: np.ndarray) -> list[RecognizedLine]:
        self.reads += 1
        return super().read(image)


def test_a_frame_read_alone_gets_the_first_engine_and_frames_read_at_once_get_all() -> None:
    overlap = Overlap()
    first = CountingReader(overlap)
    others = [CountingReader(overlap), CountingReader(overlap)]
    unbuilt = list(others)
    pool = EnginePool("shades", lambda: unbuilt.pop(0), 3, build_first=lambda: first)
    pool.fill()
    assert pool.engines == [first, *others]
    image = np.full((72, 128, 3), 2 * STEP, np.uint8)
    for _ in range(4):  # one after another: each read has the pool to itself
        pool.read(image)
    assert first.reads == 4 and [engine.reads for engine in others] == [0, 0]
    with ThreadPoolExecutor(3) as readers:
        list(readers.map(pool.read, [image] * 9))
    assert overlap.most == 3 and not overlap.shared_engine
    assert all(engine.reads > 0 for engine in others)


def test_fill_with_a_warm_up_picture_has_each_engine_read_it_once() -> None:
    overlap = Overlap()
    engines = [CountingReader(overlap) for _ in range(3)]
    unbuilt = list(engines)
    pool = EnginePool("shades", lambda: unbuilt.pop(0), 3)
    pool.fill(np.full((72, 128, 3), 2 * STEP, np.uint8))
    assert [engine.reads for engine in engines] == [1, 1, 1]
    assert not overlap.shared_engine


class Unreadable(OcrEngine):
    name = "unreadable"

    def read(self, image: np.ndarray) -> list[RecognizedLine]:
        raise RuntimeError("the engine's model file is damaged")


def test_a_warm_up_read_that_fails_leaves_the_pool_whole() -> None:
    # Logged, not raised: the worker starts, and a job's reads say what is wrong.
    pool = EnginePool("unreadable", Unreadable, 2)
    pool.fill(np.zeros((72, 128, 3), np.uint8))
    assert len(pool.engines) == 2
    # Both engines were given back: two reads at once do not wait for a third.
    with ThreadPoolExecutor(2) as readers:
        failures = [
            readers.submit(pool.read, np.zeros((8, 8, 3), np.uint8)).exception(timeout=10)
            for _ in range(2)
        ]
    assert all(isinstance(f, RuntimeError) for f in failures)


def test_reads_on_a_pool_go_on_while_a_spare_engine_is_built() -> None:
    # The read-ahead builds its own engine at the lowest priority; on a busy worker
    # that took 24 s, and no stage's read may wait for it.
    release = threading.Event()
    building = threading.Event()

    def slow_build() -> OcrEngine:
        building.set()
        assert release.wait(30)
        return ShadeReader(Overlap())

    pool = EnginePool("shades", slow_build, 2, build_first=lambda: ShadeReader(Overlap()))
    image = np.full((72, 128, 3), 2 * STEP, np.uint8)
    assert pool.read(image)[0].text == "shade 2"  # builds the first engine
    spare: list[OcrEngine] = []
    texts: list[str] = []
    builder = threading.Thread(target=lambda: spare.append(pool.spare()))
    reader = threading.Thread(
        target=lambda: texts.extend(pool.read(image)[0].text for _ in range(3))
    )
    builder.start()
    try:
        assert building.wait(5)
        reader.start()
        reader.join(5)
        # The reads ended while the spare engine was still being built.
        assert texts == ["shade 2"] * 3
        assert builder.is_alive() and not spare
    finally:
        release.set()
        builder.join(5)
        reader.join(5)
    assert len(spare) == 1 and spare[0] not in pool.engines


def test_a_build_that_fails_leaves_its_place_in_the_pool_free() -> None:
    attempts = []

    def build() -> OcrEngine:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("out of memory")
        return ShadeReader(Overlap())

    pool = EnginePool("shades", build, 1)
    image = np.full((72, 128, 3), 2 * STEP, np.uint8)
    with pytest.raises(RuntimeError, match="out of memory"):
        pool.read(image)
    assert pool.read(image)[0].text == "shade 2"
    assert len(pool.engines) == 1 and len(attempts) == 2
