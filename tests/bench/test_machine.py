from __future__ import annotations

import os
from pathlib import Path

from bench.machine import describe

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Example Xeon 9000
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_int8 amx_tile
processor\t: 1
model name\t: Example Xeon 9000
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_int8 amx_tile
"""


def test_names_the_cpu_model_its_usable_cpus_and_the_features_the_models_use(
    tmp_path: Path,
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)

    line = describe(cpuinfo)

    assert line.startswith("Example Xeon 9000, ")
    assert f"{len(os.sched_getaffinity(0))} CPUs" in line
    assert line.endswith("AVX2, AVX-512, VNNI, AMX")


def test_leaves_out_features_the_cpu_lacks(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO.replace(" avx512f avx512_vnni amx_int8", ""))

    assert describe(cpuinfo).endswith("CPUs, AVX2")


def test_a_machine_without_cpuinfo_still_gets_a_line(tmp_path: Path) -> None:
    line = describe(tmp_path / "missing")

    assert "CPUs" in line
    assert "AVX" not in line
