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


def test_progress_that_stands_still_says_for_how_long(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Reported again with nothing more done, the progress keeps the time it last
    moved; once that is a while, the beats say how long, and a move clears it."""
    monkeypatch.setattr(progress, "KEEP_ALIVE_SECONDS", 0.1)
    monkeypatch.setattr(progress, "WAITING_AFTER_SECONDS", 1.0)
    env = RecordingEnvironment()
    at = ActivityProgress(stage=Stage.DOWNLOAD, done=5 * 1024**2, total=20 * 1024**2, unit="bytes")

    def step() -> None:
        with KeepAlive() as keep_alive:
            keep_alive.report(at)
            time.sleep(0.7)
            keep_alive.report(at)  # a hook that runs again with nothing new
            time.sleep(1.6)
            keep_alive.report(at.model_copy(update={"done": at.done + 1}))
            time.sleep(0.3)

    env.run(step)
    waiting = [beat.waiting_s for beat in env.heartbeats]
    assert waiting[0] is None and 2 in waiting, waiting
    stood_still = next(beat for beat in env.heartbeats if beat.waiting_s == 2)
    assert stood_still.describe() == "5 MiB of 20 MiB; no progress for 2 s"
    moved = env.heartbeats.index(next(b for b in env.heartbeats if b.done > at.done))
    assert all(beat.waiting_s is None for beat in env.heartbeats[moved:]), waiting
