"""Running a stage's CPU work at a lower priority than the worker's other threads.

An item's transcription runs beside its vision stages on the same CPUs. Whisper's
decoding is one thread that cannot spread out, so where the two share the CPUs evenly
it falls behind and ends last, alone, with the other CPUs idle. The vision stages can
use any CPU left over. Run at a lower priority, they take what transcription leaves,
and the item ends sooner (``docs/benchmarks.md``, session 26).

Linux keeps a priority (a nice value) per thread, and a thread that lowers its own can
raise it again only with a privilege a worker should not need. So the work runs on a
thread of its own, which lowers itself and then ends; the threads it starts (FFmpeg's,
the OCR readers) inherit its priority.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Seconds between the waiting thread's looks at the worker thread: a cancel reaches a
#: thread-pool activity as an exception raised in its thread between two steps of
#: Python, which a wait with no end would hold back.
WAIT_STEP_S = 0.25

#: The lowest priority there is (the highest nice value).
LOWEST = 19


def run_lowered(work: Callable[[], T], steps: int, name: str) -> T:
    """``work()``, on a thread of its own (named ``name``) ``steps`` nice steps below the
    calling thread, in the caller's context (the activity's, for heartbeats and
    cancels). ``steps`` 0, or a system other than Linux, runs it here.

    Its result or exception is the caller's. If the caller is interrupted (the SDK
    raises a cancel in it), it waits for the work to stop first: the work sees the
    cancel at its next progress report (``activities.progress.report``), and a
    workspace is never cleaned up under a stage still writing to it.
    """
    # Elsewhere a nice value is the whole process's, or thread ids are not what
    # ``setpriority`` takes.
    if steps <= 0 or not sys.platform.startswith("linux"):
        return work()
    context = contextvars.copy_context()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def lowered() -> None:
        # A new thread starts at its creator's priority. Refused, the work runs as it
        # would have, at the caller's.
        lower_this_thread(steps)
        try:
            outcome.append(context.run(work))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=lowered, name=name, daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(WAIT_STEP_S)
    except BaseException:
        thread.join()
        raise
    if failure:
        raise failure[0]
    return outcome[0]


def lower_this_thread(steps: int) -> None:
    """Runs the calling thread (and the threads it starts from now on) ``steps`` nice
    steps below where it runs, at most at ``LOWEST``. Refused, or on a system other
    than Linux, it stays where it is."""
    if steps <= 0 or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError):
        tid = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, tid, min(LOWEST, os.getpriority(os.PRIO_PROCESS, tid) + steps)
        )


_lock = threading.Lock()
_transcribing: dict[tuple[str, int], int] = {}


class Transcribing:
    """Marks an item's transcription as running in this process while the block runs,
    for ``transcription_running``. An item's stages all run in the worker that holds
    its files."""

    def __init__(self, job_id: str, item_index: int) -> None:
        self._key = (job_id, item_index)

    def __enter__(self) -> Transcribing:
        with _lock:
            _transcribing[self._key] = _transcribing.get(self._key, 0) + 1
        return self

    def __exit__(self, *exc: object) -> None:
        with _lock:
            left = _transcribing.pop(self._key) - 1
            if left:
                _transcribing[self._key] = left


def transcription_running(job_id: str, item_index: int) -> bool:
    """Whether this process is transcribing the item now."""
    with _lock:
        return (job_id, item_index) in _transcribing
