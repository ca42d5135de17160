"""One line that says which machine a bench ran on, printed above each bench's table.

The same code balances differently on different CPUs: on the Xeons of sessions 18-22
the vision path was the longer one at 720p, on a Xeon with AMX (session 24) transcription
was (docs/benchmarks.md). A table is only comparable with one from the same kind of CPU.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: CPU features that change how fast the models run, as /proc/cpuinfo names them, and
#: how the line names them. ONNX Runtime and CTranslate2 pick their int8 kernels by these.
FEATURES = (
    ("avx2", "AVX2"),
    ("avx512f", "AVX-512"),
    ("avx512_vnni", "VNNI"),
    ("amx_int8", "AMX"),
)


def describe(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """``<CPU model>, <n> CPUs usable (<host> on the host), <features>``; side effect:
    reads ``cpuinfo`` where there is one."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
            if flags:  # the first CPU's block holds both
                break
    except OSError:
        pass
    # Its affinity, which may leave out some of the host's CPUs.
    usable, host = len(os.sched_getaffinity(0)), os.cpu_count() or 1
    cpus = f"{usable} CPUs" if usable == host else f"{usable} CPUs usable ({host} on the host)"
    named = [name for flag, name in FEATURES if flag in flags]
    return ", ".join([model or "unknown CPU", cpus, *named])
