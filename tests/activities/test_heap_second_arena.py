"""``SecondArena`` with glibc's own malloc, in a process of its own: the worker's malloc
settings are process-wide and would change the memory of every other test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A worker's malloc set-up; a thread allocating from the second arena frees a 48 MiB
# block it wrote to; then the process's RSS after malloc_trim alone, and after the
# second arena's trim as well.
SCRIPT = """
import ctypes, json, threading
from activities.heap import SecondArena, _malloc_trim
from worker import KEEP_FREED_BYTES, tune_malloc

def rss_mib():
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

applied = tune_malloc()
arena = SecondArena(keep_threshold=KEEP_FREED_BYTES)
started = arena.start()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 48 * 1024 * 1024

def allocate(placed):
    placed.append(not arena.in_main_heap())
    if placed[0]:
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        libc.free(block)

for _ in range(16):
    placed = []
    thread = threading.Thread(target=allocate, args=(placed,))
    thread.start()
    thread.join()
    if placed[0]:
        break
before = rss_mib()
_malloc_trim()(0)
after_malloc_trim = rss_mib()
trimmed = arena.trim()
after = rss_mib()
print(json.dumps({
    "applied": applied, "started": started, "on_second": placed[0], "trimmed": trimmed,
    "before": before, "after_malloc_trim": after_malloc_trim, "after": after,
}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, /proc")
def test_the_free_top_of_the_second_arena_goes_back_when_trimmed() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.splitlines()[-1])
    assert {"MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_"} <= set(seen["applied"])
    assert seen["started"] and seen["on_second"] and seen["trimmed"]
    # malloc_trim alone leaves the freed 48 MiB resident at the top of that arena ...
    assert seen["before"] - seen["after_malloc_trim"] < 8
    # ... and the second arena's trim hands it back.
    assert seen["after_malloc_trim"] - seen["after"] > 40
