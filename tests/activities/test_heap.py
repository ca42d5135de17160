from __future__ import annotations

import threading

import pytest

from activities.heap import HeapReturn


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
