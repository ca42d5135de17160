"""OCR of key frames. The engine sits behind ``OcrEngine``: PaddleOCR by default
(on ONNX Runtime, no paddlepaddle), RapidOCR selectable; both run PaddleOCR's PP-OCR
models, loaded once per worker process."""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.progress import cancellation_wins, log, report, resumed
from activities.workspace import Workspaces
from models.errors import ErrorKind
from models.jobs import Stage, TextLine
from models.pipeline import ActivityProgress, FrameText, OcrInput, OcrResult

ENGINES = ("paddleocr", "rapidocr")


@dataclass(frozen=True)
class OcrSettings:
    """Everything an engine needs; built from ``Settings`` by the worker."""

    det_limit_side_len: int = 960
    rec_score_thresh: float = 0.5
    threads: int = 2
    det_model_name: str = "PP-OCRv6_small_det"
    rec_model_name: str = "PP-OCRv6_small_rec"
    det_model_dir: Path | None = None
    rec_model_dir: Path | None = None
    cache_dir: Path = Path(".reelscope/models")


@dataclass(frozen=True)
class RecognizedLine:
    text: str
    confidence: float
    box: list[list[float]]


class OcrEngine(ABC):
    """Reads the lines of text in one BGR image."""

    name: str

    @abstractmethod
    def read(self, image: np.ndarray) -> list[RecognizedLine]: ...


def _bundled_onnx(file_name: str) -> Path:
    import rapidocr

    return Path(rapidocr.__file__).parent / "models" / file_name


def prepare_paddle_model_dir(model_name: str, onnx_file: Path, target: Path) -> Path:
    """Make a PaddleOCR model directory (``inference.onnx`` + ``inference.yml``) from a
    bare PP-OCR ONNX file. Side effect: writes ``target``. The recognizer's character
    dictionary is stored in the ONNX file's metadata under ``character``."""
    import onnxruntime
    import yaml
    from paddlex.modules.base.utils.pdparams2safetensors.inference_meta import (
        build_inference_meta,
    )

    yml = target / "inference.yml"
    onnx_link = target / "inference.onnx"
    if yml.is_file() and onnx_link.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = build_inference_meta(model_name)
    meta.setdefault("Global", {})["model_name"] = model_name
    if model_name.endswith("_rec"):
        session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        characters = session.get_modelmeta().custom_metadata_map.get("character")
        if not characters:
            raise RuntimeError(f"{onnx_file} has no 'character' metadata for the recognizer")
        meta.setdefault("PostProcess", {})["character_dict"] = characters.split("\n")
    tmp = yml.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(meta, allow_unicode=True), encoding="utf-8")
    tmp.replace(yml)
    onnx_link.unlink(missing_ok=True)
    onnx_link.symlink_to(onnx_file.resolve())
    return target


#: ONNX Runtime's session option that lets idle pool threads spin for work.
ALLOW_SPINNING = "session.intra_op.allow_spinning"

# Engines are built at worker start, outside any activity.
_log = structlog.get_logger("reelscope.ocr")


@contextmanager
def onnx_threads_that_sleep() -> Iterator[None]:
    """While open, the ONNX Runtime sessions PaddleX builds let their idle threads
    sleep instead of spinning.

    Spinning saves a few ms per call on an idle machine. Beside the scene pass and
    Whisper it burns a core while waiting: on 2 CPUs with one core kept busy,
    detection on a 720p key frame took 157 ms with sleeping threads against 215 ms
    spinning (docs/benchmarks.md). PaddleX takes no session config entries, so its
    session options are amended as they are built. ``OcrEngines`` builds under a lock.
    """
    try:
        from paddlex.inference.models.runners.onnxruntime_runner import ONNXRuntimeRunner
    except ImportError:  # a PaddleX without this runner: keep its own options
        _log.warning("ocr.onnx_spinning_unchanged", reason="paddlex runner not found")
        yield
        return
    build = getattr(ONNXRuntimeRunner, "_build_session_options", None)
    if build is None:
        _log.warning("ocr.onnx_spinning_unchanged", reason="paddlex runner has no options hook")
        yield
        return

    def build_without_spinning(runner: Any) -> Any:
        options = build(runner)
        options.add_session_config_entry(ALLOW_SPINNING, "0")
        return options

    ONNXRuntimeRunner._build_session_options = build_without_spinning  # type: ignore[method-assign]
    try:
        yield
    finally:
        ONNXRuntimeRunner._build_session_options = build  # type: ignore[method-assign]


class PaddleOcrEngine(OcrEngine):
    name = "paddleocr"

    def __init__(self, settings: OcrSettings) -> None:
        # PaddleX reads these at import; they keep it offline and out of ~/.paddlex.
        os.environ.setdefault("PADDLE_PDX_CACHE_HOME", str(settings.cache_dir / "paddlex"))
        os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
        from paddleocr import PaddleOCR

        det_dir = settings.det_model_dir or prepare_paddle_model_dir(
            settings.det_model_name,
            _bundled_onnx("PP-OCRv6_det_small.onnx"),
            settings.cache_dir / settings.det_model_name,
        )
        rec_dir = settings.rec_model_dir or prepare_paddle_model_dir(
            settings.rec_model_name,
            _bundled_onnx("PP-OCRv6_rec_small.onnx"),
            settings.cache_dir / settings.rec_model_name,
        )
        with onnx_threads_that_sleep():
            self._ocr = PaddleOCR(
                engine="onnxruntime",
                text_detection_model_name=settings.det_model_name,
                text_detection_model_dir=str(det_dir),
                text_recognition_model_name=settings.rec_model_name,
                text_recognition_model_dir=str(rec_dir),
                use_doc_orientation_classify=False,
                use_doc_unwarping=False,
                use_textline_orientation=False,
                text_det_limit_side_len=settings.det_limit_side_len,
                text_det_limit_type="max",
                text_rec_score_thresh=settings.rec_score_thresh,
                # PaddleOCR's cpu_threads only reaches its Paddle engine; ONNX Runtime takes
                # its thread count from the engine config.
                engine_config={"intra_op_num_threads": settings.threads},
            )

    def read(self, image: np.ndarray) -> list[RecognizedLine]:
        result = self._ocr.predict(image)[0]
        return [
            RecognizedLine(text=text, confidence=float(score), box=np.asarray(poly).tolist())
            for text, score, poly in zip(
                result["rec_texts"], result["rec_scores"], result["rec_polys"], strict=False
            )
            if text.strip()
        ]


class RapidOcrEngine(OcrEngine):
    name = "rapidocr"

    def __init__(self, settings: OcrSettings) -> None:
        from rapidocr import RapidOCR

        self._ocr = RapidOCR(
            params={
                "Global.use_cls": False,
                "Global.log_level": "error",
                "Global.text_score": settings.rec_score_thresh,
                "Det.limit_side_len": settings.det_limit_side_len,
                "EngineConfig.onnxruntime.intra_op_num_threads": settings.threads,
            }
        )

    def read(self, image: np.ndarray) -> list[RecognizedLine]:
        result: Any = self._ocr(image)
        if result.txts is None or result.boxes is None:
            return []
        return [
            RecognizedLine(text=text, confidence=float(score), box=np.asarray(box).tolist())
            for text, score, box in zip(result.txts, result.scores, result.boxes, strict=False)
            if text.strip()
        ]


class OcrEngines:
    """Engines built once per worker process, on first use or by ``preload``."""

    def __init__(self, settings: OcrSettings, default: str) -> None:
        self._settings = settings
        self.default = default
        self._engines: dict[str, OcrEngine] = {}
        self._lock = threading.Lock()

    def get(self, name: str | None) -> OcrEngine:
        name = name or self.default
        if name not in ENGINES:
            raise ApplicationError(
                f"ocr: unknown engine {name!r}; choose one of {', '.join(ENGINES)}",
                type=ErrorKind.MODEL_UNAVAILABLE,
                non_retryable=True,
            )
        with self._lock:
            if name not in self._engines:
                engine_cls = PaddleOcrEngine if name == "paddleocr" else RapidOcrEngine
                self._engines[name] = engine_cls(self._settings)
            return self._engines[name]


#: Key frames are compared on a grey thumbnail this wide ...
THUMB_WIDTH = 160
#: ... in blocks of this many thumbnail pixels (each 1/20 of the width) ...
BLOCK = 8
#: ... and two frames are the same picture when no block's mean difference (0-255)
#: exceeds this. A changed line of text changes its blocks by far more, so frames only
#: match when their text would read the same.
SAME_PICTURE_DIFF = 4.0
#: How many earlier distinct frames a key frame is compared with.
REMEMBERED_FRAMES = 64


def thumbnail(image: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    height = max(BLOCK, round(gray.shape[0] * THUMB_WIDTH / gray.shape[1] / BLOCK) * BLOCK)
    return cv2.resize(gray, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA)


def same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two thumbnails show the same picture, text included (see above)."""
    if a.shape != b.shape:
        return False
    diff = cv2.absdiff(a, b)
    blocks = cv2.resize(
        diff, (a.shape[1] // BLOCK, a.shape[0] // BLOCK), interpolation=cv2.INTER_AREA
    )
    return float(blocks.max()) <= SAME_PICTURE_DIFF


class OcrActivities:
    def __init__(self, workspaces: Workspaces, engines: OcrEngines) -> None:
        self._workspaces = workspaces
        self._engines = engines

    @activity.defn(name="ocr_keyframes")
    def ocr_keyframes(self, input: OcrInput) -> OcrResult:
        """See ``_ocr_keyframes``; a cancel always ends it as a cancellation."""
        with cancellation_wins():
            return self._ocr_keyframes(input)

    def _ocr_keyframes(self, input: OcrInput) -> OcrResult:
        """Read the text on each key frame. A retry keeps the frames already read."""
        report(ActivityProgress(stage=Stage.OCR, total=len(input.keyframes), unit="frames"))
        engine = self._engines.get(input.engine)
        frames: list[FrameText] = []
        previous = resumed(Stage.OCR)
        if previous:
            frames = [FrameText.model_validate(f) for f in previous.resume.get("frames", [])]
            log().info("ocr.resumed", frames_done=len(frames))
        done = {f.scene_index for f in frames}
        # Scenes that show the same picture (a presenter's slide after a cutaway, a
        # title card shown twice) are read once.
        seen: deque[tuple[np.ndarray, list[RecognizedLine]]] = deque(maxlen=REMEMBERED_FRAMES)
        reused = 0
        for position, keyframe in enumerate(input.keyframes):
            if keyframe.scene_index in done:
                continue
            image = cv2.imread(str(self._workspaces.file(input.workspace, keyframe.image_file)))
            if image is None:
                raise ApplicationError(
                    f"ocr: key frame {keyframe.image_file} is missing or unreadable",
                    type=ErrorKind.INTERNAL,
                )
            thumb = thumbnail(image)
            read = next((lines for other, lines in seen if same_picture(thumb, other)), None)
            if read is None:
                read = engine.read(image)
                seen.append((thumb, read))
            else:
                reused += 1
            lines = [
                TextLine(
                    text=line.text,
                    confidence=round(line.confidence, 4),
                    box=[[round(x, 1), round(y, 1)] for x, y in line.box],
                    time_s=keyframe.keyframe.time_s,
                )
                for line in read
            ]
            frames.append(FrameText(scene_index=keyframe.scene_index, lines=lines))
            report(
                ActivityProgress(
                    stage=Stage.OCR,
                    fraction=(position + 1) / len(input.keyframes),
                    done=position + 1,
                    total=len(input.keyframes),
                    unit="frames",
                    resume={"frames": [f.model_dump() for f in frames]},
                )
            )
        frames.sort(key=lambda f: f.scene_index)
        log().info(
            "ocr.done",
            engine=engine.name,
            frames=len(frames),
            read_once_for_an_earlier_scene=reused,
            lines=sum(len(f.lines) for f in frames),
        )
        return OcrResult(engine=engine.name, frames=frames)
