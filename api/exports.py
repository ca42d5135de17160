"""Subtitles from a transcript. Pure functions."""

from __future__ import annotations

from models.jobs import Transcript


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cues(transcript: Transcript) -> list[tuple[float, float, str]]:
    cues = []
    for segment in transcript.segments:
        text = " ".join(segment.text.split())
        if text:
            end = max(segment.end_s, segment.start_s + 0.001)
            cues.append((segment.start_s, end, text))
    return cues


def to_srt(transcript: Transcript) -> str:
    blocks = [
        f"{n}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{text}\n"
        for n, (start, end, text) in enumerate(_cues(transcript), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    blocks = ["WEBVTT\n"]
    for start, end, text in _cues(transcript):
        # "-->" would end a cue's timing line early; VTT has no escape for it.
        safe = text.replace("-->", "->")
        blocks.append(f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{safe}\n")
    return "\n".join(blocks)
