from __future__ import annotations

from itertools import combinations
from typing import Any

import cv2
import numpy as np
import pytest

from activities.ocr import OcrSettings, PaddleOcrEngine, RecognizedLine
from activities.text_regions import (
    CELL,
    MARGIN_CELLS,
    FlatSkippingDetector,
    Region,
    busy_regions,
    detector_size,
)


def flat_frame(height: int = 720, width: int = 1280, seed: int = 3) -> np.ndarray:
    """A vertical gradient of one colour with a little noise, through JPEG, as a key
    frame of a title card or a plain-background caption shot would be."""
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    frame = np.array([90, 40, 20], np.float32) + rows * np.array([80, 50, 30], np.float32)
    frame = np.broadcast_to(frame, (height, width, 3)).copy()
    frame += np.random.default_rng(seed).normal(0, 1.0, frame.shape)
    return jpeg(np.clip(frame, 0, 255).astype(np.uint8))


def jpeg(frame: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def write(frame: np.ndarray, text: str, x: int, y: int) -> None:
    """Draws ``text`` in white with its baseline at (x, y)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(frame, text, (x, y), font, 1.4, (255, 255, 255), 3, cv2.LINE_AA)


def inside(box: tuple[int, int, int, int], region: Region) -> bool:
    x0, y0, x1, y1 = box
    return (
        region.x <= x0
        and region.y <= y0
        and x1 <= region.x + region.width
        and y1 <= region.y + region.height
    )


def overlap(a: Region, b: Region) -> bool:
    return (
        a.x < b.x + b.width
        and b.x < a.x + a.width
        and a.y < b.y + b.height
        and b.y < a.y + a.height
    )


def test_a_flat_frame_has_no_busy_region() -> None:
    assert busy_regions(flat_frame(544, 960)) == []


def drawn_box(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(cv2.absdiff(before, after).max(axis=2) > 0)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_text_on_flat_colour_gets_a_region_each_with_its_margin_and_nothing_else() -> None:
    frame = flat_frame(544, 960)
    boxes = []
    for text, x, y in [("NORTH MARKET", 40, 80), ("EVENING 7", 600, 480)]:
        before = frame.copy()
        write(frame, text, x, y)
        boxes.append(drawn_box(before, frame))
    regions = busy_regions(frame)
    assert len(regions) == 2
    margin = MARGIN_CELLS * CELL
    for x0, y0, x1, y1 in boxes:
        grown = (
            max(x0 - margin, 0),
            max(y0 - margin, 0),
            min(x1 + margin, 960),
            min(y1 + margin, 544),
        )
        assert any(inside(grown, region) for region in regions), (grown, regions)
    for region in regions:
        assert all(v % CELL == 0 for v in (region.x, region.y, region.width, region.height))
    assert sum(r.area for r in regions) < 0.3 * 960 * 544


def test_regions_whose_boxes_would_overlap_are_merged() -> None:
    frame = flat_frame(544, 960)
    # An outline around a word, flat between them: two components, one inside the
    # other's bounding box.
    cv2.rectangle(frame, (8, 8), (952, 536), (255, 255, 255), 3)
    write(frame, "INSIDE", 400, 280)
    regions = busy_regions(frame)
    assert len(regions) == 1
    assert not any(overlap(a, b) for a, b in combinations(regions, 2))


def test_detector_size_is_the_size_paddlex_resizes_to() -> None:
    from paddlex.inference.models.text_detection.processors import DetResizeForTest

    resize = DetResizeForTest(limit_side_len=960, limit_type="max")
    params = {"limit_side_len": 960, "limit_type": "max", "max_side_limit": 4000}
    for height, width in [(720, 1280), (1080, 1920), (1280, 720), (360, 640), (500, 333)]:
        image = np.zeros((height, width, 3), np.uint8)
        resized, _ = resize.resize_image_type0(image, 960, "max", 4000)
        assert detector_size(height, width, params) == resized.shape[:2]
    assert detector_size(720, 1280, {**params, "limit_type": "min"}) is None


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> tuple[PaddleOcrEngine, PaddleOcrEngine]:
    """A PaddleOCR engine that skips flat regions (the default) and one that does not,
    both on the float detector, so that boxes differ by the regions' cut alone (the
    8-bit detector is held against the float one in test_det_int8.py)."""
    cache = tmp_path_factory.mktemp("ocr-models")
    skipping = PaddleOcrEngine(OcrSettings(threads=1, det_int8=False, cache_dir=cache))
    whole = PaddleOcrEngine(
        OcrSettings(threads=1, skip_flat_regions=False, det_int8=False, cache_dir=cache)
    )
    return skipping, whole


def detector(engine: PaddleOcrEngine) -> Any:
    return engine._ocr.paddlex_pipeline._pipeline.text_det_model


def test_the_detector_is_wrapped_only_where_flat_regions_are_skipped(
    engines: tuple[PaddleOcrEngine, PaddleOcrEngine],
) -> None:
    skipping, whole = engines
    assert isinstance(detector(skipping), FlatSkippingDetector)
    assert not isinstance(detector(whole), FlatSkippingDetector)


def same_lines(a: list[RecognizedLine], b: list[RecognizedLine], tolerance: float) -> None:
    assert [line.text for line in a] == [line.text for line in b]
    for x, y in zip(a, b, strict=True):
        assert np.abs(np.array(x.box) - np.array(y.box)).max() <= tolerance, (x, y)


def test_on_flat_colour_the_lines_are_read_from_a_fraction_of_the_frame(
    engines: tuple[PaddleOcrEngine, PaddleOcrEngine],
) -> None:
    skipping, whole = engines
    frame = flat_frame()
    write(frame, "NORTH MARKET 42", 60, 110)
    write(frame, "EVENING NEWS 7", 820, 660)
    counter = detector(skipping)
    given, detected = counter.pixels_given, counter.pixels_detected
    read = skipping.read(frame)
    assert counter.pixels_given - given == 960 * 544
    assert counter.pixels_detected - detected < 0.3 * 960 * 544
    assert [line.text for line in read] == ["NORTH MARKET 42", "EVENING NEWS 7"]
    same_lines(read, whole.read(frame), tolerance=6)


def test_a_frame_busy_all_over_is_detected_whole(
    engines: tuple[PaddleOcrEngine, PaddleOcrEngine],
) -> None:
    skipping, whole = engines
    noise = np.random.default_rng(5).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    frame = cv2.GaussianBlur(noise, (5, 5), 0)
    cv2.rectangle(frame, (380, 300), (900, 400), (0, 0, 0), -1)
    write(frame, "BUSY STREET 9", 420, 370)
    counter = detector(skipping)
    given, detected = counter.pixels_given, counter.pixels_detected
    read = skipping.read(frame)
    assert counter.pixels_detected - detected == counter.pixels_given - given == 960 * 544
    assert "BUSY STREET 9" in [line.text for line in read]
    same_lines(read, whole.read(frame), tolerance=0)


def test_a_frame_with_nothing_on_it_reads_no_lines_without_detecting(
    engines: tuple[PaddleOcrEngine, PaddleOcrEngine],
) -> None:
    skipping, _ = engines
    counter = detector(skipping)
    detected = counter.pixels_detected
    assert skipping.read(flat_frame()) == []
    assert counter.pixels_detected == detected
