from __future__ import annotations

import threading

import pytest

from activities.heap import HeapReturn, SecondArena


def test_freed_memory_goes_back_only_when_the_last_stage_ends() -> None:
    trims: list[int] = []
    heap = HeapReturn(lambda pad: trims.append(pad) or 1)
    first_in = threading.Event()
    release = threading.Event()

    def long_stage() -> None:
        with heap.stage():
            first_in.set()
            release.wait(10)

    thread = threading.Thread(target=long_stage)
    thread.start()
    assert first_in.wait(10)
    with pytest.raises(RuntimeError), heap.stage():
        assert heap.running == 2
        raise RuntimeError("a stage that fails still counts as ended")
    assert trims == []  # the long stage still runs and may reuse what was freed
    release.set()
    thread.join(10)
    assert trims == [0]
    assert heap.running == 0


def test_without_glibc_nothing_is_trimmed() -> None:
    heap = HeapReturn(None)
    with heap.stage():
        pass
    assert heap.running == 0


class CountingArena(SecondArena):
    def __init__(self, order: list[str]) -> None:  # no thread, no libc
        self.order = order

    def trim(self, timeout: float = 5.0) -> bool:
        self.order.append("second arena")
        return True


def test_the_second_arena_is_trimmed_after_malloc_trim_when_the_last_stage_ends() -> None:
    order: list[str] = []
    heap = HeapReturn(lambda pad: order.append("malloc_trim") or 1)
    heap.second_arena = CountingArena(order)
    with heap.stage():
        with heap.stage():
            pass
        assert order == []
    assert order == ["malloc_trim", "second arena"]
