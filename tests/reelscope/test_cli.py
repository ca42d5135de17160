"""`reelscope`'s printing of a result, and its serving of files on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from reelscope.cli import print_result, serve_files


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


def test_served_files_are_reachable_and_nothing_beside_them(tmp_path: Path) -> None:
    clip = tmp_path / "clip one.mp4"
    clip.write_bytes(b"video bytes")
    (tmp_path / "secret.txt").write_text("not for the worker")
    server, urls = serve_files([clip, clip])
    try:
        assert len(urls) == 2 and urls[0] == urls[1] and urls[0].endswith("/clip%20one.mp4")
        assert httpx.get(urls[0]).content == b"video bytes"
        base, token = urls[0].rsplit("/", 2)[:2]
        for other in (f"{base}/{token}/secret.txt", f"{base}/{token}/", f"{base}/secret.txt"):
            assert httpx.get(other).status_code == 404, other
        # Changed since, the same file gets another link: results are cached by link.
        os.utime(clip, ns=(1, 1))
        _, again = serve_files([clip])
        assert again[0].rsplit("/", 2)[1] != token
    finally:
        server.shutdown()
        server.server_close()
