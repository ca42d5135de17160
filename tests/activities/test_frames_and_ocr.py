from __future__ import annotations

import re
from itertools import pairwise

import pytest
from temporalio.exceptions import ApplicationError

from activities.frames import FrameActivities
from activities.ocr import OcrActivities
from activities.workspace import Workspaces
from models.jobs import KeyFrame, Stage
from models.pipeline import (
    ActivityProgress,
    ExtractKeyframesInput,
    FrameText,
    KeyframeFile,
    OcrInput,
    SceneSpan,
    WorkspaceRef,
)
from reelscope.sample import SampleSpec
from tests.activities.conftest import RecordingEnvironment
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
        assert read == ([words(shot.text)] if shot.text else []), (engine, read)


def test_ocr_resumes_without_rereading_done_frames(
    keyframes: list[KeyframeFile],
    workspaces: Workspaces,
    ref: WorkspaceRef,
    models: Models,
) -> None:
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
