"""OCR of key frames. The engine sits behind ``OcrEngine``: PaddleOCR by default
(on ONNX Runtime, no paddlepaddle), RapidOCR selectable; both run PaddleOCR's PP-OCR
models, loaded once per worker process.

A stage reads several key frames at once, each on an engine of its own with few ONNX
Runtime threads, rather than one frame at a time on every thread: threads sharing one
frame's layers hand work to each other many times a frame, and frames need no handing
over. On 2 CPUs that read the bench's key frames 10 % faster, with the same lines and
boxes (docs/benchmarks.md).

Each frame's lines are appended to ``frame_text.jsonl`` in the workspace as they are
read, and the heartbeat carries how many are safe on disk; a retry reads only the
frames after them. (Carrying the lines in the heartbeat made every heartbeat as large
as all the reads so far: a stage of 3,000 key frames spent 25 s building them, against
45 s reading; ``bench/ocr_bookkeeping.py``.)"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.det_int8 import BUILD_TAG, build_int8_detector
from activities.heap import HEAP
from activities.priority import LOWEST, lower_this_thread, run_lowered, transcription_running
from activities.progress import cancellation_wins, log, report, resumed
from activities.text_regions import FlatSkippingDetector
from activities.workspace import Workspaces, saved_records
from models.errors import ErrorKind
from models.jobs import Stage, TextLine
from models.pipeline import (
    ActivityProgress,
    FrameText,
    KeyframeFile,
    OcrInput,
    OcrResult,
    WorkspaceRef,
)

ENGINES = ("paddleocr", "rapidocr")
#: The frames read so far, one ``FrameText`` a line, in the order they were read.
FRAMES_FILE = "frame_text.jsonl"


@dataclass(frozen=True)
class OcrSettings:
    """Everything an engine needs; built from ``Settings`` by the worker."""

    det_limit_side_len: int = 960
    rec_score_thresh: float = 0.5
    #: Most text lines recognised in one model run (``Settings.ocr_rec_batch_size``);
    #: PaddleOCR's are batched only with lines of about their width (``line_batches``).
    rec_batch_size: int = 6
    #: False: PaddleX's own batches of ``rec_batch_size`` lines, however wide
    #: (``Settings.ocr_rec_batch_by_width``).
    rec_batch_by_width: bool = True
    #: ONNX Runtime threads of one engine, which reads one frame at a time.
    threads: int = 1
    #: ... of a pool's first engine, which a read takes whenever it is free, so that a
    #: key frame read with no other beside it (an image, a video of one scene) gets
    #: them all. None: ``threads``.
    lone_frame_threads: int | None = None
    #: Engines of each kind a worker holds: as many key frames are read at once.
    frames_at_once: int = 2
    #: PaddleOCR's detection looks only at the parts of a frame that are not flat
    #: (``activities.text_regions``).
    skip_flat_regions: bool = True
    #: PaddleOCR detects text with an 8-bit copy of the bundled detection model
    #: (``activities.det_int8``); a ``det_model_dir`` of one's own is used as it is.
    det_int8: bool = True
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


def readable(text: str) -> bool:
    """Whether a read line holds a letter or a digit, in any script. PP-OCR reads a
    plain shape (a square, a bullet, a logo's outline) as a line of symbols such as
    "■", with confidence over 0.7 at times; those lines say nothing and are dropped."""
    return any(char.isalnum() for char in text)


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
    session options are amended as they are built. Engines are built one at a time
    (``BUILDING``).
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


#: PP-OCR's recogniser input: PaddleX scales each text line to this height and pads a
#: batch of lines to its widest, and to at least ``REC_MIN_WIDTH``.
REC_HEIGHT = 48
REC_MIN_WIDTH = 320
#: Lines go into one batch only while padding each to the batch's widest adds at most
#: this many pixels (at ``REC_HEIGHT``). A model run of its own costs about as much as
#: that much more line (docs/benchmarks.md, session 37): alike lines (a menu of short
#: words, all at the least width) are read in batches, a slide's lines of every length
#: mostly one at a time.
REC_BATCH_PAD_PX = 80


def line_batches(
    lines: list[np.ndarray], most: int, pad_px: float = REC_BATCH_PAD_PX
) -> list[list[np.ndarray]]:
    """``lines`` (text-line images, as PaddleX hands them to the recogniser: narrowest
    first) cut, in order, into runs of at most ``most`` whose padded widths lie within
    ``pad_px`` of each other."""
    batches: list[list[np.ndarray]] = []
    low = high = 0.0
    for line in lines:
        height, width = line.shape[:2]
        padded = max(float(REC_MIN_WIDTH), REC_HEIGHT * width / max(1, height))
        if batches and len(batches[-1]) < most and max(high, padded) - min(low, padded) <= pad_px:
            batches[-1].append(line)
            low, high = min(low, padded), max(high, padded)
        else:
            batches.append([line])
            low = high = padded
    return batches


class WidthBatchedRecognizer:
    """PaddleX's text recognition predictor, handed each run of ``line_batches`` as a
    batch of its own. PaddleX pads every line of a batch to the batch's widest: in
    batches of a fixed size, a slide's short lines were padded to its long ones, and
    one at a time, a menu's words each paid for a model run (docs/benchmarks.md).
    Results come in the order of the lines given."""

    def __init__(self, recognizer: Any, most: int) -> None:
        self._recognizer = recognizer
        self._most = most

    def __getattr__(self, name: str) -> Any:
        return getattr(self._recognizer, name)

    def __call__(self, lines: list[np.ndarray], **kwargs: Any) -> Iterator[Any]:
        for batch in line_batches(list(lines), self._most):
            yield from self._recognizer(batch, **kwargs)


class PaddleOcrEngine(OcrEngine):
    name = "paddleocr"

    def __init__(self, settings: OcrSettings) -> None:
        # PaddleX reads these at import; they keep it offline and out of ~/.paddlex.
        os.environ.setdefault("PADDLE_PDX_CACHE_HOME", str(settings.cache_dir / "paddlex"))
        os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
        from paddleocr import PaddleOCR

        det_dir = settings.det_model_dir
        if det_dir is None:
            det_dir = prepare_paddle_model_dir(
                settings.det_model_name,
                _bundled_onnx("PP-OCRv6_det_small.onnx"),
                settings.cache_dir / settings.det_model_name,
            )
            if settings.det_int8:
                det_dir = self._int8_detector(det_dir, settings)
        rec_dir = settings.rec_model_dir or prepare_paddle_model_dir(
            settings.rec_model_name,
            _bundled_onnx("PP-OCRv6_rec_small.onnx"),
            settings.cache_dir / settings.rec_model_name,
        )
        #: The detection model folder this engine runs (the 8-bit one by default).
        self.det_model_dir = det_dir
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
                text_recognition_batch_size=settings.rec_batch_size,
                # PaddleOCR's cpu_threads only reaches its Paddle engine; ONNX Runtime takes
                # its thread count from the engine config.
                engine_config={"intra_op_num_threads": settings.threads},
            )
        if settings.skip_flat_regions:
            self._skip_flat_regions()
        if settings.rec_batch_by_width:
            self._batch_lines_by_width(settings.rec_batch_size)

    @staticmethod
    def _int8_detector(float_dir: Path, settings: OcrSettings) -> Path:
        """The 8-bit detector's folder, built if need be; the float one if it cannot be
        built (a full disk, a broken install), so that the worker still reads text."""
        target = settings.cache_dir / f"{settings.det_model_name}-{BUILD_TAG}"
        try:
            return build_int8_detector(float_dir, target)
        except Exception as exc:
            _log.warning(
                "ocr.int8_detector_failed",
                error=f"{exc.__class__.__name__}: {exc}",
                folder=str(target),
                using=str(float_dir),
                fix="free space in the model cache dir or reinstall; "
                "REELSCOPE_OCR_DET_INT8=false silences this",
            )
            return float_dir

    def _skip_flat_regions(self) -> None:
        """Puts ``FlatSkippingDetector`` between PaddleX's OCR pipeline and its text
        detection predictor, where the pipeline calls it."""
        pipeline: Any = getattr(getattr(self._ocr, "paddlex_pipeline", None), "_pipeline", None)
        detector = getattr(pipeline, "text_det_model", None)
        if detector is None:
            _log.warning("ocr.flat_regions_not_skipped", reason="paddlex pipeline layout not found")
            return
        pipeline.text_det_model = FlatSkippingDetector(detector)

    def _batch_lines_by_width(self, most: int) -> None:
        """Puts ``WidthBatchedRecognizer`` between PaddleX's OCR pipeline and its text
        recognition predictor, where the pipeline calls it."""
        pipeline: Any = getattr(getattr(self._ocr, "paddlex_pipeline", None), "_pipeline", None)
        recognizer = getattr(pipeline, "text_rec_model", None)
        if recognizer is None:
            _log.warning(
                "ocr.lines_not_batched_by_width", reason="paddlex pipeline layout not found"
            )
            return
        pipeline.text_rec_model = WidthBatchedRecognizer(recognizer, most)

    def read(self, image: np.ndarray) -> list[RecognizedLine]:
        result = self._ocr.predict(image)[0]
        return [
            RecognizedLine(text=text, confidence=float(score), box=np.asarray(poly).tolist())
            for text, score, poly in zip(
                result["rec_texts"], result["rec_scores"], result["rec_polys"], strict=False
            )
            if readable(text)
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
                "Rec.rec_batch_num": settings.rec_batch_size,
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
            if readable(text)
        ]


#: Held while an engine is built: one at a time in a worker process, since building a
#: PaddleX engine amends one of PaddleX's classes for a while (``onnx_threads_that_sleep``).
BUILDING = threading.Lock()


#: The lines of ``warm_up_picture``, of three widths, as a caption, a title and a corner
#: label are.
WARM_UP_LINES = ("Breaking news tonight", "CHAPTER 2", "Subscribe for more videos 2026")


def warm_up_picture() -> np.ndarray:
    """A 1280x720 picture of ``WARM_UP_LINES``, light on dark, which each OCR engine a
    worker builds at start reads once (``OcrEngines.preload``, ``ReadAhead.preload``).

    ONNX Runtime grows an engine's memory on its first reads and keeps it. Which of a
    worker's engines reads a job's frames depends on timing (the read-ahead or a stage,
    one frame or several at once), so without this the worker's memory rose over its
    first jobs, in steps of up to 85 MiB that came after the soak's video 5 in some runs
    and not in others (docs/benchmarks.md)."""
    picture = np.full((720, 1280, 3), 32, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for n, text in enumerate(WARM_UP_LINES):
        origin = (80 + 160 * n, 160 + 200 * n)
        cv2.putText(picture, text, origin, font, 1.6, (235, 235, 235), 3, cv2.LINE_AA)
    return picture


def read_warm_up(engine: OcrEngine, picture: np.ndarray) -> None:
    """``engine`` reads ``picture``; a failure is logged, not raised: the worker still
    starts, and a job's reads report what is wrong with the engine."""
    try:
        engine.read(picture)
    except Exception as exc:
        _log.warning("ocr.warm_up_failed", engine=engine.name, error=str(exc))


class EnginePool(OcrEngine):
    """Up to ``size`` engines of one kind, built as needed. ``read`` may be called from
    several threads: each call has an engine to itself while it reads, so no engine is
    ever used by two threads at once, and at most ``size`` frames are read at a time
    (concurrent OCR stages of a worker share the pool).

    The first engine comes from ``build_first`` when given (more threads than the
    rest), and a read takes it whenever it is free: a frame read alone gets it, and
    frames read at once get it and the others."""

    def __init__(
        self,
        name: str,
        build: Callable[[], OcrEngine],
        size: int,
        build_first: Callable[[], OcrEngine] | None = None,
    ) -> None:
        self.name = name
        self.size = max(1, size)
        self.engines: list[OcrEngine] = []
        self._build = build
        self._build_first = build_first or build
        self._idle: list[OcrEngine] = []
        #: Engines built or being built.
        self._slots = 0
        self._changed = threading.Condition()

    def fill(self, warm_up: np.ndarray | None = None) -> None:
        """Build every engine now, so the first frames read at once do not wait; where
        ``warm_up`` is given, each engine reads it once (``warm_up_picture``)."""
        engines = [self._take() for _ in range(self.size)]
        try:
            if warm_up is not None:
                for engine in engines:
                    read_warm_up(engine, warm_up)
        finally:
            for engine in engines:
                self._give(engine)

    def _take(self) -> OcrEngine:
        with self._changed:
            while not self._idle and self._slots >= self.size:
                self._changed.wait()
            if self._idle:
                first = next((n for n, e in enumerate(self._idle) if e is self.engines[0]), 0)
                return self._idle.pop(first)
            first_slot = self._slots == 0
            self._slots += 1
        # Built outside the pool's lock, so that reads on the engines already built, and
        # their return, never wait for a build.
        try:
            with BUILDING:
                engine = (self._build_first if first_slot else self._build)()
        except BaseException:
            with self._changed:
                self._slots -= 1
                self._changed.notify()
            raise
        with self._changed:
            self.engines.insert(0 if first_slot else len(self.engines), engine)
        return engine

    def _give(self, engine: OcrEngine) -> None:
        with self._changed:
            self._idle.append(engine)
            self._changed.notify()

    def read(self, image: np.ndarray) -> list[RecognizedLine]:
        engine = self._take()
        try:
            return engine.read(image)
        finally:
            self._give(engine)

    def spare(self) -> OcrEngine:
        """A new engine of this pool's kind, outside the pool: for a reader of its own.
        Its ONNX Runtime threads start at the calling thread's priority. Reads on the
        pool go on while it is built: built at the lowest priority on a busy worker, an
        engine took 24 s, and a read that waited for it as long (docs/benchmarks.md)."""
        with BUILDING:
            return self._build()


class OcrEngines:
    """Engine pools built once per worker process, on first use or by ``preload``."""

    def __init__(self, settings: OcrSettings, default: str) -> None:
        self._settings = settings
        self.default = default
        self.frames_at_once = max(1, settings.frames_at_once)
        self._pools: dict[str, EnginePool] = {}
        self._lock = threading.Lock()

    def get(self, name: str | None) -> OcrEngine:
        """Engine ``name`` (default: the worker's): a pool that ``frames_at_once``
        threads may read from at once."""
        return self._pool(name)

    def _pool(self, name: str | None) -> EnginePool:
        name = name or self.default
        if name not in ENGINES:
            raise ApplicationError(
                f"ocr: unknown engine {name!r}; choose one of {', '.join(ENGINES)}",
                type=ErrorKind.MODEL_UNAVAILABLE,
                non_retryable=True,
            )
        with self._lock:
            if name not in self._pools:
                engine_cls = PaddleOcrEngine if name == "paddleocr" else RapidOcrEngine
                lone = self._settings.lone_frame_threads
                self._pools[name] = EnginePool(
                    name,
                    partial(engine_cls, self._settings),
                    self.frames_at_once,
                    partial(engine_cls, replace(self._settings, threads=lone)) if lone else None,
                )
            return self._pools[name]

    def preload(self) -> None:
        """Build every engine of the default kind now, each reading ``warm_up_picture``."""
        self._pool(None).fill(warm_up_picture())

    def spare(self, name: str | None) -> OcrEngine:
        """A new engine of kind ``name`` (None: the default), outside its pool."""
        pool = self.get(name)
        assert isinstance(pool, EnginePool)
        return pool.spare()


#: The most key frames whose read-ahead lines a worker keeps for the OCR stages to
#: come; the oldest go first. Lines are small: a few hundred bytes a frame.
READ_AHEAD_KEPT = 4096
#: The longest an OCR stage waits for the read-ahead to finish a frame it is reading
#: before it reads the frame itself: about the rest of one read where the CPUs are free.
#: At the lowest priority, on a worker busy with other items, that read may barely move,
#: and waiting 0.5 s there cost 1 worker x 4 concurrent jobs about 6 % of their jobs a
#: minute (docs/benchmarks.md).
READ_AHEAD_WAIT_S = 0.1


@dataclass(eq=False)
class _Ahead:
    """A key frame offered to ``ReadAhead``: queued, then read (``lines``, and the file's
    ``stamp`` as it was before the read) or found unreadable (``lines`` None)."""

    path: str
    engine: str
    reading: bool = False
    stamp: tuple[int, int] | None = None
    lines: list[RecognizedLine] | None = None
    done: threading.Event = field(default_factory=threading.Event)


def file_stamp(path: str) -> tuple[int, int] | None:
    """A file's modification time (ns) and size; None where it is gone."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


class ReadAhead:
    """Reads key frames while the scene pass that writes them still runs, on one thread
    of this worker at the lowest priority, so that it only takes CPU the pass leaves:
    decoding a busy video on two frame threads leaves a CPU idle a fifth of the time or
    more (docs/benchmarks.md). The OCR stage after the pass then takes each frame's lines
    (``take``) instead of reading it again.

    The lines are those the stage would read: an engine of the same kind and settings,
    and the same JPEG on disk. A frame written again after it was read (a retried pass)
    is read again by the stage. Only a stage in this worker process finds them; an
    item's stages all run in the worker that holds its files.

    The thread starts with the first offer. It reads on engines of its own, one of each
    kind it is asked for (the memory of one more engine; ``OcrEngines.spare``), built
    by ``preload`` or on first use: on one of the stages' engines, a read starved of CPU
    by other items would hold up a stage waiting for that engine. Where that engine
    cannot be built, frames of its kind are left to the stages."""

    def __init__(self, engines: OcrEngines, kept: int = READ_AHEAD_KEPT) -> None:
        self._engines = engines
        self._own: dict[str, OcrEngine] = {}
        #: Kinds whose engine could not be built.
        self._unbuilt: set[str] = set()
        self._kept = max(1, kept)
        self._changed = threading.Condition()
        self._queue: deque[_Ahead] = deque()
        self._entries: OrderedDict[tuple[str, str], _Ahead] = OrderedDict()
        #: Engines ``preload`` asks for, and the event set once each is built (or not).
        self._to_build: deque[tuple[str, threading.Event]] = deque()
        self._thread: threading.Thread | None = None

    def preload(self, engine: str | None = None) -> None:
        """Builds this read-ahead's engine of kind ``engine`` (None: the worker's default)
        now, as the worker loads its models, so that no job pays for it, and has it read
        ``warm_up_picture`` once. The read-ahead's thread does both, at the lowest
        priority where its reads run (the engine's ONNX Runtime threads start there), and
        in the memory those reads then reuse. Where it cannot be built, frames of that
        kind are left to the stages."""
        name = self._engines.get(engine).name
        built = threading.Event()
        with self._changed:
            self._to_build.append((name, built))
            self._start()
            self._changed.notify()
        built.wait()

    def _start(self) -> None:
        """Starts the thread, if it has not started (under the lock)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ocr-read-ahead", daemon=True)
            self._thread.start()

    def offer(self, path: Path, engine: str | None) -> None:
        """Queues a key frame just written at ``path``, to be read with ``engine`` (None:
        the worker's default)."""
        try:
            name = self._engines.get(engine).name
        except ApplicationError:
            return  # an unknown engine: the OCR stage reports it
        entry = _Ahead(str(path), name)
        with self._changed:
            key = (entry.path, name)
            self._entries.pop(key, None)
            self._entries[key] = entry
            while len(self._entries) > self._kept:
                self._entries.popitem(last=False)
            self._queue.append(entry)
            if len(self._queue) > 2 * self._kept:
                # Frames taken or dropped while the thread was starved of CPU stay queued
                # until it reaches them: a worker busy for days would pile them up.
                self._queue = deque(e for e in self._queue if self._is_current(e))
            self._start()
            self._changed.notify()

    def take(self, path: Path, engine: str) -> list[RecognizedLine] | None:
        """The lines read ahead for the key frame at ``path`` with engine ``engine`` (an
        engine's own name), if the file is as it was read; None where the frame must be
        read: never offered, not read yet (it leaves the queue), unreadable, or written
        again since. Waits for a frame being read now. Each frame is taken once."""
        key = (str(path), engine)
        with self._changed:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if not entry.reading:
                del self._entries[key]
                return None
        entry.done.wait(READ_AHEAD_WAIT_S)
        with self._changed:
            if self._entries.get(key) is entry:
                del self._entries[key]
        if entry.lines is None or entry.stamp is None or entry.stamp != file_stamp(entry.path):
            return None
        return entry.lines

    def _is_current(self, entry: _Ahead) -> bool:
        """Whether ``entry`` is still the one kept for its frame (under the lock)."""
        return self._entries.get((entry.path, entry.engine)) is entry

    def _run(self) -> None:
        lower_this_thread(LOWEST)
        while True:
            with self._changed:
                while not self._queue and not self._to_build:
                    self._changed.wait()
                build = self._to_build.popleft() if self._to_build else None
                if build is None:
                    entry = self._queue.popleft()
                    if not self._is_current(entry):
                        continue  # taken, offered again or dropped meanwhile
                    entry.reading = True
            if build is not None:
                kind, built = build
                try:
                    own = self._engine(kind)
                    if own is not None:
                        read_warm_up(own, warm_up_picture())
                finally:
                    built.set()
                continue
            try:
                own = self._engine(entry.engine)
                if own is not None:
                    entry.stamp = file_stamp(entry.path)
                    image = cv2.imread(entry.path)
                    if image is not None and entry.stamp is not None:
                        entry.lines = own.read(image)
            except Exception as exc:  # the stage reads the frame itself, and reports
                _log.warning("ocr.read_ahead_failed", file=entry.path, error=str(exc))
                entry.lines = None
            finally:
                entry.done.set()

    def _engine(self, kind: str) -> OcrEngine | None:
        """This thread's engine of ``kind``, built on first use (on this thread, so that
        its threads run as low); None where building it failed once: building it again
        for every frame would spend the CPU, and hold ``BUILDING``, for nothing."""
        if kind in self._unbuilt:
            return None
        if kind not in self._own:
            try:
                self._own[kind] = self._engines.spare(kind)
            except Exception as exc:
                self._unbuilt.add(kind)
                _log.warning("ocr.read_ahead_engine_not_built", engine=kind, error=str(exc))
                return None
        return self._own[kind]


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


def frame_text(keyframe: KeyframeFile, read: list[RecognizedLine]) -> FrameText:
    return FrameText(
        scene_index=keyframe.scene_index,
        frame=keyframe.keyframe.frame,
        lines=[
            TextLine(
                text=line.text,
                confidence=round(line.confidence, 4),
                box=[[round(x, 1), round(y, 1)] for x, y in line.box],
                time_s=keyframe.keyframe.time_s,
            )
            for line in read
        ],
    )


@dataclass(eq=False)
class _Picture:
    """A key frame whose picture no earlier one showed, the key frames after it that
    show it again while it is being read, and its lines once read."""

    first: KeyframeFile
    again: list[KeyframeFile]
    lines: list[RecognizedLine] | None = None


class OcrActivities:
    def __init__(
        self,
        workspaces: Workspaces,
        engines: OcrEngines,
        niceness: int = 0,
        read_ahead: ReadAhead | None = None,
    ) -> None:
        """``niceness``: while the item's transcription runs, the frames are read this
        many nice steps below the worker's other threads (``activities.priority``).
        ``read_ahead``: where the scene pass had frames read as it wrote them; their
        lines are taken from it."""
        self._workspaces = workspaces
        self._engines = engines
        self._niceness = niceness
        self._read_ahead = read_ahead

    @activity.defn(name="ocr_keyframes")
    def ocr_keyframes(self, input: OcrInput) -> OcrResult:
        """See ``_ocr_keyframes``; a cancel always ends it as a cancellation."""
        ref = input.workspace
        beside = transcription_running(ref.job_id, ref.item_index)
        with HEAP.stage(), cancellation_wins():
            return run_lowered(
                lambda: self._ocr_keyframes(input), self._niceness if beside else 0, "ocr"
            )

    def _ocr_keyframes(self, input: OcrInput) -> OcrResult:
        """Read the text on each key frame. A retry keeps the frames already read."""
        total = len(input.keyframes)
        previous = resumed(Stage.OCR)
        # A retry first says again how far the last attempt got: its frames stay on disk
        # (a frame written back short is read again), and a heartbeat of none would
        # lose them if this attempt died before its first read.
        if previous and previous.done:
            report(previous)
        else:
            report(ActivityProgress(stage=Stage.OCR, total=total, unit="frames"))
        engine = self._engines.get(input.engine)
        jsonl = self._workspaces.file(input.workspace, FRAMES_FILE)
        frames: list[FrameText] = []
        if previous and "frames" in previous.resume:
            # An older worker's heartbeat, which carried the frames themselves.
            frames = [FrameText.model_validate(f) for f in previous.resume["frames"]]
        elif previous and previous.done:
            frames = saved_records(jsonl, previous.done, FrameText)
        if previous:
            log().info("ocr.resumed", frames_done=len(frames))
        # A scene may have several key frames. A frame read by an older worker is known
        # by its scene alone; that worker gave each scene one.
        done = {(f.scene_index, f.frame) for f in frames}
        todo = [
            kf
            for kf in input.keyframes
            if (kf.scene_index, kf.keyframe.frame) not in done
            and (kf.scene_index, None) not in done
        ]
        reused = 0
        # One entry for each frame whose lines the read-ahead had.
        ahead: list[bool] = []
        with jsonl.open("w", encoding="utf-8") as sink:
            for kept in frames:
                sink.write(kept.model_dump_json() + "\n")
            # Closed at once if this thread raises (a cancel), which stops the readers.
            with closing(self._read(engine, input.workspace, todo, ahead)) as pictures:
                for keyframes, read, again in pictures:
                    reused += again
                    for keyframe in keyframes:
                        frames.append(frame_text(keyframe, read))
                        sink.write(frames[-1].model_dump_json() + "\n")
                    # On disk before the heartbeat counts them.
                    sink.flush()
                    report(
                        ActivityProgress(
                            stage=Stage.OCR,
                            fraction=len(frames) / total,
                            done=len(frames),
                            total=total,
                            unit="frames",
                        )
                    )
        frames.sort(key=lambda f: (f.scene_index, f.frame or 0))
        log().info(
            "ocr.done",
            engine=engine.name,
            frames=len(frames),
            read_once_for_an_earlier_scene=reused,
            read_while_the_scenes_were_found=len(ahead),
            lines=sum(len(f.lines) for f in frames),
        )
        return OcrResult(engine=engine.name, frames=frames)

    def _lines(
        self, engine: OcrEngine, path: Path, image: np.ndarray, ahead: list[bool]
    ) -> list[RecognizedLine]:
        """The lines the read-ahead has for the frame at ``path`` (noted in ``ahead``),
        else the engine's read of ``image``."""
        if self._read_ahead is not None:
            lines = self._read_ahead.take(path, engine.name)
            if lines is not None:
                ahead.append(True)
                return lines
        return engine.read(image)

    def _read(
        self,
        engine: OcrEngine,
        workspace: WorkspaceRef,
        keyframes: list[KeyframeFile],
        ahead: list[bool],
    ) -> Generator[tuple[list[KeyframeFile], list[RecognizedLine], int], None, None]:
        """Reads the key frames, ``frames_at_once`` at a time on threads of their own
        (or takes the lines the read-ahead has, counted in ``ahead``), and yields each
        picture's key frames with its lines and how many of those key frames reused an
        earlier one's read, in the order reads finish.
        Scenes that show the same picture (a presenter's slide after a cutaway, a title
        card shown twice) are read once. Images are loaded on this thread, one ahead of
        the readers, so only a few are held at a time."""
        at_once = self._engines.frames_at_once
        seen: deque[tuple[np.ndarray, _Picture]] = deque(maxlen=REMEMBERED_FRAMES)
        reading: dict[Future[list[RecognizedLine]], _Picture] = {}
        pool = ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="ocr-frame")

        def finished(
            block: bool,
        ) -> Iterator[tuple[list[KeyframeFile], list[RecognizedLine], int]]:
            ready, _ = wait(reading, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for future in ready:
                picture = reading.pop(future)
                picture.lines = future.result()
                yield [picture.first, *picture.again], picture.lines, len(picture.again)

        try:
            for keyframe in keyframes:
                path = self._workspaces.file(workspace, keyframe.image_file)
                image = cv2.imread(str(path))
                if image is None:
                    raise ApplicationError(
                        f"ocr: key frame {keyframe.image_file} is missing or unreadable",
                        type=ErrorKind.INTERNAL,
                    )
                thumb = thumbnail(image)
                earlier = next((p for other, p in seen if same_picture(thumb, other)), None)
                if earlier is not None:
                    if earlier.lines is None:
                        earlier.again.append(keyframe)
                    else:
                        yield [keyframe], earlier.lines, 1
                    continue
                picture = _Picture(keyframe, [])
                seen.append((thumb, picture))
                while len(reading) > at_once:  # one waits, ready for the next free reader
                    yield from finished(block=True)
                reading[pool.submit(self._lines, engine, path, image, ahead)] = picture
                yield from finished(block=False)
            while reading:
                yield from finished(block=True)
        finally:
            for future in reading:
                future.cancel()
            pool.shutdown(wait=True)
