"""`reelscope`'s printing of a result."""

from __future__ import annotations

import pytest

from reelscope.cli import print_result


def test_audio_only_items_and_animated_images_print_as_such(
    capsys: pytest.CaptureFixture[str],
) -> None:
    metadata = {"duration_s": 20.0, "width": None, "height": None, "fps": None}
    print_result(
        {
            "job_id": "job-1",
            "state": "succeeded",
            "items": [
                {
                    "index": 0,
                    "source_url": "http://h/voice.m4a",
                    "state": "succeeded",
                    "kind": "video",
                    "metadata": {**metadata, "video_codec": None, "audio_codec": "aac"},
                },
                {
                    "index": 1,
                    "source_url": "http://h/silent.mp4",
                    "state": "succeeded",
                    "kind": "video",
                    "metadata": {
                        **metadata,
                        "width": 640,
                        "height": 360,
                        "fps": 30.0,
                        "video_codec": "av1",
                        "audio_codec": None,
                    },
                },
                {
                    "index": 2,
                    "source_url": "http://h/loop.gif",
                    "state": "succeeded",
                    "kind": "image",
                    "metadata": {
                        **metadata,
                        "duration_s": 6.0,
                        "width": 480,
                        "height": 270,
                        "video_codec": "gif",
                    },
                },
            ],
        }
    )
    out = capsys.readouterr().out
    assert "image 480x270 gif, animated, 6.0 s" in out
    assert "20.0 s, audio only, aac" in out
    assert "20.0 s, 640x360 @ 30.0 fps, video av1, audio -" in out
    assert "None" not in out
