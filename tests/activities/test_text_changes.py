"""``TextChangeWatch`` on frames drawn here: captions over moving pictures, and moving
pictures with no text. The frames are what the scene pass hands it (brightness at
full size); the picture it carries is the frame's number."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import cv2
import numpy as np

from activities.scenes import PickedKeyframe, shown_by_main
from activities.text_changes import TextChangeWatch

FPS = 30.0
HEIGHT, WIDTH = 540, 960
CAPTIONS = ["OPEN GARDEN MARKET", "SIGNAL TRAVEL NOTES", "QUIET RIVER PATH", "NEW CITY LIGHTS"]


def moving_texture(frame: int) -> np.ndarray:
    """Soft blotches drifting 4 px a frame: filmed-like, with no sharp edges."""
    rng = np.random.default_rng(3)
    blotches = cv2.resize(
        rng.integers(60, 160, (HEIGHT // 24, WIDTH // 12), dtype=np.uint8),
        (WIDTH * 2, HEIGHT),
        interpolation=cv2.INTER_CUBIC,
    )
    x = (frame * 4) % WIDTH
    return np.ascontiguousarray(blotches[:, x : x + WIDTH])


def with_caption(image: np.ndarray, text: str) -> np.ndarray:
    """White text with a black outline in the lower third, as subtitles are drawn."""
    out = image.copy()
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 1.4
    (width, _), _ = cv2.getTextSize(text, font, scale, 3)
    origin = ((WIDTH - width) // 2, int(HEIGHT * 0.8))
    cv2.putText(out, text, origin, font, scale, 0, 9, cv2.LINE_AA)
    cv2.putText(out, text, origin, font, scale, 255, 3, cv2.LINE_AA)
    return out


def picks_of(
    draw: Callable[[int], np.ndarray], frames: int, watch: TextChangeWatch[int] | None = None
) -> list[int]:
    watch = watch or TextChangeWatch(FPS)
    picked: list[int] = []
    for frame in range(frames):
        if frame >= watch.next_at:  # the scene pass decodes the rest, but shows none
            picked += [number for number, _ in watch.look(frame, draw(frame), frame)]
    return picked


def test_each_caption_of_a_moving_shot_is_picked_once_while_it_is_shown() -> None:
    # Each caption replaces the last with no gap, every 2 s.
    picks = picks_of(lambda f: with_caption(moving_texture(f), CAPTIONS[f // 60]), 240)
    assert len(picks) == len(CAPTIONS), picks
    for caption, frame in enumerate(picks):
        assert caption * 60 <= frame < caption * 60 + 60, (caption, picks)


def test_moving_pictures_without_text_pick_nothing() -> None:
    assert picks_of(moving_texture, 300) == []

    def white_card(frame: int) -> np.ndarray:
        """A sharp-edged white card crossing the shot: strokes, but never steady."""
        image = moving_texture(frame)
        x = 20 + frame * 2
        image[120:420, x : x + 240] = 250
        return image

    assert picks_of(white_card, 300) == []

    def panning_checkerboard(frame: int) -> np.ndarray:
        cells = (np.indices((HEIGHT, WIDTH * 2)) // 16).sum(axis=0) % 2
        board = (cells * 255).astype(np.uint8)
        x = frame * 5 % WIDTH
        return with_caption(np.ascontiguousarray(board[:, x : x + WIDTH]), CAPTIONS[frame // 60])

    # Strokes everywhere: text cannot be told from the pattern, so none is picked.
    assert picks_of(panning_checkerboard, 240) == []


def test_a_shaking_camera_on_a_page_of_text_picks_nothing() -> None:
    """Handheld, filming a page: every edge moves a pixel or a few between looks, and
    sometimes lands where it was. The text is the same throughout."""
    page = np.full((HEIGHT + 20, WIDTH + 20), 235, np.uint8)
    for row, line in enumerate([*CAPTIONS, "ROOM 12 AT NOON TODAY"]):
        origin = (40, 80 + row * 90)
        cv2.putText(page, line, origin, cv2.FONT_HERSHEY_SIMPLEX, 1.6, 20, 3, cv2.LINE_AA)
    for reach in (1, 2, 4, 8):
        shakes = np.random.default_rng(reach).integers(-reach, reach + 1, (600, 2))

        def shaken(frame: int, shakes: np.ndarray = shakes) -> np.ndarray:
            dx, dy = shakes[frame]
            return np.ascontiguousarray(page[10 + dy : 10 + dy + HEIGHT, 10 + dx : 10 + dx + WIDTH])

        assert picks_of(shaken, 600) == [], reach


def test_text_that_goes_away_and_comes_back_picks_nothing() -> None:
    def draw(frame: int) -> np.ndarray:
        shown = frame < 60 or frame >= 120
        image = moving_texture(frame)
        return with_caption(image, CAPTIONS[0]) if shown else image

    assert picks_of(draw, 240) == []


def test_captions_faster_than_a_second_are_picked_a_second_apart() -> None:
    # New text is steady at the second look that sees it: two looks, a second.
    picks = picks_of(lambda f: with_caption(moving_texture(f), CAPTIONS[f // 20 % 4]), 300)
    assert len(picks) >= 4, picks
    # The scene's first text comes with the first change, so only it may be closer.
    assert all(b - a >= 30 for a, b in pairwise(picks[1:])), picks


def test_moving_text_is_never_steady_and_picks_nothing() -> None:
    """A ticker or rolling credits: left to the scene's own key frame."""

    def ticker(frame: int) -> np.ndarray:
        image = moving_texture(0)
        text = " ".join(CAPTIONS)
        cv2.putText(image, text, (WIDTH - frame * 6, 480), cv2.FONT_HERSHEY_SIMPLEX, 1.4, 0, 9)
        cv2.putText(image, text, (WIDTH - frame * 6, 480), cv2.FONT_HERSHEY_SIMPLEX, 1.4, 255, 3)
        return image

    assert picks_of(ticker, 300) == []


def test_a_restart_forgets_the_last_scene() -> None:
    watch: TextChangeWatch[int] = TextChangeWatch(FPS)
    assert picks_of(lambda f: with_caption(moving_texture(f), CAPTIONS[0]), 90, watch) == []
    watch.restart(90)
    # The next scene's first caption is its text before any change: nothing to pick.
    assert picks_of(lambda f: with_caption(moving_texture(f), CAPTIONS[1]), 180, watch) == []


def test_the_main_key_frame_stands_for_the_text_it_surely_shows() -> None:
    def extras(*frames: int) -> list[PickedKeyframe]:
        return [PickedKeyframe(0, f, f"at-{f}.jpg") for f in frames]

    every = 15
    picked = extras(15, 75, 135)
    # Shown from 75 on, and changed no sooner than three looks before 135.
    assert shown_by_main(75, picked, every) == picked[1]
    assert shown_by_main(90, picked, every) == picked[1]
    # Within three looks of the next pick, the change may already have happened.
    assert shown_by_main(91, picked, every) is None
    assert shown_by_main(134, picked, every) is None
    assert shown_by_main(200, picked, every) == picked[2]
    assert shown_by_main(10, picked, every) is None
    assert shown_by_main(20, [], every) is None
