from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import Worker

from worker import DiskFullReported

ROOT = Path(__file__).resolve().parents[1]

#: In a process of its own: the priority it ends at, and that of a thread started after.
PRIORITIES = """
import json, os, sys, threading
from worker import lower_cpu_priority
lower_cpu_priority(int(sys.argv[1]))
seen = []
thread = threading.Thread(
    target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
)
thread.start()
thread.join()
lower_cpu_priority(0)  # never raised back
print(json.dumps([os.nice(0), seen[0]]))
"""


def run_json(script: str, *args: str, env: dict[str, str] | None = None) -> Any:
    """Runs ``script`` in a process of its own; the JSON its last line prints."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def priorities(niceness: int) -> list[int]:
    return list(run_json(PRIORITIES, str(niceness)))


def test_worker_runs_its_stages_at_a_lower_cpu_priority() -> None:
    """The worker's threads, started after, yield the CPUs to the API and Temporal;
    a worker started at a lower priority already keeps it."""
    started_at = os.nice(0)
    wanted = max(started_at, 7)
    assert priorities(7) == [wanted, wanted]
    assert priorities(0) == [started_at, started_at]


#: In a process of its own: a CPU stage allocates, fills and frees a block the size of
#: one of Whisper's encoder buffers again and again (as CTranslate2 does per window),
#: counting the page faults that costs; then the stage ends, as the last one running.
REUSE = """
import ctypes, json, resource, sys
from activities.heap import HEAP
from worker import malloc_settings, tune_malloc
tune_malloc(malloc_settings(sys.argv[1] == "keep"))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
BLOCK = 54 * 1024 * 1024

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

def fill_and_free():
    block = libc.malloc(BLOCK)
    ctypes.memset(block, 1, BLOCK)
    libc.free(block)

out = {}
with HEAP.stage():
    fill_and_free()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        fill_and_free()
    out["faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    out["rss_working"] = rss_mib()
out["rss_idle"] = rss_mib()
print(json.dumps(out))
"""


def reuse(mode: str) -> dict[str, float]:
    return dict(run_json(REUSE, mode))


def test_the_worker_reuses_freed_memory_while_it_works_and_returns_it_when_idle() -> None:
    """A large block freed and allocated again comes back without faulting its pages
    in afresh, and what the stages freed leaves the process when the last one ends."""
    pages = 5 * 54 * 1024 * 1024 // 4096
    kept = reuse("keep")
    assert kept["faults"] < pages // 20, kept
    # Freed but kept while the stage runs; handed back once it ends.
    assert kept["rss_working"] - kept["rss_idle"] > 40, kept
    # glibc's default maps each such block on its own and unmaps it when freed.
    unmapped = reuse("return")
    assert unmapped["faults"] > kept["faults"], unmapped


SETTINGS_APPLIED = """
import json
from worker import tune_malloc
print(json.dumps(tune_malloc()))
"""


def test_malloc_settings_an_operator_chose_win() -> None:
    env = {
        **os.environ,
        "MALLOC_ARENA_MAX": "4",
        "GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1048576",
    }
    assert run_json(SETTINGS_APPLIED, env=env) == ["MALLOC_MMAP_MAX_"]


#: In a process of its own: a live object and a cycle of garbage made at start-up,
#: then the freeze, then an object made after it.
FREEZE = """
import gc, json, weakref
from worker import freeze_startup_objects

class Node:
    pass

kept = Node()
cycle = Node()
cycle.me = cycle
cycle_gone = weakref.ref(cycle)
del cycle
frozen = freeze_startup_objects()
later = Node()
walked = gc.get_objects()
print(json.dumps({
    "frozen": frozen,
    "freeze_count": gc.get_freeze_count(),
    "cycle_collected": cycle_gone() is None,
    "kept_walked": any(o is kept for o in walked),
    "later_walked": any(o is later for o in walked),
    "walked": len(walked),
}))
"""


def test_start_up_objects_leave_the_collectors_walk_and_start_up_garbage_is_freed() -> None:
    """What lives at start-up (the worker module and all it imports) is no longer walked
    by each full collection; garbage from start-up is freed first, not kept for good;
    objects made afterwards are collected as before."""
    seen = run_json(FREEZE)
    assert seen["cycle_collected"], seen
    assert seen["frozen"] == seen["freeze_count"] > 10_000, seen
    assert not seen["kept_walked"], seen
    assert seen["later_walked"], seen
    assert seen["walked"] < seen["frozen"] // 10, seen


#: In a process of its own: the thread counts of the BLAS libraries loaded, before and
#: after, and a product computed afterwards.
BLAS = """
import json
import numpy as np
from threadpoolctl import threadpool_info
from worker import limit_blas_threads

def blas_threads():
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

before = blas_threads()
libraries = limit_blas_threads()
a = np.arange(64, dtype=np.float32).reshape(8, 8)
print(json.dumps({
    "before": before,
    "libraries": libraries,
    "after": blas_threads(),
    "product_right": bool(np.allclose(a @ np.eye(8, dtype=np.float32), a)),
}))
"""


def test_every_blas_library_is_left_one_thread_and_still_computes() -> None:
    """numpy's OpenBLAS (and any other BLAS loaded) ends on one thread, whatever the
    environment asked for, so no idle BLAS thread spins beside the stages."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "4"}
    seen = run_json(BLAS, env=env)
    assert seen["libraries"] == len(seen["before"]) >= 1, seen
    assert seen["after"] == [1] * seen["libraries"], seen
    assert seen["product_right"], seen


@activity.defn(name="write_to_a_full_disk")
def write_to_a_full_disk(path: str) -> None:
    """Writes where the kernel's ``/dev/full`` answers every write as a full disk does;
    for a path ending in ``.jpg``, blames the picture, as a stage that writes what it
    has just read might."""
    try:
        Path(path).write_bytes(b"\0" * 4096)
    except OSError:
        if not path.endswith(".jpg"):
            raise
        raise ApplicationError(
            "probe: not a readable image", type="CorruptMedia", non_retryable=True
        ) from None


@workflow.defn(name="FullDisk", sandboxed=False)
class FullDiskWorkflow:
    @workflow.run
    async def run(self, path: str) -> list[Any]:
        try:
            await workflow.execute_activity(
                write_to_a_full_disk,
                path,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as err:
            assert isinstance(err.cause, ApplicationError)
            return [err.cause.type, err.cause.message, err.cause.non_retryable]
        return []


@pytest.mark.parametrize("name", ["full", "full.jpg"])
async def test_a_full_disk_is_reported_as_the_workers_whatever_was_writing(
    temporal_client: Client, tmp_path: Path, name: str
) -> None:
    """An activity that failed on a full disk, whether with the disk's ``OSError`` or
    with an error of its own raised while handling it, reaches the workflow as
    ``DiskFull``, with the space left where the worker keeps its files; it may be
    retried."""
    full = tmp_path / name
    full.symlink_to("/dev/full")
    queue = f"test-{uuid.uuid4().hex[:10]}"
    with ThreadPoolExecutor(2) as pool:
        async with Worker(
            temporal_client,
            task_queue=queue,
            workflows=[FullDiskWorkflow],
            activities=[write_to_a_full_disk],
            activity_executor=pool,
            interceptors=[DiskFullReported(tmp_path)],
        ):
            kind, message, final = await temporal_client.execute_workflow(
                FullDiskWorkflow.run, str(full), id=queue, task_queue=queue
            )
    assert kind == "DiskFull"
    assert message.startswith("write_to_a_full_disk: the worker's disk is full (")
    assert f"free at {tmp_path})" in message
    assert "free space there" in message
    assert final is False


@pytest.mark.parametrize(
    "applied", [[], ["MALLOC_ARENA_MAX"], ["MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_"]]
)
def test_the_second_arena_is_left_as_an_operator_set_glibc(applied: list[str]) -> None:
    # With the operator's own arena cap or trim threshold, the worker does not lower
    # and restore a threshold it did not choose.
    from activities.heap import HEAP
    from worker import trim_second_arena_when_idle

    assert trim_second_arena_when_idle(applied) is False
    assert HEAP.second_arena is None
