from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def priorities(niceness: int) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", PRIORITIES, str(niceness)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return list(json.loads(out.strip().splitlines()[-1]))


def test_worker_runs_its_stages_at_a_lower_cpu_priority() -> None:
    """The worker's threads, started after, yield the CPUs to the API and Temporal;
    a worker started at a lower priority already keeps it."""
    started_at = os.nice(0)
    wanted = max(started_at, 7)
    assert priorities(7) == [wanted, wanted]
    assert priorities(0) == [started_at, started_at]
