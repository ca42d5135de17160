"""Where on a frame text detection has to look: the parts of it that are not flat.

Text is strokes that stand out from what surrounds them. Where the pixels of a frame
span no more than ``FLAT_CONTRAST`` levels in any colour over any 3x3 neighbourhood,
there is nothing to read, yet PP-OCR's detection network costs the same for every
pixel it is given. On frames of flat colour (title cards, slides, screen recordings,
captions over plain backgrounds) that is most of the frame. ``FlatSkippingDetector``
gives the network only the busy regions, cut out of the very image it would have been
given whole; a frame busy nearly all over (camera footage) is given whole, as before.

The network sees each region with a margin of flat surroundings, not the whole frame,
so a box it finds may lie a few pixels otherwise (3-5 px on the evaluation set's key
frames, where every line read the same). On the pipeline bench's 720p key frames it cut
OCR from 4.7 to 1.3 CPU-s (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import cv2
import numpy as np

#: The detection network's stride. PaddleX resizes its input to whole multiples of it,
#: and regions are made of whole cells of the resized frame, so a region is given to
#: the network at the scale the whole frame would have been, with no resizing of its own.
CELL = 32
#: A neighbourhood whose pixels span more than this (0-255, in any colour) is busy.
#: Compression noise on the bench's and the evaluation set's flat backgrounds stays
#: under it, and thresholds of 6, 10 and 16 read the same lines on their key frames
#: (fading captions included). Text fainter than this on flat colour is not looked for.
FLAT_CONTRAST = 10
#: Busy cells grow by this many cells on every side before regions are cut, so that
#: each piece of text comes with the flat surroundings the whole frame would give it.
MARGIN_CELLS = 2
#: Regions that cover more of the frame than this, or more regions than
#: ``MAX_REGIONS``, are not worth cutting: the frame is detected whole.
WHOLE_FRAME_SHARE = 0.6
MAX_REGIONS = 8

_NEIGHBOURHOOD = np.ones((3, 3), np.uint8)
_GROW = np.ones((2 * MARGIN_CELLS + 1, 2 * MARGIN_CELLS + 1), np.uint8)


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether two (x, y, width, height) boxes share any area."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@dataclass(frozen=True)
class Region:
    """A rectangle of a resized frame, in pixels; every side a multiple of ``CELL``."""

    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height


def busy_regions(image: np.ndarray) -> list[Region]:
    """Rectangles that hold every busy neighbourhood of ``image`` (BGR or grey, both
    sides multiples of ``CELL``), grown by ``MARGIN_CELLS``, made of whole cells, none
    overlapping another. An image flat all over has none."""
    rows, cols = image.shape[0] // CELL, image.shape[1] // CELL
    spread = cv2.morphologyEx(image, cv2.MORPH_GRADIENT, _NEIGHBOURHOOD)
    if spread.ndim == 3:  # OpenCV's per-element max: numpy's over the colour axis is 15x slower
        spread = cv2.max(cv2.max(spread[:, :, 0], spread[:, :, 1]), spread[:, :, 2])
    cells = (spread > FLAT_CONTRAST).reshape(rows, CELL, cols, CELL)
    busy = np.asarray(cells.any(axis=(1, 3)), dtype=np.uint8)
    if not busy.any():
        return []
    grown = cv2.dilate(busy, _GROW)
    count, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    boxes = [tuple(int(v) for v in stats[label, :4]) for label in range(1, count)]
    # Components do not touch, but their bounding boxes may overlap; text in an overlap
    # would be found twice, so overlapping boxes are merged until none overlap.
    while pair := next(
        ((i, j) for i, j in combinations(range(len(boxes)), 2) if _overlap(boxes[i], boxes[j])),
        None,
    ):
        first, second = boxes[pair[0]], boxes.pop(pair[1])
        x, y = min(first[0], second[0]), min(first[1], second[1])
        right = max(first[0] + first[2], second[0] + second[2])
        bottom = max(first[1] + first[3], second[1] + second[3])
        boxes[pair[0]] = (x, y, right - x, bottom - y)
    return [Region(x * CELL, y * CELL, w * CELL, h * CELL) for x, y, w, h in boxes]


def detector_size(height: int, width: int, params: dict[str, Any]) -> tuple[int, int] | None:
    """The (height, width) PaddleX's detection resizes a frame to under ``params``
    (its ``DetResizeForTest`` rule for ``limit_type="max"``), or None where that rule
    does not apply: another limit type, or a frame it would shrink again."""
    limit = params.get("limit_side_len")
    if params.get("limit_type") != "max" or not limit:
        return None
    ratio = limit / max(height, width) if max(height, width) > limit else 1.0
    resized_height, resized_width = int(height * ratio), int(width * ratio)
    if max(resized_height, resized_width) > (params.get("max_side_limit") or 4000):
        return None
    return (
        max(round(resized_height / CELL) * CELL, CELL),
        max(round(resized_width / CELL) * CELL, CELL),
    )


class FlatSkippingDetector:
    """PaddleX's text detection predictor, called as its OCR pipeline calls it
    (``detector(images, **params)``, yielding a dict with ``dt_polys`` per image, in
    image coordinates), that gives the network only the busy regions of a frame.

    ``pixels_given`` and ``pixels_detected`` count the resized frames' pixels and those
    the network was given. One instance serves one engine, which one thread uses at a
    time."""

    def __init__(self, whole: Callable[..., Iterable[Any]]) -> None:
        self._whole = whole
        self.pixels_given = 0
        self.pixels_detected = 0

    def __call__(self, images: list[np.ndarray], **params: Any) -> Iterator[Any]:
        for image in images:
            yield self._detect(image, params)

    def _detect(self, image: np.ndarray, params: dict[str, Any]) -> Any:
        height, width = image.shape[:2]
        size = detector_size(height, width, params)
        if size is None:
            return self._detect_whole(image, params, None)
        resized = cv2.resize(image, (size[1], size[0]))  # as PaddleX resizes it
        regions = busy_regions(resized)
        pixels = size[0] * size[1]
        if len(regions) > MAX_REGIONS or sum(r.area for r in regions) > WHOLE_FRAME_SHARE * pixels:
            return self._detect_whole(image, params, pixels)
        self.pixels_given += pixels
        polys: list[np.ndarray] = []
        scale = np.array([width / size[1], height / size[0]])
        for region in regions:
            offset = np.array([region.x, region.y], dtype=np.float64)
            self.pixels_detected += region.area
            crop = resized[region.y : region.y + region.height, region.x : region.x + region.width]
            # Whole cells at the frame's scale: with this limit PaddleX leaves it as it is.
            as_is = {**params, "limit_side_len": max(region.width, region.height)}
            found = next(iter(self._whole([crop], **as_is)))
            for poly in found["dt_polys"]:
                points = (np.asarray(poly, dtype=np.float64) + offset) * scale
                polys.append(np.clip(np.round(points), 0, [width, height]))
        if not polys:
            return {"dt_polys": np.empty((0, 4, 2), dtype=np.int16)}
        return {"dt_polys": np.asarray(polys, dtype=np.int16)}

    def _detect_whole(self, image: np.ndarray, params: dict[str, Any], pixels: int | None) -> Any:
        if pixels is not None:
            self.pixels_given += pixels
            self.pixels_detected += pixels
        return next(iter(self._whole([image], **params)))
