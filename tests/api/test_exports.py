from __future__ import annotations

import srt
import webvtt

from api.exports import to_srt, to_vtt
from models.jobs import Transcript, TranscriptSegment


def transcript() -> Transcript:
    return Transcript(
        segments=[
            TranscriptSegment(start_s=0.0, end_s=1.25, text=" Hello  there. "),
            TranscriptSegment(start_s=3725.5, end_s=3727.0, text="a --> b"),
            TranscriptSegment(start_s=5.0, end_s=5.0, text="   "),
        ]
    )


def test_srt_is_valid_and_keeps_hours() -> None:
    cues = list(srt.parse(to_srt(transcript())))
    assert [c.content for c in cues] == ["Hello there.", "a --> b"]
    assert cues[1].start.total_seconds() == 3725.5 and cues[0].end.total_seconds() == 1.25


def test_vtt_is_valid_and_cannot_break_a_cue() -> None:
    text = to_vtt(transcript())
    assert text.startswith("WEBVTT\n")
    captions = list(webvtt.from_string(text))
    assert [c.text for c in captions] == ["Hello there.", "a -> b"]
    assert captions[1].start == "01:02:05.500"


def test_empty_transcript_gives_empty_but_valid_files() -> None:
    assert to_srt(Transcript()) == ""
    assert list(webvtt.from_string(to_vtt(Transcript()))) == []
