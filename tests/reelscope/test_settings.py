from __future__ import annotations

import pytest

from reelscope import settings as settings_module
from reelscope.settings import Settings


@pytest.mark.parametrize(
    ("cpus", "whisper", "decode", "ocr", "ocr_frames"),
    [(1, 1, 1, 1, 1), (2, 1, 2, 2, 2), (4, 2, 4, 4, 2), (8, 4, 8, 8, 2), (32, 4, 8, 8, 2)],
)
def test_thread_defaults_split_the_cpus_between_a_jobs_two_paths(
    monkeypatch: pytest.MonkeyPatch, cpus: int, whisper: int, decode: int, ocr: int, ocr_frames: int
) -> None:
    """Transcription runs beside the scene pass, so Whisper gets half the CPUs. The
    scene pass may decode on all of them (how many it takes depends on the video) and
    OCR, after it, uses them all, two frames at once. Counted on the CPUs this process
    may use, at most 8."""
    monkeypatch.setattr(settings_module.os, "sched_getaffinity", lambda pid: set(range(cpus)))
    for name in ("WHISPER_THREADS", "SCENE_DECODE_THREADS", "OCR_THREADS", "OCR_FRAMES_AT_ONCE"):
        monkeypatch.delenv(f"REELSCOPE_{name}", raising=False)
    settings = Settings()
    assert (
        settings.whisper_threads,
        settings.scene_decode_threads,
        settings.ocr_threads,
        settings.ocr_frames_at_once,
    ) == (whisper, decode, ocr, ocr_frames)


def test_thread_counts_can_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELSCOPE_WHISPER_THREADS", "6")
    monkeypatch.setenv("REELSCOPE_SCENE_DECODE_THREADS", "0")
    settings = Settings()
    assert (settings.whisper_threads, settings.scene_decode_threads) == (6, 0)
    monkeypatch.setenv("REELSCOPE_SCENE_DECODE_THREADS", "-1")
    with pytest.raises(ValueError, match="scene_decode_threads"):
        Settings()
    monkeypatch.setenv("REELSCOPE_SCENE_DECODE_THREADS", "0")
    monkeypatch.setenv("REELSCOPE_OCR_FRAMES_AT_ONCE", "0")
    with pytest.raises(ValueError, match="ocr_frames_at_once"):
        Settings()


def test_worker_niceness_defaults_to_10_and_stays_in_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REELSCOPE_WORKER_NICE", raising=False)
    assert Settings().worker_nice == 10
    monkeypatch.setenv("REELSCOPE_WORKER_NICE", "0")
    assert Settings().worker_nice == 0
    for wrong in ("-1", "20"):
        monkeypatch.setenv("REELSCOPE_WORKER_NICE", wrong)
        with pytest.raises(ValueError, match="worker_nice"):
            Settings()
