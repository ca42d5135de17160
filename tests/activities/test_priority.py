from __future__ import annotations

import os
import threading
import time

import pytest
from temporalio import activity
from temporalio.exceptions import CancelledError
from temporalio.testing import ActivityEnvironment

import activities.ocr
import activities.scenes
from activities.ocr import OcrActivities
from activities.priority import Transcribing, run_lowered, transcription_running
from activities.progress import report
from activities.scenes import SceneActivities
from activities.workspace import Workspaces
from models.jobs import Stage
from models.pipeline import ActivityProgress, DetectScenesInput, OcrInput, WorkspaceRef
from tests.activities.conftest import RecordingEnvironment
from worker import Models


def niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_work_runs_lower_on_a_thread_of_its_own_and_so_do_its_threads() -> None:
    caller = threading.get_native_id()
    base = niceness()
    seen: dict[str, int] = {}

    def work() -> str:
        seen["thread"] = threading.get_native_id()
        seen["work"] = niceness()
        child = threading.Thread(target=lambda: seen.update(child=niceness()))
        child.start()
        child.join()
        return "done"

    assert run_lowered(work, 3, "lowered") == "done"
    assert seen == {"thread": seen["thread"], "work": base + 3, "child": base + 3}
    assert seen["thread"] != caller and niceness() == base, "the caller keeps its priority"
    # Not below the lowest there is; and 0 steps runs it here.
    assert run_lowered(niceness, 40, "lowest") == 19
    assert run_lowered(threading.get_native_id, 0, "here") == caller


def test_the_works_error_is_the_callers() -> None:
    def work() -> None:
        raise ValueError("broken frame")

    with pytest.raises(ValueError, match="broken frame"):
        run_lowered(work, 2, "failing")


def test_heartbeats_reach_the_activity_and_a_cancel_waits_for_the_work_to_stop() -> None:
    """The SDK cancels a thread-pool activity by raising in its thread: here the one
    waiting. The work, in the activity's context, stops at its next report, before the
    activity ends."""
    env = RecordingEnvironment()
    started, stopped = threading.Event(), threading.Event()

    def work() -> None:
        try:
            for unit in range(400):
                report(ActivityProgress(stage=Stage.SCENES, done=unit))
                started.set()
                time.sleep(0.01)
        finally:
            stopped.set()

    @activity.defn
    def lowered() -> None:
        run_lowered(work, 2, "lowered")

    threading.Timer(0.3, env.cancel).start()
    with pytest.raises(CancelledError):
        env.run(lowered)
    assert started.is_set() and stopped.is_set()
    assert env.heartbeats and env.heartbeats[0].stage == Stage.SCENES


def test_transcribing_marks_the_item_while_it_runs() -> None:
    assert not transcription_running("job-a", 0)
    with Transcribing("job-a", 0):
        with Transcribing("job-a", 0):  # a retry overlapping the attempt it replaces
            assert transcription_running("job-a", 0)
        assert transcription_running("job-a", 0)
        assert not transcription_running("job-a", 1)
    assert not transcription_running("job-a", 0)


def test_the_vision_stages_run_lower_only_beside_transcription(
    monkeypatch: pytest.MonkeyPatch,
    workspaces: Workspaces,
    ref: WorkspaceRef,
    sample_in_workspace: str,
    models: Models,
) -> None:
    """What each stage asks of ``run_lowered``: the scene pass from its input, OCR from
    whether the item is being transcribed when it starts."""
    asked: list[tuple[str, int]] = []

    def recording(work, steps, name):  # type: ignore[no-untyped-def]
        asked.append((name, steps))
        return work()

    monkeypatch.setattr(activities.scenes, "run_lowered", recording)
    monkeypatch.setattr(activities.ocr, "run_lowered", recording)
    scenes = SceneActivities(workspaces, 27.0, 15, niceness=4).detect_scenes
    for beside in (True, False):
        result = ActivityEnvironment().run(
            scenes,
            DetectScenesInput(
                workspace=ref,
                media_file=sample_in_workspace,
                keyframes=True,
                transcription_beside=beside,
            ),
        )
    ocr = OcrActivities(workspaces, models.ocr, niceness=4).ocr_keyframes
    keyframes = (result.keyframes or [])[:1]
    with Transcribing(ref.job_id, ref.item_index):
        ActivityEnvironment().run(ocr, OcrInput(workspace=ref, keyframes=keyframes))
    ActivityEnvironment().run(ocr, OcrInput(workspace=ref, keyframes=keyframes))
    assert asked == [("scene-pass", 4), ("scene-pass", 0), ("ocr", 4), ("ocr", 0)]
