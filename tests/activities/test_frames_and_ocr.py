from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime
import pytest
from temporalio.exceptions import ApplicationError

from activities.frames import FrameActivities
from activities.ocr import (
    ALLOW_SPINNING,
    FRAMES_FILE,
    WARM_UP_LINES,
    EnginePool,
    OcrActivities,
    OcrEngine,
    OcrEngines,
    OcrSettings,
    ReadAhead,
    RecognizedLine,
    WidthBatchedRecognizer,
    line_batches,
    onnx_threads_that_sleep,
    readable,
    warm_up_picture,
)
from activities.scenes import SceneActivities
from activities.workspace import Workspaces
from models.jobs import KeyFrame, Stage
from models.pipeline import (
    ActivityProgress,
    DetectScenesInput,
    ExtractKeyframesInput,
    FrameText,
    KeyframeFile,
    OcrInput,
    SceneSpan,
    WorkspaceRef,
)
from reelscope.sample import SampleSpec
from reelscope.settings import Settings
from tests.activities.conftest import RecordingEnvironment, by_frame
from tests.conftest import SUBTITLE_SECONDS, SUBTITLES
from worker import Models


def sample_scenes(spec: SampleSpec) -> list[SceneSpan]:
    bounds = [0, *spec.cut_frames, spec.total_frames]
    return [
        SceneSpan(start_frame=a, end_frame=b, start_s=a / spec.fps, end_s=b / spec.fps)
        for a, b in pairwise(bounds)
    ]


def words(text: str) -> str:
    return re.sub(r"[^A-Z0-9 ]", "", text.upper())


@pytest.fixture
def keyframes(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, sample_spec: SampleSpec
) -> list[KeyframeFile]:
    env = RecordingEnvironment()
    result = env.run(
        FrameActivities(workspaces).extract_keyframes,
        ExtractKeyframesInput(
            workspace=ref,
            media_file=sample_in_workspace,
            fps=sample_spec.fps,
            scenes=sample_scenes(sample_spec),
        ),
    )
    assert [b.done for b in env.heartbeats] == [1, 2, 3, 4]
    assert env.heartbeats[-1].fraction == 1.0
    return result.keyframes


def test_one_keyframe_per_scene_inside_it(
    keyframes: list[KeyframeFile],
    workspaces: Workspaces,
    ref: WorkspaceRef,
    sample_spec: SampleSpec,
) -> None:
    assert [kf.scene_index for kf in keyframes] == [0, 1, 2, 3]
    for kf, scene in zip(keyframes, sample_scenes(sample_spec), strict=True):
        assert scene.start_frame <= kf.keyframe.frame < scene.end_frame
        assert workspaces.file(ref, kf.image_file).stat().st_size > 1000


@pytest.mark.parametrize("engine", ["paddleocr", "rapidocr"])
def test_ocr_reads_the_captions_and_heartbeats_per_frame(
    engine: str,
    keyframes: list[KeyframeFile],
    workspaces: Workspaces,
    ref: WorkspaceRef,
    sample_spec: SampleSpec,
    models: Models,
) -> None:
    env = RecordingEnvironment()
    result = env.run(
        OcrActivities(workspaces, models.ocr).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=keyframes, engine=engine),
    )
    assert result.engine == engine
    ocr_beats = [b for b in env.heartbeats if b.done > 0]
    assert [b.done for b in ocr_beats] == [1, 2, 3, 4]
    for frame, shot in zip(result.frames, sample_spec.shots, strict=True):
        read = [words(line.text) for line in frame.lines]
        assert read == ([words(shot.text)] if shot.text else []), (engine, frame.lines)


def test_lines_of_shapes_alone_are_not_text() -> None:
    assert not readable("■")
    assert not readable("■ ● —")
    assert not readable("...")
    assert readable("7")
    assert readable("开源")
    assert readable("■ SALE")


def onnx_sessions(root: object) -> list[onnxruntime.InferenceSession]:
    """Every ONNX Runtime session reachable from ``root`` through the attributes of
    Reelscope's and PaddleOCR's own objects."""
    found, seen, todo = [], set(), [root]
    while todo:
        item = todo.pop()
        if id(item) in seen or isinstance(item, str | bytes | int | float | np.ndarray):
            continue
        seen.add(id(item))
        if isinstance(item, onnxruntime.InferenceSession):
            found.append(item)
        elif type(item) is dict:
            todo.extend(item.values())
        elif type(item) in (list, tuple):
            todo.extend(item)
        elif type(item).__module__.startswith(("activities", "paddle")):
            todo.extend(vars(item).values())
    return found


def test_paddle_ocr_sessions_let_idle_threads_sleep(models: Models) -> None:
    pool = models.ocr.get("paddleocr")
    assert isinstance(pool, EnginePool)
    assert len(pool.engines) == pool.size == models.ocr.frames_at_once  # built by preload
    for engine in pool.engines:
        sessions = onnx_sessions(engine)
        assert len(sessions) == 2  # detection and recognition
        for session in sessions:
            assert session.get_session_options().get_session_config_entry(ALLOW_SPINNING) == "0"
    # Only the engine's own sessions: PaddleX's runner is restored afterwards.
    from paddlex.inference.models.runners.onnxruntime_runner import ONNXRuntimeRunner

    build = ONNXRuntimeRunner._build_session_options
    with onnx_threads_that_sleep():
        assert ONNXRuntimeRunner._build_session_options is not build
    assert ONNXRuntimeRunner._build_session_options is build


def test_with_lone_frame_threads_the_first_engine_has_them_and_the_others_their_share(
    tmp_path: Path,
) -> None:
    settings = OcrSettings(threads=1, lone_frame_threads=2, frames_at_once=2, cache_dir=tmp_path)
    pool = OcrEngines(settings, default="paddleocr").get(None)
    assert isinstance(pool, EnginePool)
    pool.fill()
    threads = [
        {s.get_session_options().intra_op_num_threads for s in onnx_sessions(engine)}
        for engine in pool.engines
    ]
    assert threads == [{2}, {1}]


def test_by_default_every_ocr_engine_has_its_share_of_the_threads(models: Models) -> None:
    settings = Settings()
    pool = models.ocr.get("paddleocr")
    assert isinstance(pool, EnginePool)
    share = max(1, settings.ocr_threads // settings.ocr_frames_at_once)
    for engine in pool.engines:
        assert {s.get_session_options().intra_op_num_threads for s in onnx_sessions(engine)} == {
            share
        }


@pytest.mark.parametrize("engine", ["paddleocr", "rapidocr"])
def test_the_warm_up_picture_is_read_whole(engine: str, models: Models) -> None:
    # So that the warm-up each engine reads at start takes it through recognition too,
    # every line's width of it, and not through detection alone.
    assert [line.text for line in models.ocr.get(engine).read(warm_up_picture())] == list(
        WARM_UP_LINES
    )


SLIDE_LINES = [
    "QUARTERLY RESULTS 2026",
    "Revenue grew in every region",
    "Costs fell by 12 percent",
    "Retention improved after March",
    "Deploys take half as long",
    "Two new offices opened",
    "Hiring continues in support",
    "Next review in June",
]


def slide_frame() -> np.ndarray:
    """A 1080p slide: a title and seven lines of other widths, dark on light."""
    frame = np.full((1080, 1920, 3), (245, 245, 240), np.uint8)
    for i, text in enumerate(SLIDE_LINES):
        scale, thickness = (2.0, 4) if i == 0 else (1.4, 3)
        origin = (120, 140 + i * 110)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(frame, text, origin, font, scale, (30, 30, 30), thickness, cv2.LINE_AA)
    return frame


@pytest.mark.parametrize("engine", ["paddleocr", "rapidocr"])
def test_a_slide_of_many_lines_is_read_with_the_worker_settings(
    engine: str, models: Models
) -> None:
    most = Settings().ocr_rec_batch_size
    pool = models.ocr.get(engine)
    assert isinstance(pool, EnginePool)
    pool.fill()
    for built in pool.engines:
        inner: Any = built._ocr  # type: ignore[attr-defined]
        if engine == "paddleocr":
            recognizer = inner.paddlex_pipeline._pipeline.text_rec_model
            assert isinstance(recognizer, WidthBatchedRecognizer)
            assert recognizer.batch_sampler.batch_size == most
        else:
            assert inner.cfg.Rec.rec_batch_num == most
    assert [line.text for line in pool.read(slide_frame())] == SLIDE_LINES


def line_of(width: int, height: int = 48) -> np.ndarray:
    return np.zeros((height, width, 3), np.uint8)


def test_lines_are_batched_only_with_lines_of_about_their_width() -> None:
    # Words at the recogniser's least width pad to the same width: batches of `most`.
    words = [line_of(w) for w in (90, 120, 200, 250, 300, 310, 320)]
    assert [len(b) for b in line_batches(words, most=3)] == [3, 3, 1]
    # A slide's lines of every length: each with those within the padding it may add.
    lines = [line_of(w) for w in (330, 380, 700, 760, 1400)]
    assert [[x.shape[1] for x in b] for b in line_batches(lines, most=6)] == [
        [330, 380],
        [700, 760],
        [1400],
    ]
    # Widths count at the recogniser's height: a line twice as tall is half as wide.
    assert len(line_batches([line_of(600, 96), line_of(330)], most=6)) == 1
    # Order is kept whatever it is, and one line at a time gives singles.
    unsorted = [line_of(w) for w in (900, 320, 910)]
    assert [[x.shape[1] for x in b] for b in line_batches(unsorted, most=6)] == [
        [900],
        [320],
        [910],
    ]
    assert [len(b) for b in line_batches(words, most=1)] == [1] * len(words)


def test_each_batch_of_lines_is_one_recognizer_call_and_results_keep_their_order() -> None:
    calls: list[list[int]] = []

    def recognizer(batch: list[np.ndarray], **kwargs: Any) -> Iterator[tuple[int, Any]]:
        calls.append([line.shape[1] for line in batch])
        return iter([(line.shape[1], kwargs) for line in batch])

    widths = [100, 200, 330, 1000, 1010]
    batched = WidthBatchedRecognizer(recognizer, most=6)
    results = list(batched([line_of(w) for w in widths], return_word_box=False))
    assert [width for width, _ in results] == widths
    assert all(kwargs == {"return_word_box": False} for _, kwargs in results)
    assert calls == [[100, 200, 330], [1000, 1010]]


def test_ocr_resumes_from_the_frames_on_disk_without_rereading_them(
    keyframes: list[KeyframeFile],
    workspaces: Workspaces,
    ref: WorkspaceRef,
    models: Models,
) -> None:
    first = RecordingEnvironment()
    read = first.run(
        OcrActivities(workspaces, models.ocr).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=keyframes),
    )
    # The heartbeats say how many frames are on disk; they never carry the frames, so
    # they stay small however many key frames a video has.
    beats = [b for b in first.heartbeats if b.done]
    assert [b.done for b in beats] == [1, 2, 3, 4]
    assert all(b.resume == {} and len(b.model_dump_json()) < 300 for b in beats), beats
    on_disk = workspaces.file(ref, FRAMES_FILE).read_text().splitlines()
    assert sorted(
        (FrameText.model_validate_json(line) for line in on_disk), key=by_frame
    ) == sorted(read.frames, key=by_frame)

    # The 'previous attempt' ended after its second heartbeat. The frames it had read
    # are gone from the workspace, so reading them again would fail; the file holds
    # more lines than that heartbeat counted, and only those counted are trusted.
    counted = [FrameText.model_validate_json(line) for line in on_disk[:2]]
    for kf in keyframes:
        if kf.scene_index in {f.scene_index for f in counted}:
            workspaces.file(ref, kf.image_file).unlink()
    again = RecordingEnvironment(resume_from=beats[1])
    result = again.run(
        OcrActivities(workspaces, models.ocr).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=keyframes),
    )
    assert result.frames == read.frames
    # Its first heartbeat says again how far the last attempt got, before any read.
    assert [b.done for b in again.heartbeats] == [2, 3, 4]


def test_ocr_reads_again_the_frames_an_attempt_did_not_write_back_whole(
    keyframes: list[KeyframeFile],
    workspaces: Workspaces,
    ref: WorkspaceRef,
    models: Models,
) -> None:
    read = RecordingEnvironment().run(
        OcrActivities(workspaces, models.ocr).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=keyframes),
    )
    # The last attempt had said 3 frames were done, then died writing them back.
    path = workspaces.file(ref, FRAMES_FILE)
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    previous = ActivityProgress(stage=Stage.OCR, done=3, total=4)
    again = RecordingEnvironment(resume_from=previous)
    result = again.run(
        OcrActivities(workspaces, models.ocr).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=keyframes),
    )
    assert result.frames == read.frames
    assert [b.done for b in again.heartbeats] == [3, 2, 3, 4]


def test_ocr_resumes_from_an_older_workers_heartbeat(
    keyframes: list[KeyframeFile],
    workspaces: Workspaces,
    ref: WorkspaceRef,
    models: Models,
) -> None:
    # Workers before frame_text.jsonl put the frames read in the heartbeat itself.
    # Frames 0 and 1 were read by the 'previous attempt'; their files are gone, so
    # reading them again would fail.
    for kf in keyframes[:2]:
        workspaces.file(ref, kf.image_file).unlink()
    done = [FrameText(scene_index=0, lines=[]), FrameText(scene_index=1, lines=[])]
    previous = ActivityProgress(
        stage=Stage.OCR, done=2, total=4, resume={"frames": [f.model_dump() for f in done]}
    )
    env = RecordingEnvironment(resume_from=previous)
    result = env.run(
        OcrActivities(workspaces, models.ocr).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=keyframes),
    )
    assert [f.scene_index for f in result.frames] == [0, 1, 2, 3]
    assert words(result.frames[3].lines[0].text) == "TEMPORAL WORKFLOW 42"


def test_unknown_engine_is_a_final_typed_error(
    workspaces: Workspaces, ref: WorkspaceRef, models: Models
) -> None:
    kf = KeyframeFile(scene_index=0, keyframe=KeyFrame(time_s=0, frame=0), image_file="x.jpg")
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(
            OcrActivities(workspaces, models.ocr).ocr_keyframes,
            OcrInput(workspace=ref, keyframes=[kf], engine="tesseract"),
        )
    assert info.value.type == "ModelUnavailable" and info.value.non_retryable


def test_reading_forward_gives_the_frames_a_seek_gives(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, sample_spec: SampleSpec
) -> None:
    import cv2
    import numpy as np

    from activities.frames import FrameReader

    path = str(workspaces.file(ref, sample_in_workspace))
    wanted = [5, 20, 21, 80, 150, 139, 400]  # ahead, next, far ahead (seek), backwards
    forward = FrameReader(cv2.VideoCapture(path), sample_spec.fps)
    for frame_no in wanted:
        seeking = cv2.VideoCapture(path)
        seeking.set(cv2.CAP_PROP_POS_FRAMES, frame_no)
        ok, expected = seeking.read()
        got = forward.read(frame_no)
        assert ok and got is not None
        assert np.array_equal(got, expected), frame_no
    assert forward.read(sample_spec.total_frames + 50) is None


class CountingEngines(OcrEngines):
    """The real engines, counting the images they are given; ``frames_at_once`` may
    differ from theirs."""

    def __init__(self, real: OcrEngines, frames_at_once: int | None = None) -> None:
        self.real = real
        self.default = real.default
        self.frames_at_once = frames_at_once or real.frames_at_once
        self.reads = 0
        self._count_lock = threading.Lock()

    def get(self, name: str | None) -> OcrEngine:
        return self.counted(self.real.get(name))

    def counted(self, engine: OcrEngine) -> OcrEngine:
        """``engine``, its reads counted in ``reads``."""
        outer = self

        class Counted(OcrEngine):
            name = engine.name

            def read(self, image: np.ndarray) -> list[RecognizedLine]:
                with outer._count_lock:
                    outer.reads += 1
                return engine.read(image)

        return Counted()


def test_frames_read_at_once_get_what_one_at_a_time_gets(
    keyframes: list[KeyframeFile], workspaces: Workspaces, ref: WorkspaceRef, models: Models
) -> None:
    """The same engines, reading the sample's key frames one at a time and two at once
    (each on an engine of its own): the same lines, box for box, for every scene."""
    results = {}
    for at_once in (1, 2):
        env = RecordingEnvironment()
        results[at_once] = env.run(
            OcrActivities(workspaces, CountingEngines(models.ocr, at_once)).ocr_keyframes,
            OcrInput(workspace=ref, keyframes=keyframes),
        )
        assert [b.done for b in env.heartbeats if b.done] == [1, 2, 3, 4]
    assert results[2] == results[1]
    assert [f.scene_index for f in results[2].frames] == [0, 1, 2, 3]
    assert any(f.lines for f in results[2].frames)


def test_a_picture_shown_again_is_read_once_and_a_changed_caption_is_read(
    keyframes: list[KeyframeFile],
    workspaces: Workspaces,
    ref: WorkspaceRef,
    models: Models,
) -> None:
    """Scenes 4 and 5 show scene 3's picture again (re-encoded, as a later shot of the
    same slide would be); scene 6 shows it with one word of the caption changed."""
    slide = cv2.imread(str(workspaces.file(ref, keyframes[3].image_file)))
    again = [slide, cv2.imdecode(cv2.imencode(".jpg", slide, [cv2.IMWRITE_JPEG_QUALITY, 70])[1], 1)]
    changed = slide.copy()
    height, width = changed.shape[:2]
    # Black out "42" at the caption's right end (white on a black box) and write "77".
    x0, x1 = int(width * 0.725), int(width * 0.835)
    changed[int(height * 0.61) : int(height * 0.72), x0:x1] = 0
    cv2.putText(
        changed,
        "77",
        (x0 + 5, int(height * 0.7)),
        cv2.FONT_HERSHEY_SIMPLEX,
        1.4,
        (255, 255, 255),
        3,
    )
    extra = []
    for n, image in enumerate([*again, changed], start=4):
        name = f"keyframes/extra-{n}.jpg"
        cv2.imwrite(str(workspaces.file(ref, name)), image)
        extra.append(
            KeyframeFile(
                scene_index=n, keyframe=KeyFrame(time_s=float(n), frame=n), image_file=name
            )
        )
    engines = CountingEngines(models.ocr)
    result = RecordingEnvironment().run(
        OcrActivities(workspaces, engines).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=[*keyframes, *extra]),
    )
    assert engines.reads == 5  # scenes 0-3 and the changed one
    texts = {f.scene_index: [words(line.text) for line in f.lines] for f in result.frames}
    assert texts[4] == texts[5] == texts[3] == ["TEMPORAL WORKFLOW 42"]
    assert [line.time_s for line in result.frames[4].lines] == [4.0]
    assert texts[6] != texts[3] and texts[6], texts[6]


def test_each_caption_of_a_subtitled_shot_is_read_and_a_retry_reads_only_the_rest(
    workspaces: Workspaces, ref: WorkspaceRef, media_dir: Path, models: Models
) -> None:
    """The scene pass's key frames for a shot whose subtitles change, read by OCR. A
    retry that had read the scene's first key frames reads only the others: several
    key frames of one scene are told apart."""
    shutil.copy(media_dir / "subtitled.mp4", workspaces.create(ref) / "media.mp4")
    scenes = RecordingEnvironment().run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file="media.mp4", keyframes=True),
    )
    keyframes = scenes.keyframes or []
    assert len(keyframes) > len(SUBTITLES) / 2
    read = RecordingEnvironment().run(
        OcrActivities(workspaces, models.ocr).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=keyframes),
    )
    assert [f.frame for f in read.frames] == [kf.keyframe.frame for kf in keyframes]
    seen = {words(line.text) for f in read.frames for line in f.lines}
    assert seen >= set(SUBTITLES), seen
    for frame in read.frames:
        caption = SUBTITLES[int(frame.frame / scenes.fps // SUBTITLE_SECONDS)]
        assert [words(line.text) for line in frame.lines] == [caption], frame

    # The first two read are on disk; their files are gone, so reading them again
    # would fail.
    first_two = [
        FrameText.model_validate_json(line)
        for line in workspaces.file(ref, FRAMES_FILE).read_text().splitlines()[:2]
    ]
    for kf in keyframes:
        if (kf.scene_index, kf.keyframe.frame) in {(f.scene_index, f.frame) for f in first_two}:
            workspaces.file(ref, kf.image_file).unlink()
    previous = ActivityProgress(stage=Stage.OCR, done=2, total=len(keyframes))
    again = RecordingEnvironment(resume_from=previous).run(
        OcrActivities(workspaces, models.ocr).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=keyframes),
    )
    assert again.frames == read.frames


class OwnCounted(CountingEngines):
    """The real engines; only the read-ahead's own engine counts its reads."""

    def get(self, name: str | None) -> OcrEngine:
        return self.real.get(name)

    def spare(self, name: str | None) -> OcrEngine:
        return self.counted(self.real.spare(name))


def test_lines_read_ahead_are_the_lines_the_stage_reads(
    keyframes: list[KeyframeFile], workspaces: Workspaces, ref: WorkspaceRef, models: Models
) -> None:
    """The sample's key frames, read by the stage alone, and read ahead (on an engine of
    the read-ahead's own, built on its thread) then taken by the stage: the same result."""
    alone = RecordingEnvironment().run(
        OcrActivities(workspaces, models.ocr).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=keyframes),
    )
    engines = OwnCounted(models.ocr)
    ahead = ReadAhead(engines)
    for kf in keyframes:
        ahead.offer(workspaces.file(ref, kf.image_file), None)
    deadline = time.monotonic() + 60
    while engines.reads < len(keyframes):
        assert time.monotonic() < deadline, "the read-ahead did not read the key frames"
        time.sleep(0.05)
    taken = RecordingEnvironment().run(
        OcrActivities(workspaces, engines, read_ahead=ahead).ocr_keyframes,
        OcrInput(workspace=ref, keyframes=keyframes),
    )
    assert taken == alone
    assert any(f.lines for f in taken.frames)
