from __future__ import annotations

import time

from activities import progress
from activities.progress import KeepAlive
from models.jobs import Stage
from models.pipeline import ActivityProgress
from tests.activities.conftest import RecordingEnvironment


def test_keep_alive_heartbeats_the_last_progress_while_a_step_runs(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A step that reports once and then works for a while without reporting still
    heartbeats, with the progress it last reported; nothing is sent after the block."""
    monkeypatch.setattr(progress, "KEEP_ALIVE_SECONDS", 0.1)
    env = RecordingEnvironment()
    first = ActivityProgress(stage=Stage.TRANSCRIBE, done=3, unit="segments")

    def step() -> int:
        with KeepAlive() as keep_alive:
            time.sleep(0.35)  # before anything is reported: nothing to send
            keep_alive.report(first)
            time.sleep(0.55)
        return len(env.heartbeats)

    count_at_end = env.run(step)
    assert count_at_end >= 4, env.heartbeats
    assert all(beat == first for beat in env.heartbeats)
    time.sleep(0.3)
    assert len(env.heartbeats) == count_at_end
