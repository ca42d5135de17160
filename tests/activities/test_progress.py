from __future__ import annotations

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment

from activities.progress import reraise_if_cancelled


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
