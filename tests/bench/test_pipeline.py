from __future__ import annotations

from pathlib import Path

import pytest

from bench.pipeline import decode_alone, sharing_table


def test_decoding_alone_decodes_every_frame_of_the_video(media_dir: Path) -> None:
    # silent.mp4: 3 s of a moving test pattern at 25 fps (tests/conftest.py).
    seconds, frames = decode_alone(media_dir / "silent.mp4")

    assert frames == 75
    assert seconds > 0


def test_the_sharing_table_splits_a_over_b_into_its_two_factors() -> None:
    # One clip, two runs: (a, b, c) each, and (b') of each run.
    row = {
        "size": "720p",
        "a": 1.8,
        "b": 1.2,
        "together": 1.5,
        "runs": [(1.8, 1.2, 6.0), (2.0, 1.3, 6.5)],
        "together_runs": [1.5, 1.6],
    }

    lines = sharing_table([row], cpus=2)

    assert "all 2 CPUs" in lines[1]
    cells = [c.strip() for c in lines[-1].strip("|").split("|")]
    assert cells == ["720p", "1.80", "1.20", "1.50", "1.250", "1.200", "1.200, 1.250", "1.500"]
    # b'/b × a/b' = a/b
    assert float(cells[4]) * float(cells[5]) == pytest.approx(float(cells[7]))
