"""An 8-bit copy of PP-OCR's text detection model, built once per machine from the
bundled 32-bit one, with no download.

Detection is most of what OCR costs on a key frame that is busy all over (filmed
footage, which ``text_regions`` cannot narrow): 0.58 CPU-s for a 960x544 frame on one
thread of an AVX-512 Xeon. ONNX Runtime runs the same network with 8-bit weights and
activations in 0.16-0.21, with the same OCR scores on the evaluation set
(docs/benchmarks.md and docs/quality.md, session 20).

The copy is made with ONNX Runtime's static quantization: weights per output channel,
activations per tensor, their ranges (min and max) taken from running the float model on
calibration pictures that this module draws itself from a fixed seed, so every machine
builds the same model. Weights use 7 bits (``reduce_range``): CPUs without AVX-512 VNNI
multiply 8-bit values in pairs into 16 bits, which full-range weights can overflow.

Side effects: ``build_int8_detector`` writes a model folder (``inference.onnx`` and
PaddleX's ``inference.yml``) under the target path; nothing else is touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import structlog

_log = structlog.get_logger()

#: Seed of the calibration pictures: a change makes another model.
CALIBRATION_SEED = 20261203
#: Names the folder of the built model. Change it with anything that changes the bytes
#: built (seed, pictures, quantization settings), so that machines build the new one.
BUILD_TAG = "int8-20261203"
#: Pictures drawn for calibration. Ranges come from their min and max, so a few busy,
#: texty pictures settle them; more add time to the one-off build, not accuracy.
CALIBRATION_PICTURES = 12
#: Where PaddleX's text detector caps a frame's long side (its default, and ours).
LONG_SIDE = 960
#: PaddleX's detection pre-processing: BGR, scaled to [0, 1], then per channel.
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
#: The opset the float model is lifted to: per-channel QDQ needs 13 or later.
_OPSET = 17
#: Words drawn on the calibration pictures (any text will do; these are varied shapes).
_WORDS = (
    "BREAKING NEWS",
    "Subscribe",
    "SALE 50% OFF",
    "Chapter 2: The Forest",
    "00:12:45",
    "www.example.org",
    "Temperature 21 C",
    "Live from the studio",
    "#reelscope",
    "Thank you for watching",
)


def detector_input(image: np.ndarray, long_side: int = LONG_SIDE) -> np.ndarray:
    """A BGR picture as PaddleX feeds it to the detector: long side capped at
    ``long_side``, both sides rounded to a multiple of 32, normalised, NCHW float32."""
    import cv2

    height, width = image.shape[:2]
    scale = min(1.0, long_side / max(height, width))
    new_h = max(32, round(height * scale / 32) * 32)
    new_w = max(32, round(width * scale / 32) * 32)
    resized = cv2.resize(image, (new_w, new_h))
    normalised = (resized.astype(np.float32) / 255.0 - _MEAN) / _STD
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None])


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A background: a colour gradient, blotches at several scales, and grain, as
    filmed footage has all three to some degree."""
    import cv2

    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    a, b, c = (rng.uniform(0, 255, size=3).astype(np.float32) for _ in range(3))
    image = a * (1 - ys) + b * ys * (1 - xs) + c * xs * ys
    for cells in (4, 16, 64):
        noise = rng.normal(0, 1, size=(cells * height // width + 1, cells, 3)).astype(np.float32)
        blotches = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        image += blotches * rng.uniform(5, 40)
    image += rng.normal(0, rng.uniform(2, 12), size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255)


def calibration_pictures(
    count: int = CALIBRATION_PICTURES, seed: int = CALIBRATION_SEED
) -> Iterator[np.ndarray]:
    """Pictures (BGR, uint8) with lines of text of many sizes on textured backgrounds,
    landscape and portrait: what key frames of social video look like to a detector."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    for n in range(count):
        height, width = (1280, 720) if n % 3 == 2 else (720, 1280)
        pil = Image.fromarray(_texture(rng, height, width).astype(np.uint8))
        draw = ImageDraw.Draw(pil)
        for _ in range(int(rng.integers(2, 7))):
            text = _WORDS[int(rng.integers(len(_WORDS)))]
            font = ImageFont.load_default(size=int(rng.choice([14, 20, 28, 40, 56, 80])))
            left, top, right, bottom = (int(v) for v in draw.textbbox((0, 0), text, font=font))
            x = int(rng.integers(0, max(1, width - (right - left))))
            y = int(rng.integers(0, max(1, height - (bottom - top))))
            ink = tuple(int(v) for v in rng.integers(0, 256, size=3))
            if rng.random() < 0.5:
                pad = max(4, (bottom - top) // 4)
                shade = tuple(255 - v for v in ink)
                draw.rectangle(
                    (x - pad, y - pad, x + right - left + pad, y + bottom - top + pad), fill=shade
                )
            draw.text((x - left, y - top), text, font=font, fill=ink)
        yield np.asarray(pil)[:, :, ::-1].copy()


def build_int8_detector(float_dir: Path, target: Path) -> Path:
    """The 8-bit detector folder at ``target``, built from the PaddleX model folder
    ``float_dir`` (``inference.onnx`` and ``inference.yml``) unless already there.
    Built in a temporary folder beside ``target`` and renamed into place, so workers
    starting together never load half a model: the first to rename wins, and the
    others (which built the same bytes) drop their copies."""
    model = target / "inference.onnx"
    if model.is_file() and (target / "inference.yml").is_file():
        return target
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        lifted, prepared = building / "float.onnx", building / "prepared.onnx"
        float_model = onnx.load(str((float_dir / "inference.onnx").resolve()))
        onnx.save(version_converter.convert_version(float_model, _OPSET), str(lifted))
        # ONNX Runtime's own clean-up first (folds additions into the convolutions,
        # infers shapes), so fewer tensors need quantizing: 210 quantize steps instead of
        # 385, and 0.17-0.21 CPU-s a 960x544 frame instead of 0.26-0.28.
        quant_pre_process(str(lifted), str(prepared), skip_symbolic_shape=True)
        feed_name = float_model.graph.input[0].name

        class Pictures(CalibrationDataReader):
            def __init__(self) -> None:
                self._pictures = calibration_pictures()

            def get_next(self) -> dict[str, np.ndarray] | None:
                picture = next(self._pictures, None)
                return None if picture is None else {feed_name: detector_input(picture)}

        quantize_static(
            str(prepared),
            str(building / "inference.onnx"),
            Pictures(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        for leftover in (lifted, prepared, *building.glob("*.data")):
            leftover.unlink()
        shutil.copyfile(float_dir / "inference.yml", building / "inference.yml")
        building.chmod(0o755)  # mkdtemp makes it private; any user's worker may load it
        try:
            os.replace(building, target)
        except OSError:
            # Another worker renamed its copy (the same bytes) into place first; it may
            # be loading it, so it stays.
            if not (model.is_file() and (target / "inference.yml").is_file()):
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    _log.info("ocr.int8_detector_built", folder=str(target))
    return target
