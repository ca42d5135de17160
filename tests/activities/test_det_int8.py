"""The 8-bit text detector: the worker runs it, and it reads what the float one reads."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import structlog
import structlog.testing
from PIL import Image, ImageDraw, ImageFont

from activities.det_int8 import build_int8_detector, calibration_pictures, detector_input
from activities.ocr import OcrEngines, PaddleOcrEngine
from worker import Models


def captioned_picture(width: int, height: int, busy: bool) -> np.ndarray:
    """A big caption and a smaller line, BGR, on a busy picture (blotches and grain all
    over, as filmed footage: detection runs on the whole frame) or on flat colour (it
    runs on the lines' regions alone)."""
    rng = np.random.default_rng(5)
    base = rng.normal(110, 35, size=(height // 8, width // 8, 3))
    image = np.kron(base, np.ones((8, 8, 1))) + rng.normal(0, 10, size=(height, width, 3))
    if not busy:
        image = np.full((height, width, 3), (40, 90, 150), dtype=np.float64)
    pil = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    short = min(width, height)
    big = ImageFont.load_default(size=short // 14)
    small = ImageFont.load_default(size=short // 26)
    top = int(height * 0.70)
    draw.rectangle((40, top, width - 40, top + short // 8), fill=0)
    draw.text((70, top + short // 60), "HARBOUR BRIDGE REOPENS", font=big, fill=(255, 255, 255))
    draw.text((90, 60), "Live at 7pm on channel 4", font=small, fill=(255, 255, 0))
    return np.asarray(pil)[:, :, ::-1].copy()


def worker_engine(models: Models) -> PaddleOcrEngine:
    pool = models.ocr.get("paddleocr")
    pool.read(np.zeros((64, 64, 3), dtype=np.uint8))  # builds its first engine if needed
    engine = pool.engines[0]  # type: ignore[attr-defined]
    assert isinstance(engine, PaddleOcrEngine)
    return engine


def test_the_worker_detects_text_with_an_8bit_copy_of_the_bundled_model(models: Models) -> None:
    folder = worker_engine(models).det_model_dir
    assert folder.name.startswith("PP-OCRv6_small_det-int8-")
    graph = onnx.load(str(folder / "inference.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    quantized_weights = [
        init for init in graph.initializer if init.data_type == onnx.TensorProto.INT8
    ]
    assert len(quantized_weights) > 20, "the convolutions' weights are stored in 8 bits"
    assert (folder / "inference.yml").is_file()


@pytest.mark.parametrize(
    ("size", "busy"),
    [((1280, 720), True), ((720, 1280), True), ((1280, 720), False)],
    ids=["busy-landscape", "busy-portrait", "flat-landscape"],
)
def test_the_8bit_detector_reads_the_lines_the_float_one_reads(
    models: Models, size: tuple[int, int], busy: bool
) -> None:
    int8 = worker_engine(models)
    settings = replace(models.ocr._settings, det_int8=False)
    float_engine = OcrEngines(settings, "paddleocr").get("paddleocr")
    picture = captioned_picture(*size, busy=busy)

    # Spaces come and go with a box a pixel wider or narrower; the letters must not.
    read_int8 = {line.text.replace(" ", ""): line for line in int8.read(picture)}
    read_float = {line.text.replace(" ", ""): line for line in float_engine.read(picture)}

    assert {"HARBOURBRIDGEREOPENS", "Liveat7pmonchannel4"} <= set(read_float)
    assert set(read_int8) == set(read_float)
    for text, line in read_int8.items():
        mine = np.asarray(line.box)
        theirs = np.asarray(read_float[text].box)
        # The same box, to within a few pixels at each corner.
        assert np.abs(mine - theirs).max() <= 8, (text, mine, theirs)


def test_an_existing_folder_is_used_without_building_again(models: Models) -> None:
    folder = worker_engine(models).det_model_dir
    model = folder / "inference.onnx"
    before = model.stat().st_mtime_ns
    float_dir = folder.parent / models.ocr._settings.det_model_name
    assert build_int8_detector(float_dir, folder) == folder
    assert model.stat().st_mtime_ns == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}-")], (
        "no temporary build folder is left behind"
    )


def test_workers_building_at_once_end_with_one_whole_folder(models: Models, tmp_path: Path) -> None:
    float_dir = worker_engine(models).det_model_dir.parent / models.ocr._settings.det_model_name
    target = tmp_path / "int8"
    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda _: build_int8_detector(float_dir, target), range(2)))
    assert built == [target, target]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8"], "no build folder is left"
    assert sorted(p.name for p in target.iterdir()) == ["inference.onnx", "inference.yml"]
    # The bytes every machine builds: the worker's own copy, built elsewhere.
    mine = (target / "inference.onnx").read_bytes()
    assert mine == (worker_engine(models).det_model_dir / "inference.onnx").read_bytes()


def test_a_detector_that_cannot_be_built_leaves_the_worker_on_the_float_one(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_room(float_dir: Path, target: Path) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("activities.ocr.build_int8_detector", no_room)
    settings = replace(models.ocr._settings, cache_dir=tmp_path)
    with structlog.testing.capture_logs() as logs:
        engine = PaddleOcrEngine(settings)
    assert engine.det_model_dir == tmp_path / settings.det_model_name
    warning = next(e for e in logs if e["event"] == "ocr.int8_detector_failed")
    assert "No space left on device" in warning["error"]
    picture = captioned_picture(1280, 720, busy=False)
    assert "HARBOURBRIDGEREOPENS" in {line.text.replace(" ", "") for line in engine.read(picture)}


def test_calibration_pictures_are_the_same_on_every_machine() -> None:
    first = list(calibration_pictures(count=3))
    again = list(calibration_pictures(count=3))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[2].shape == (1280, 720, 3) and first[0].shape == (720, 1280, 3)
    assert not np.array_equal(first[0], first[1])


def test_detector_input_is_shaped_as_paddlex_feeds_it() -> None:
    tensor = detector_input(np.full((720, 1280, 3), 255, dtype=np.uint8))
    assert tensor.shape == (1, 3, 544, 960) and tensor.dtype == np.float32
    # White, normalised per channel: (1 - mean) / std.
    assert np.allclose(tensor[0, :, 0, 0], [2.2489, 2.4286, 2.64], atol=1e-3)


def test_a_model_dir_of_ones_own_is_used_as_it_is(models: Models, tmp_path: Path) -> None:
    float_dir = worker_engine(models).det_model_dir.parent / models.ocr._settings.det_model_name
    settings = replace(models.ocr._settings, det_model_dir=float_dir, cache_dir=tmp_path)
    engine = PaddleOcrEngine(settings)
    assert engine.det_model_dir == float_dir
    assert not any("int8" in name for name in os.listdir(tmp_path))
