from __future__ import annotations

from pathlib import Path

from bench.pipeline import decode_alone


def test_decoding_alone_decodes_every_frame_of_the_video(media_dir: Path) -> None:
    # silent.mp4: 3 s of a moving test pattern at 25 fps (tests/conftest.py).
    seconds, frames = decode_alone(media_dir / "silent.mp4")

    assert frames == 75
    assert seconds > 0
