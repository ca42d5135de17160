"""Freed heap memory handed back to the OS once a worker's CPU stages are all done.

The worker keeps freed memory in glibc's heap while it works (``worker.tune_malloc``),
so that Whisper's next encoder window, the next key frames and the next OCR read
reuse pages already mapped instead of faulting in fresh ones. When the last CPU stage
running in the process ends, ``malloc_trim`` returns what is free, so an idle worker
holds no more than its models and buffers in use."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc
        return None


class HeapReturn:
    """Counts the CPU stages running in this process; ``trim`` runs as the last ends."""

    def __init__(self, trim: Callable[[int], int] | None) -> None:
        self._trim = trim
        self._running = 0
        self._lock = threading.Lock()

    @property
    def running(self) -> int:
        return self._running

    @contextmanager
    def stage(self) -> Iterator[None]:
        """Around a CPU stage's body, however it ends."""
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                idle = self._running == 0
            # Outside the lock: a stage starting now only finds less memory kept.
            if idle and self._trim is not None:
                self._trim(0)


#: The process's one counter, shared by every CPU stage.
HEAP = HeapReturn(_malloc_trim())
