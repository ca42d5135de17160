"""When the text on screen changes within one shot.

OCR reads each scene's key frame. A shot that shows one caption after another (a
talking head's burned-in subtitles, a slide whose bullets appear one by one, a
scoreboard) is one scene with one key frame, so all but one of its captions went
unread. ``TextChangeWatch`` follows the open scene during the scene pass and says which
of its frames show text that no frame picked before in the scene showed.

It looks at one frame every ``LOOK_SECONDS``, brought down to ``LOOK_SIZE`` pixels on
its long side, in brightness alone:

- **Strokes** are the pixels whose 3x3 neighbourhood spans more than ``STROKE_CONTRAST``
  levels, and that have both a sharp rise across and one along them within
  ``CORNER_REACH`` pixels: the edges of letters drawn to be read (light on a dark
  outline or box, dark on light), which turn within a few pixels. Skin, sky and most
  filmed texture stay under the contrast; long straight edges lack the turn.
- A stroke is **steady** when its 3x3 neighbourhood is, on average, within
  ``STEADY_LEVELS`` of what the last look saw there (an average, so that grain and
  compression noise do not count as movement). Captions stand still for a second or
  more; most moving things do not land on the same values half a second later.
- The text **changed** when at least ``MIN_CHANGED`` steady stroke pixels differ by
  more than ``CHANGED_LEVELS`` from the frame the scene's text was last picked at, and
  that frame moved as the whole picture moved since (a shaking or panning camera on a
  page, a sign, a screen) does not explain them (``same_text_moved``). Text that only
  goes away picks nothing. New text is steady at the second look that sees it, so a
  change is picked at most two looks after it happened, and picks are at least two
  looks apart.

A look whose strokes cover more than ``BUSY_SHARE`` of the frame (a moving
high-contrast pattern, whose repeats land on themselves) picks nothing.

The scene's first steady look is its text before any change. It is only worth reading
when something changed after it, so it is handed back with the first change, if its
strokes were enough to be text at all. Side effects: none; the caller keeps whatever
``T`` is (a frame's picture) and writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import cv2
import numpy as np

#: Seconds between the frames looked at.
LOOK_SECONDS = 0.5
#: The long side, in pixels, of the frames as looked at.
LOOK_SIZE = 640
#: A 3x3 neighbourhood spanning more than this (0-255) is a stroke. White captions with
#: a dark outline or box span 200 and more; the evaluation set's moving textures stay
#: under 100, and the filmed bench clip's grain and automata mostly do.
STROKE_CONTRAST = 100
#: A stroke pixel whose 3x3 neighbourhood is on average within this of the last look's
#: values there held still.
STEADY_LEVELS = 12
#: A steady stroke pixel this far from the last pick's value there changed.
CHANGED_LEVELS = 48
#: Changed pixels needed, at ``LOOK_SIZE``: a short word of a 540p caption has ~400.
MIN_CHANGED = 300
#: A change is checked again with the last pick's frame moved as the whole picture
#: moved (phase correlation), when that is at least this many pixels.
MIN_SHIFT = 0.5
#: Looks whose strokes cover more of the frame than this pick nothing.
BUSY_SHARE = 0.25
#: Pixels from a stroke's edge within which a text stroke turns.
CORNER_REACH = 3

T = TypeVar("T")
_NEIGHBOURHOOD = np.ones((3, 3), np.uint8)
_REACH = np.ones((2 * CORNER_REACH + 1, 2 * CORNER_REACH + 1), np.uint8)


def looked_at(grey: np.ndarray) -> np.ndarray:
    """``grey`` brought down to ``LOOK_SIZE`` on its long side (never up). Bilinear:
    from a 1080p frame in cache, a quarter of the time area averaging takes (0.08
    against 0.32 ms; from a frame fresh from the decoder, memory makes both 0.4-0.6 ms),
    with the same picks on every clip tried (docs/quality.md)."""
    height, width = grey.shape[:2]
    scale = LOOK_SIZE / max(height, width)
    if scale >= 1:
        return grey
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_LINEAR)


def text_strokes(small: np.ndarray) -> np.ndarray:
    """Where ``small`` has strokes that could be text's: a sharp edge with both a
    sharp rise across and one along it within ``CORNER_REACH`` pixels. Letters turn
    within a few pixels; the long straight edges of a moving card, a horizon or a
    screen's bars, which hold still along themselves however fast they move, do not."""
    spread = cv2.morphologyEx(small, cv2.MORPH_GRADIENT, _NEIGHBOURHOOD) > STROKE_CONTRAST
    # A 3x3 Sobel weighs a step 4 times its height.
    across = np.abs(cv2.Sobel(small, cv2.CV_16S, 1, 0, ksize=3)) > 4 * STROKE_CONTRAST
    along = np.abs(cv2.Sobel(small, cv2.CV_16S, 0, 1, ksize=3)) > 4 * STROKE_CONTRAST
    near_across = cv2.dilate(across.view(np.uint8), _REACH).view(bool)
    near_along = cv2.dilate(along.view(np.uint8), _REACH).view(bool)
    return spread & near_across & near_along


def changed_pixels(steady: np.ndarray, small: np.ndarray, read: np.ndarray) -> int:
    """Steady stroke pixels of ``small`` more than ``CHANGED_LEVELS`` from ``read``."""
    return int(np.count_nonzero(steady & (cv2.absdiff(small, read) > CHANGED_LEVELS)))


def same_text_moved(steady: np.ndarray, small: np.ndarray, read: np.ndarray) -> bool:
    """Whether ``small`` is ``read`` moved as a whole (a camera that shakes or pans
    over a page, a sign, a screen), by ``MIN_SHIFT`` or more as phase correlation
    finds it. Moved by a fraction of a pixel, sharp text is resampled; so a pixel
    within ``CHANGED_LEVELS`` of any of its 3x3 neighbourhood in the moved ``read``
    has not changed."""
    (dx, dy), _ = cv2.phaseCorrelate(read.astype(np.float32), small.astype(np.float32))
    if abs(dx) < MIN_SHIFT and abs(dy) < MIN_SHIFT:
        return False
    moved = cv2.warpAffine(
        read,
        np.array([[1, 0, dx], [0, 1, dy]], np.float32),
        (read.shape[1], read.shape[0]),
        borderMode=cv2.BORDER_REPLICATE,
    )
    low = cv2.erode(moved, _NEIGHBOURHOOD).astype(np.int16) - CHANGED_LEVELS
    high = cv2.dilate(moved, _NEIGHBOURHOOD).astype(np.int16) + CHANGED_LEVELS
    return int(np.count_nonzero(steady & ((small < low) | (small > high)))) < MIN_CHANGED


@dataclass(frozen=True)
class _Look(Generic[T]):
    frame: int
    picture: T


class TextChangeWatch(Generic[T]):
    """Follows one scene at a time; ``restart`` at each cut."""

    def __init__(self, fps: float) -> None:
        self.every = max(1, round(LOOK_SECONDS * fps))
        self.restart(0)

    def restart(self, start: int) -> None:
        """A scene starts at frame ``start``: nothing seen in the last one counts."""
        self.next_at = start
        self._last: np.ndarray | None = None
        #: The frame the scene's text was last picked at (or its first steady look),
        #: and that look's brightness.
        self._read: tuple[int, np.ndarray] | None = None
        #: The first steady look, while it waits for a change to be worth reading.
        self._first: _Look[T] | None = None

    def look(self, frame: int, grey: np.ndarray, picture: T) -> list[tuple[int, T]]:
        """Frame ``frame``, in brightness at full size; returns the frames (with the
        ``picture`` each came with) whose text should be read, oldest first."""
        if frame < self.next_at:
            return []
        self.next_at = frame + self.every
        small = looked_at(grey)
        last, self._last = self._last, small
        if last is None or last.shape != small.shape:
            return []
        strokes = text_strokes(small)
        steady = strokes & (cv2.blur(cv2.absdiff(small, last), (3, 3)) <= STEADY_LEVELS)
        if self._read is None:
            self._read = (frame, small)
            if np.count_nonzero(steady) >= MIN_CHANGED:
                self._first = _Look(frame, picture)
            return []
        if np.count_nonzero(strokes) > BUSY_SHARE * strokes.size:
            return []
        read = self._read[1]
        if changed_pixels(steady, small, read) < MIN_CHANGED:
            return []
        if same_text_moved(steady, small, read):
            return []
        picks = [] if self._first is None else [(self._first.frame, self._first.picture)]
        self._first = None
        self._read = (frame, small)
        return [*picks, (frame, picture)]
