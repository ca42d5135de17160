from __future__ import annotations

import difflib
import itertools
import re
import shutil
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path

import imageio_ffmpeg
import jiwer
import pytest
from temporalio.exceptions import ApplicationError

from activities.transcribe import SEGMENTS_FILE, TranscribeActivities
from activities.workspace import Workspaces
from models.jobs import Stage, Transcript
from models.pipeline import ActivityProgress, TranscribeInput, WorkspaceRef
from reelscope.sample import SPEECH_TEXT
from tests.activities.conftest import RecordingEnvironment
from tests.conftest import SAMPLE_NAME, SAMPLE_WER_BOUND
from worker import Models


def norm(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", "", text.lower())


def transcribe(
    env: RecordingEnvironment,
    workspaces: Workspaces,
    ref: WorkspaceRef,
    media: str,
    models: Models,
    **extra: object,
):
    activity = TranscribeActivities(workspaces, models.whisper, beam_size=1)
    return env.run(
        activity.transcribe_audio,
        TranscribeInput(workspace=ref, media_file=media, duration_s=16.0, **extra),
    )


def test_transcribe_heartbeats_per_segment_with_progress(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, models: Models
) -> None:
    env = RecordingEnvironment()
    result = transcribe(env, workspaces, ref, sample_in_workspace, models)
    transcript = result.transcript
    assert jiwer.wer(norm(SPEECH_TEXT), norm(transcript.text)) <= SAMPLE_WER_BOUND, transcript.text
    segment_beats = [b for b in env.heartbeats if b.done > 0]
    # One per segment, in order; the keep-alive may send the last one again meanwhile.
    done = [b.done for b in segment_beats]
    assert done == sorted(done)
    assert sorted(set(done)) == list(range(1, len(transcript.segments) + 1))
    assert all(0 < b.fraction <= 1 for b in segment_beats)
    assert segment_beats[-1].resume["offset_s"] == transcript.segments[-1].words[-1].end_s
    # Every segment is on disk, for a retry to pick up.
    lines = workspaces.file(ref, SEGMENTS_FILE).read_text().splitlines()
    assert len(lines) == len(transcript.segments)


def test_transcribe_resumes_after_the_heartbeated_segment(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, models: Models
) -> None:
    full = transcribe(RecordingEnvironment(), workspaces, ref, sample_in_workspace, models)
    first = full.transcript.segments[0]
    assert len(full.transcript.segments) >= 2
    # Mark the stored first segment, so we can tell it was kept and not redone.
    path = workspaces.file(ref, SEGMENTS_FILE)
    marked = first.model_copy(update={"text": "KEPT FROM ATTEMPT ONE"})
    path.write_text(marked.model_dump_json() + "\n" + "garbage from a crash\n")
    offset = first.words[-1].end_s
    previous = ActivityProgress(
        stage=Stage.TRANSCRIBE,
        done=1,
        unit="segments",
        resume={"offset_s": offset, "language": "en"},
    )
    env = RecordingEnvironment(resume_from=previous)
    resumed = transcribe(env, workspaces, ref, sample_in_workspace, models).transcript
    assert resumed.segments[0].text == "KEPT FROM ATTEMPT ONE"
    assert all(w.start_s >= offset - 0.3 for s in resumed.segments[1:] for w in s.words)
    # The words after the resume point, against what was really said there. tiny.en
    # is fragile on "The weather" in this clip once it loses the sentence before.
    said_after = SPEECH_TEXT.split("color.")[1]
    redone = " ".join(s.text for s in resumed.segments[1:])
    assert jiwer.wer(norm(said_after), norm(redone)) <= 0.2, (said_after, redone)
    assert env.heartbeats[-1].done == len(resumed.segments)
    # Its first heartbeat says again how far the last attempt got, before the model's
    # first window: dying there loses nothing.
    assert env.heartbeats[0] == previous


def test_transcribe_hears_it_all_again_where_fewer_segments_are_whole_than_heartbeated(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, models: Models
) -> None:
    full = transcribe(RecordingEnvironment(), workspaces, ref, sample_in_workspace, models)
    first, second = full.transcript.segments[:2]
    # The last attempt had said two segments were done, then died writing them back:
    # resuming after the second would lose what the missing one said.
    path = workspaces.file(ref, SEGMENTS_FILE)
    marked = first.model_copy(update={"text": "KEPT FROM ATTEMPT ONE"})
    path.write_text(marked.model_dump_json() + "\n" + second.model_dump_json()[:40])
    previous = ActivityProgress(
        stage=Stage.TRANSCRIBE,
        done=2,
        unit="segments",
        resume={"offset_s": second.words[-1].end_s, "language": "en"},
    )
    env = RecordingEnvironment(resume_from=previous)
    again = transcribe(env, workspaces, ref, sample_in_workspace, models).transcript
    assert again.segments[0].text != "KEPT FROM ATTEMPT ONE"
    assert again.segments[0].start_s < 1.0
    assert jiwer.wer(norm(SPEECH_TEXT), norm(again.text)) <= SAMPLE_WER_BOUND, again.text


def test_a_transcript_asked_for_in_a_file_is_written_there_whole_and_returned_bare(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, models: Models
) -> None:
    result = transcribe(
        RecordingEnvironment(),
        workspaces,
        ref,
        sample_in_workspace,
        models,
        transcript_file="transcript.json",
    )
    whole = Transcript.model_validate_json(workspaces.file(ref, "transcript.json").read_text())
    assert jiwer.wer(norm(SPEECH_TEXT), norm(whole.text)) <= SAMPLE_WER_BOUND, whole.text
    assert len(whole.segments) >= 2 and all(s.words for s in whole.segments)
    # What goes back through Temporal: no words, whatever the talk's length.
    assert result.transcript_file == "transcript.json"
    assert result.transcript == Transcript(language=whole.language)
    assert not list(workspaces.path(ref).glob("*.partial"))


def test_no_audio_track_gives_an_empty_transcript_that_says_why(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, models: Models
) -> None:
    result = transcribe(
        RecordingEnvironment(), workspaces, ref, sample_in_workspace, models, has_audio=False
    )
    assert result.transcript.segments == [] and "no audio" in (result.transcript.note or "")


def word_shifts(before: Transcript, after: Transcript) -> list[tuple[float, float]]:
    """(start in ``before``, start in ``after``) of the words both heard alike, matched
    in order. The first word of each is left out: Whisper starts it where the audio it
    hears starts."""
    first = [w for s in before.segments for w in s.words][1:]
    second = [w for s in after.segments for w in s.words][1:]
    matcher = difflib.SequenceMatcher(
        a=[norm(w.word) for w in first], b=[norm(w.word) for w in second], autojunk=False
    )
    return [
        (first[block.a + i].start_s, second[block.b + i].start_s)
        for block in matcher.get_matching_blocks()
        for i in range(block.size)
    ]


#: The sample re-muxed three ways, its streams' timestamps as they were: its audio
#: starting 3 s after its first frame; its audio's timestamps jumping 4 s ahead at 6 s
#: (re-encoded, in Matroska); its video starting 2 s after its audio.
SHIFTED_AUDIO = {
    "audio-late.mp4": ["-itsoffset", "3", "-i", "{sample}", "-map", "0:v", "-map", "1:a"],
    "audio-gap.mkv": [
        "-map", "0", "-c:v", "copy", "-af", "asetpts='if(gte(T,6),PTS+4/TB,PTS)'", "-c:a", "aac"
    ],
    "video-late.mp4": ["-itsoffset", "2", "-i", "{sample}", "-map", "1:v", "-map", "0:a"],
}  # fmt: skip


@pytest.fixture(scope="module")
def shifted_audio(media_dir: Path) -> Path:
    folder = media_dir / "shifted-audio"
    folder.mkdir(exist_ok=True)
    sample = str(media_dir / SAMPLE_NAME)
    for name, args in SHIFTED_AUDIO.items():
        if not (folder / name).exists():
            how = [arg.format(sample=sample) for arg in args]
            copy = [] if "-c:a" in how else ["-c", "copy"]
            subprocess.run(
                [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", sample,
                 *how, *copy, str(folder / name)],
                check=True,
            )  # fmt: skip
    return folder


def test_words_keep_their_place_in_the_video_when_the_audio_starts_late_or_skips(
    workspaces: Workspaces,
    ref: WorkspaceRef,
    sample_in_workspace: str,
    shifted_audio: Path,
    models: Models,
) -> None:
    """Times are the video's, from its first frame, as the scenes' are. faster-whisper
    joins the audio's frames end to end: audio starting 3 s into the video had every
    word 3 s early, and a 4 s gap in it moved every later word 4 s early."""
    heard = {}
    for name in [sample_in_workspace, *SHIFTED_AUDIO]:
        if name != sample_in_workspace:
            shutil.copy(shifted_audio / name, workspaces.file(ref, name))
        heard[name] = transcribe(RecordingEnvironment(), workspaces, ref, name, models).transcript
    sample = heard[sample_in_workspace]

    def moved(name: str, where: Callable[[float], bool] = lambda t: True) -> float:
        pairs = [(a, b) for a, b in word_shifts(sample, heard[name]) if where(a)]
        assert len(pairs) >= 4, (name, pairs)
        return statistics.median(b - a for a, b in pairs)

    # The muxer starts AAC 1024 samples early (its priming): 2.977 s, not 3.
    assert moved("audio-late.mp4") == pytest.approx(2.977, abs=0.25)
    assert moved("audio-gap.mkv", lambda t: t < 5.5) == pytest.approx(0.0, abs=0.25)
    assert moved("audio-gap.mkv", lambda t: t > 6.5) == pytest.approx(4.0, abs=0.25)
    # Audio before the video's first frame is left out, and the note says so.
    assert moved("video-late.mp4") == pytest.approx(-2.0, abs=0.25)
    late = heard["video-late.mp4"]
    assert "first 2.0 s" in (late.note or "") and late.segments
    assert all(w.start_s >= 0 for s in late.segments for w in s.words)
    assert heard["audio-late.mp4"].note is None and sample.note is None


def test_unknown_model_is_a_final_typed_error(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, models: Models
) -> None:
    with pytest.raises(ApplicationError) as info:
        transcribe(
            RecordingEnvironment(), workspaces, ref, sample_in_workspace, models, model="large-v3"
        )
    assert info.value.type == "ModelUnavailable" and info.value.non_retryable
    assert "tiny.en" in info.value.message


def test_audio_longer_than_a_window_is_heard_window_by_window_with_nothing_lost_or_doubled(
    workspaces: Workspaces, ref: WorkspaceRef, media_dir: Path, models: Models
) -> None:
    # 80 s of speech (the sample five times), heard in windows of 30 s: the cuts fall
    # in the middle of sentences.
    shutil.copy(media_dir / "long.mp4", workspaces.create(ref) / "long.mp4")
    whole = transcribe(RecordingEnvironment(), workspaces, ref, "long.mp4", models).transcript
    activity = TranscribeActivities(workspaces, models.whisper, beam_size=1, window_s=30.0)
    env = RecordingEnvironment()
    windowed = env.run(
        activity.transcribe_audio,
        TranscribeInput(workspace=ref, media_file="long.mp4", duration_s=80.0),
    ).transcript

    said = " ".join([SPEECH_TEXT] * 5)
    assert jiwer.wer(norm(said), norm(windowed.text)) <= SAMPLE_WER_BOUND, windowed.text
    # As much heard as in one piece (tiny.en misspells differently around the cuts).
    words = [w for s in windowed.segments for w in s.words]
    assert len(words) == pytest.approx(sum(len(s.words) for s in whole.segments), abs=3)
    # In order, and none heard twice where two windows overlap (the same word's times
    # differ a little from one window to the next).
    for before, after in itertools.pairwise(words):
        assert after.start_s >= before.start_s, (before, after)
        assert after.start_s >= before.end_s - 0.3, (before, after)
        if after.word.lower() == before.word.lower():
            assert after.start_s >= before.end_s, (before, after)
    assert words[-1].end_s > 0.9 * 80.0
    assert env.heartbeats[-1].done == len(windowed.segments)


def test_speech_the_english_model_hears_with_low_confidence_is_noted(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, models: Models
) -> None:
    """The bundled ``tiny.en`` writes Spanish speech as English words ("I'm not sure
    if I'm going to be in the house"), and the transcript read as a sound one. It now
    says the words were heard with low confidence, and why that may be. The sample's
    English speech gets no such note."""
    shutil.copy(Path(__file__).parent / "speech" / "spanish.ogg", workspaces.file(ref, "es.ogg"))
    spanish = transcribe(RecordingEnvironment(), workspaces, ref, "es.ogg", models).transcript
    assert spanish.segments, "the model hears words in it"
    assert spanish.note is not None and "low confidence" in spanish.note, spanish.note
    assert "not in English, the only language the model tiny.en hears" in spanish.note
    english = transcribe(RecordingEnvironment(), workspaces, ref, sample_in_workspace, models)
    assert english.transcript.note is None
