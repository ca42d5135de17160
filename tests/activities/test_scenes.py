from __future__ import annotations

from activities.scenes import SceneActivities, spans_from_cuts
from activities.workspace import Workspaces
from models.jobs import Stage
from models.pipeline import ActivityProgress, DetectScenesInput, WorkspaceRef
from reelscope.sample import SampleSpec
from tests.activities.conftest import RecordingEnvironment


def test_spans_from_cuts() -> None:
    spans = spans_from_cuts([30, 0, 30, 60, 90], total_frames=90, fps=30.0)
    assert [(s.start_frame, s.end_frame) for s in spans] == [(0, 30), (30, 60), (60, 90)]
    assert spans[1].start_s == 1.0 and spans[1].end_s == 2.0
    assert [(s.start_frame, s.end_frame) for s in spans_from_cuts([], 10, 25.0)] == [(0, 10)]


def test_detect_scenes_heartbeats_frames_and_finds_the_cuts(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, sample_spec: SampleSpec
) -> None:
    env = RecordingEnvironment()
    result = env.run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file=sample_in_workspace),
    )
    cuts = [s.start_frame for s in result.scenes[1:]]
    assert all(abs(a - b) <= 1 for a, b in zip(cuts, sample_spec.cut_frames, strict=True))
    assert result.scenes[-1].end_frame == sample_spec.total_frames
    beats = [b for b in env.heartbeats if b.stage == Stage.SCENES]
    assert len(beats) >= 2, "one heartbeat per 10 s chunk"
    assert [b.done for b in beats] == sorted(b.done for b in beats)
    assert beats[-1].fraction == 1.0 and beats[-1].total == sample_spec.total_frames
    assert beats[-1].resume["cuts"] == cuts


def test_detect_scenes_resumes_from_the_last_heartbeat(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, sample_spec: SampleSpec
) -> None:
    """A retry starts at the heartbeated frame and keeps the cuts found before it. The
    'previous attempt' claims a cut at frame 60 that is not in the video: it must be
    kept, which proves the first frames were not decoded again. It stopped exactly on
    the cut at frame 240, which must still be found."""
    previous = ActivityProgress(
        stage=Stage.SCENES, done=240, total=480, unit="frames", resume={"cuts": [60, 120]}
    )
    env = RecordingEnvironment(resume_from=previous)
    result = env.run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file=sample_in_workspace),
    )
    cuts = [s.start_frame for s in result.scenes[1:]]
    assert cuts[:2] == [60, 120]
    assert all(abs(a - b) <= 1 for a, b in zip(cuts[2:], sample_spec.cut_frames[1:], strict=True))
    assert cuts[2] == 240, cuts
    assert env.heartbeats[0].done > 240
