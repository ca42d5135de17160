"""Freed heap memory handed back to the OS once a worker's CPU stages are all done.

The worker keeps freed memory in glibc's heap while it works (``worker.tune_malloc``),
so that Whisper's next encoder window, the next key frames and the next OCR read
reuse pages already mapped instead of faulting in fresh ones. When the last CPU stage
running in the process ends, ``malloc_trim`` returns what is free, and ``SecondArena``
what lies free at the top of glibc's second arena, so an idle worker holds no more
than its models and buffers in use."""

from __future__ import annotations

import ctypes
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc
        return None


#: mallopt's parameter number for the trim threshold, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
#: The trim threshold for the moment the second arena is trimmed, and the block freed
#: then: what lies free on top of that arena's heap beyond glibc's pad goes back.
TRIM_NOW = 128 * 1024


class SecondArena:
    """Hands back the free memory at the top of glibc's second malloc arena (the worker
    caps arenas at two), from a thread of its own that allocates from that arena.

    ``malloc_trim`` returns the free top of the main heap and the free pages inside
    every arena, but not the free top of another arena's heap. glibc returns that only
    when a block freed in that arena leaves more than the trim threshold on top, and
    the worker keeps the threshold at 256 MiB while it works, past the most a heap of
    another arena can hold (64 MiB). So up to 64 MiB stayed resident after a job,
    depending on which stage's thread had allocated there last: the soak's worker went
    764 → 815 → 763 MiB from one video to the next (docs/benchmarks.md). Asked to
    ``trim``, the thread lowers the threshold to ``TRIM_NOW``, frees a block of its
    arena, which has glibc shrink that arena's heap, and sets the threshold back.

    Linux and glibc only: it finds its arena by comparing a block's address with the
    program break, below which the main heap lies."""

    def __init__(self, keep_threshold: int) -> None:
        libc = ctypes.CDLL(None)
        self._malloc = libc.malloc
        self._malloc.restype = ctypes.c_void_p
        self._malloc.argtypes = [ctypes.c_size_t]
        self._free = libc.free
        self._free.argtypes = [ctypes.c_void_p]
        self._sbrk = libc.sbrk
        self._sbrk.restype = ctypes.c_void_p
        self._sbrk.argtypes = [ctypes.c_ssize_t]
        self._mallopt = libc.mallopt
        self._keep = keep_threshold
        self._requests: queue.SimpleQueue[threading.Event] = queue.SimpleQueue()

    def in_main_heap(self) -> bool:
        """Whether the calling thread allocates from the main heap."""
        block = self._malloc(TRIM_NOW)
        try:
            return bool(block) and block < (self._sbrk(0) or 0)
        finally:
            self._free(block)

    def start(self, tries: int = 4) -> bool:
        """Starts the thread. glibc hands a new thread the arena it picks; where none of
        ``tries`` threads got the second one (a process with one arena), returns False
        and leaves none running."""
        for _ in range(tries):
            placed = threading.Event()
            on_second: list[bool] = []
            threading.Thread(
                target=self._run, args=(placed, on_second), name="heap-second-arena", daemon=True
            ).start()
            placed.wait(10)
            if on_second == [True]:
                return True
        return False

    def _run(self, placed: threading.Event, on_second: list[bool]) -> None:
        on_second.append(not self.in_main_heap())
        placed.set()
        if not on_second[0]:
            return  # the main heap, which malloc_trim returns
        while True:
            trimmed = self._requests.get()
            try:
                self._mallopt(M_TRIM_THRESHOLD, TRIM_NOW)
                self._free(self._malloc(TRIM_NOW))
            finally:
                self._mallopt(M_TRIM_THRESHOLD, self._keep)
                trimmed.set()

    def trim(self, timeout: float = 5.0) -> bool:
        """Trims the second arena's top; whether that was done within ``timeout``."""
        trimmed = threading.Event()
        self._requests.put(trimmed)
        return trimmed.wait(timeout)


class HeapReturn:
    """Counts the CPU stages running in this process; ``trim`` runs as the last ends,
    and so does ``second_arena``'s, where the worker started one."""

    def __init__(self, trim: Callable[[int], int] | None) -> None:
        self._trim = trim
        self._running = 0
        self._lock = threading.Lock()
        self.second_arena: SecondArena | None = None

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
                if self.second_arena is not None:
                    self.second_arena.trim()


#: The process's one counter, shared by every CPU stage.
HEAP = HeapReturn(_malloc_trim())
