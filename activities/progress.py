"""Heartbeats with progress details, reading them back on a retry, and keeping a
cancel a cancel."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from temporalio import activity
from temporalio.exceptions import CancelledError

from models.jobs import Stage
from models.pipeline import ActivityProgress


def log() -> structlog.stdlib.BoundLogger:
    """A logger bound to the running activity: job, workflow, run, activity type, attempt."""
    info = activity.info()
    workflow_id = info.workflow_id or ""
    return structlog.get_logger("reelscope.activity").bind(
        # Item workflows are '<job id>.<index>'; job workflows are the job id.
        job_id=workflow_id.rsplit(".", 1)[0] if "." in workflow_id else workflow_id,
        workflow_id=workflow_id,
        run_id=info.workflow_run_id,
        activity=info.activity_type,
        activity_id=info.activity_id,
        attempt=info.attempt,
    )


def report(progress: ActivityProgress) -> None:
    """Heartbeat ``progress``, and stop here if the activity has been cancelled.

    The SDK batches heartbeats, so calling this per unit of work is cheap. A cancel
    reaches a thread-pool activity as an exception raised in its thread, which a
    library's ``except Exception`` may swallow; the cancel flag set by the heartbeat
    response is not lost that way, so every unit of work checks it."""
    if activity.is_cancelled():
        raise CancelledError("activity cancelled")
    activity.heartbeat(progress)


def reraise_if_cancelled(exc: BaseException) -> None:
    """Call first in an ``except`` that turns errors into typed ones. The SDK cancels a
    thread-pool activity by raising ``CancelledError`` inside it, possibly deep in a
    library that wraps it: a cancel must stay a cancel, not become 'CorruptMedia'."""
    if isinstance(exc, CancelledError):
        raise exc
    if activity.is_cancelled():
        raise CancelledError("activity cancelled") from exc


@contextmanager
def cancellation_wins() -> Iterator[None]:
    """Around an activity's body: once the activity is cancelled, whatever exception
    ends it (libraries may catch the SDK's ``CancelledError`` and raise their own)
    is reported as the cancellation it is."""
    try:
        yield
    except Exception as exc:
        reraise_if_cancelled(exc)
        raise
    # Finished while the cancel was on its way: the caller asked to stop, so the result
    # is dropped and the workflow sees a cancellation, not a success it did not want.
    if activity.is_cancelled():
        raise CancelledError("activity cancelled")


def resumed(stage: Stage) -> ActivityProgress | None:
    """The last progress a previous attempt of this activity heartbeated, if any."""
    details = activity.info().heartbeat_details
    if not details:
        return None
    try:
        progress = ActivityProgress.model_validate(details[0])
    except ValueError:
        return None
    return progress if progress.stage == stage else None


#: Seconds between the heartbeats ``KeepAlive`` sends on its own.
KEEP_ALIVE_SECONDS = 1.0
#: A step whose progress has not moved for this long says so in its heartbeats
#: (``ActivityProgress.waiting_s``), and the status with them.
WAITING_AFTER_SECONDS = 5.0


class KeepAlive:
    """For a step that reports progress only now and then (a Whisper window can take
    seconds on a busy machine, and its VAD pass runs over the whole file before the
    first segment): while the block runs, a thread of its own heartbeats the last
    progress ``report``ed through it every ``KEEP_ALIVE_SECONDS``. A short heartbeat
    timeout then tells a dead worker from a slow step. It stops with the block, and
    with the process, so a worker that is gone still stops heartbeating."""

    def __init__(self) -> None:
        self._last: ActivityProgress | None = None
        #: When the reported progress last moved (``time.monotonic``).
        self._moved_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # The activity's context, so that the SDK knows whose heartbeat it is.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._beat,), name="keep-alive", daemon=True
        )

    def __enter__(self) -> KeepAlive:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, progress: ActivityProgress) -> None:
        """``report`` it, and keep it to heartbeat again. Progress that has not moved
        (the same stage, the same amount done) keeps the time it last moved; a count
        that starts again (a download's retry) has moved."""
        with self._lock:
            last, self._last = self._last, progress
            if last is None or (last.stage, last.done) != (progress.stage, progress.done):
                self._moved_at = time.monotonic()
            progress = self._waiting(progress)
        report(progress)

    def _waiting(self, progress: ActivityProgress) -> ActivityProgress:
        """``progress``, with how long it has not moved once that is a while."""
        still = time.monotonic() - self._moved_at
        if still < WAITING_AFTER_SECONDS:
            return progress
        return progress.model_copy(update={"waiting_s": int(still)})

    def _beat(self) -> None:
        while not self._stop.wait(KEEP_ALIVE_SECONDS):
            with self._lock:
                last = self._last
                beat = self._waiting(last) if last is not None else None
            if beat is not None:
                activity.heartbeat(beat)
