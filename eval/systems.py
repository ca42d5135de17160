"""The two systems under evaluation, each turning a media file into one common shape
(cuts, scenes with the text read in them, transcript segments).

- ``Reelscope``: the worker's own activity code and settings (scene detection, key
  frames, OCR, transcription), called in this process as a worker would call them.
  The end-to-end tests show that going through Temporal and the API changes nothing in
  the result.
- ``Standalone``: the tools with their defaults, as a user would run them by hand:
  ``scenedetect.detect(path, ContentDetector())``; PaddleOCR's default pipeline on
  each scene's middle frame; faster-whisper's ``transcribe`` with defaults (beam 5,
  no VAD, conditioned on previous text) plus word timestamps, for the timing metrics.
  The same model files as Reelscope: PP-OCRv6 small and Whisper tiny.en.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.testing import ActivityEnvironment


@dataclass
class SceneOut:
    start_s: float
    end_s: float
    #: (time of the frame read, its text lines).
    frames: list[tuple[float, list[str]]] = field(default_factory=list)


@dataclass
class SystemOut:
    cuts_s: list[float]
    scenes: list[SceneOut]
    segments: list[tuple[float, float, str]]
    #: (start, end, word): where each word was heard.
    words: list[tuple[float, float, str]]
    seconds: float

    @property
    def transcript(self) -> str:
        return " ".join(text for _, _, text in self.segments).strip()


class Reelscope:
    name = "Reelscope"

    def __init__(self, work: Path) -> None:
        from reelscope.settings import Settings
        from worker import Models

        self.settings = Settings(data_dir=work / "reelscope-data")
        self.models = Models(self.settings)
        self.models.preload()
        self.work = work

    def run(self, media: Path) -> SystemOut:
        from activities.ocr import OcrActivities
        from activities.scenes import SceneActivities
        from activities.transcribe import TranscribeActivities
        from activities.workspace import Workspaces
        from models.pipeline import (
            DetectScenesInput,
            OcrInput,
            TranscribeInput,
            WorkspaceRef,
        )

        s = self.settings
        workspaces = Workspaces(self.work / "ws")
        ref = WorkspaceRef(job_id="job-eval", item_index=0)
        folder = workspaces.create(ref)
        name = "media" + media.suffix
        shutil.copy(media, folder / name)
        env = ActivityEnvironment()
        started = time.perf_counter()
        try:
            scenes = env.run(
                SceneActivities(
                    workspaces,
                    s.scene_threshold,
                    s.min_scene_len_frames,
                    s.scene_detector,
                    s.scene_decode_threads,
                    skip_nonreference=s.scene_skip_nonreference_frames,
                    skip_b_deblocking=s.scene_skip_b_frame_deblocking,
                    text_changes=s.scene_text_changes,
                ).detect_scenes,
                # The stages run one after another here, so nothing runs beside it.
                DetectScenesInput(
                    workspace=ref, media_file=name, keyframes=True, transcription_beside=False
                ),
            )
            keyframes = scenes.keyframes or []
            ocr = env.run(
                OcrActivities(workspaces, self.models.ocr).ocr_keyframes,
                OcrInput(workspace=ref, keyframes=keyframes),
            )
            speech = env.run(
                TranscribeActivities(
                    workspaces, self.models.whisper, s.whisper_beam_size
                ).transcribe_audio,
                TranscribeInput(workspace=ref, media_file=name),
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        seconds = time.perf_counter() - started
        out = [SceneOut(span.start_s, span.end_s) for span in scenes.scenes]
        lines = {
            (frame.scene_index, frame.frame): [line.text for line in frame.lines]
            for frame in ocr.frames
        }
        for kf in keyframes:
            out[kf.scene_index].frames.append(
                (kf.keyframe.time_s, lines.get((kf.scene_index, kf.keyframe.frame), []))
            )
        return SystemOut(
            cuts_s=[scene.start_s for scene in out[1:]],
            scenes=out,
            segments=[(seg.start_s, seg.end_s, seg.text) for seg in speech.transcript.segments],
            words=[
                (w.start_s, w.end_s, w.word)
                for seg in speech.transcript.segments
                for w in seg.words
            ],
            seconds=seconds,
        )


def default_paddleocr(models: Path):  # -> paddleocr.PaddleOCR
    """PaddleOCR with its defaults, except what cannot load offline: its default models
    and the document-orientation, unwarping and line-orientation models come from a
    hub. The bundled PP-OCRv6 small models stand in for the default ones. Side effect:
    prepares their model folders under ``models``."""
    from paddleocr import PaddleOCR

    from activities.ocr import _bundled_onnx, prepare_paddle_model_dir

    det = prepare_paddle_model_dir(
        "PP-OCRv6_small_det", _bundled_onnx("PP-OCRv6_det_small.onnx"), models / "det"
    )
    rec = prepare_paddle_model_dir(
        "PP-OCRv6_small_rec", _bundled_onnx("PP-OCRv6_rec_small.onnx"), models / "rec"
    )
    return PaddleOCR(
        engine="onnxruntime",
        text_detection_model_name="PP-OCRv6_small_det",
        text_detection_model_dir=str(det),
        text_recognition_model_name="PP-OCRv6_small_rec",
        text_recognition_model_dir=str(rec),
        use_doc_orientation_classify=False,
        use_doc_unwarping=False,
        use_textline_orientation=False,
    )


class Standalone:
    name = "standalone defaults"

    def __init__(self, work: Path) -> None:
        from faster_whisper import WhisperModel

        from activities.transcribe import bundled_whisper_path

        self.ocr = default_paddleocr(work / "standalone-models")
        self.whisper = WhisperModel(str(bundled_whisper_path()), device="cpu", compute_type="int8")

    def run(self, media: Path) -> SystemOut:
        import cv2
        import scenedetect

        started = time.perf_counter()
        found = scenedetect.detect(str(media), scenedetect.ContentDetector())
        capture = cv2.VideoCapture(str(media))
        if not found:  # no cut: the whole video is one scene
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
            spans = [(0, max(1, frames), fps)]
        else:
            spans = [(a.frame_num, b.frame_num, a.framerate) for a, b in found]
        scenes = []
        for start, end, fps in spans:
            middle = (start + end) // 2
            capture.set(cv2.CAP_PROP_POS_FRAMES, middle)
            ok, frame = capture.read()
            texts = list(self.ocr.predict(frame)[0]["rec_texts"]) if ok else []
            scene = SceneOut(start / fps, end / fps, [(middle / fps, texts)])
            scenes.append(scene)
        capture.release()
        # Defaults, plus word timestamps: they align the decoded text and change no word.
        pieces = list(self.whisper.transcribe(str(media), word_timestamps=True)[0])
        segments = [(p.start, p.end, p.text.strip()) for p in pieces]
        words = [(w.start, w.end, w.word.strip()) for p in pieces for w in p.words or []]
        return SystemOut(
            cuts_s=[scene.start_s for scene in scenes[1:]],
            scenes=scenes,
            segments=segments,
            words=words,
            seconds=time.perf_counter() - started,
        )
