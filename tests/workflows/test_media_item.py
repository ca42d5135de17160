"""The item workflow's own pure steps, apart from Temporal (the workflow itself runs in
the end-to-end tests, and its recorded histories replay in test_replay.py)."""

from __future__ import annotations

from models.jobs import TextLine
from models.pipeline import FrameText
from workflows.media_item import scene_texts


def frame(scene: int, at: float, *texts: str) -> FrameText:
    lines = [
        TextLine(text=t, confidence=0.9, box=[[0, n], [9, n], [9, n + 1], [0, n + 1]], time_s=at)
        for n, t in enumerate(texts)
    ]
    return FrameText(scene_index=scene, frame=round(at * 25), lines=lines)


def test_a_scenes_lines_are_listed_once_at_the_first_frame_that_showed_them() -> None:
    texts = scene_texts(
        [
            frame(0, 0.0, "TITLE", "first caption"),
            frame(0, 2.0, "TITLE", "second caption"),
            frame(0, 4.0, "TITLE", "first caption"),
            frame(1, 6.0, "TITLE"),
            frame(2, 8.0),
        ]
    )
    assert {
        scene: [(line.text, line.time_s) for line in lines] for scene, lines in texts.items()
    } == {
        0: [("TITLE", 0.0), ("first caption", 0.0), ("second caption", 2.0)],
        # Another scene lists its own lines, whatever an earlier one showed.
        1: [("TITLE", 6.0)],
        2: [],
    }


def test_the_same_words_in_two_places_of_one_frame_are_two_lines() -> None:
    texts = scene_texts([frame(0, 0.0, "50%", "50%"), frame(0, 2.0, "50%", "OFF")])
    assert [(line.text, line.box[0][1]) for line in texts[0]] == [
        ("50%", 0),
        ("50%", 1),
        ("OFF", 1),
    ]


def test_thousands_of_key_frames_in_one_scene_list_each_caption_once() -> None:
    frames = [frame(0, n * 2.0, "CHANNEL", f"caption {n}") for n in range(3000)]
    lines = scene_texts(frames)[0]
    assert [line.text for line in lines] == ["CHANNEL", *(f"caption {n}" for n in range(3000))]
