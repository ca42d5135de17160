from __future__ import annotations

import contextlib

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment

from activities.progress import cancellation_wins, report, reraise_if_cancelled
from models.jobs import Stage
from models.pipeline import ActivityProgress


def converting_activity(env: ActivityEnvironment):  # type: ignore[no-untyped-def]
    @activity.defn
    def convert() -> None:
        try:
            env.cancel()  # the cancel lands while a library call is running …
            raise RuntimeError("… which then fails with some other error")
        except Exception as exc:
            reraise_if_cancelled(exc)
            raise ApplicationError("would be CorruptMedia", type="CorruptMedia") from exc

    return convert


def test_a_cancel_inside_a_broad_except_stays_a_cancel() -> None:
    env = ActivityEnvironment()
    with pytest.raises(CancelledError):
        env.run(converting_activity(env))


def test_without_a_cancel_the_error_is_converted() -> None:
    @activity.defn
    def convert() -> None:
        try:
            raise RuntimeError("broken audio")
        except Exception as exc:
            reraise_if_cancelled(exc)
            raise ApplicationError("corrupt", type="CorruptMedia") from exc

    with pytest.raises(ApplicationError):
        ActivityEnvironment().run(convert)


def test_a_swallowed_cancel_stops_the_next_unit_of_work() -> None:
    env = ActivityEnvironment()
    units_done: list[int] = []

    @activity.defn
    def work() -> None:
        for unit in range(5):
            if unit == 2:
                # A library swallows what the SDK raised in its thread.
                with contextlib.suppress(BaseException):
                    env.cancel()
            report(ActivityProgress(stage=Stage.TRANSCRIBE, done=unit))
            units_done.append(unit)

    with pytest.raises(CancelledError):
        env.run(work)
    assert units_done == [0, 1]


def test_work_that_finishes_after_a_cancel_ends_as_cancelled() -> None:
    env = ActivityEnvironment()

    @activity.defn
    def work() -> str:
        with cancellation_wins():
            with contextlib.suppress(BaseException):
                env.cancel()
            return "a result nobody wants any more"

    with pytest.raises(CancelledError):
        env.run(work)


def test_uncancelled_work_returns_its_result() -> None:
    @activity.defn
    def work() -> str:
        with cancellation_wins():
            report(ActivityProgress(stage=Stage.OCR, done=1))
            return "text"

    assert ActivityEnvironment().run(work) == "text"
