"""A fast slice of the quality evaluation (eval/): a clip with cuts, soft transitions,
several kinds of text and speech; a clip of false-cut traps; a clip of music only.
Real media, real models. The bounds are the values measured with docs/quality.md's
run, with a margin, so a regression in cuts, OCR or ASR fails CI."""

from __future__ import annotations

import pytest

from eval.clips import build_set, ci_slice, truth_of
from eval.run import Totals, evaluate


@pytest.fixture(scope="module")
def reelscope(tmp_path_factory: pytest.TempPathFactory) -> tuple[Totals, dict[str, Totals]]:
    totals, per_clip = evaluate(
        ci_slice(seed=7),
        seed=7,
        cache=tmp_path_factory.mktemp("cache"),
        log=False,
        baseline=False,
    )
    return totals["Reelscope"], {name: by["Reelscope"] for name, by in per_clip.items()}


def test_cuts(reelscope: tuple[Totals, dict[str, Totals]]) -> None:
    totals, per_clip = reelscope
    assert totals.cuts.f1 >= 0.95, vars(totals.cuts)
    assert totals.cuts.trap_false_cuts == 0, "flash, glitch, overlay or motion became a cut"
    assert per_clip["static_music_only"].cuts.fp == 0


def test_on_screen_text(reelscope: tuple[Totals, dict[str, Totals]]) -> None:
    totals, _ = reelscope
    assert totals.text.cer({"caption"}) <= 0.02
    assert totals.text.cer() <= 0.05
    assert totals.text.recall() >= 0.95
    assert totals.text.missed() == 0


def test_speech(reelscope: tuple[Totals, dict[str, Totals]]) -> None:
    totals, per_clip = reelscope
    assert totals.speech.wer <= 0.10
    assert totals.speech.edge_error_s <= 1.0
    assert per_clip["static_music_only"].speech.invented_words == 0, "words from music"
    assert totals.speech.invented_words == 0


def test_the_set_is_reproducible_from_its_seed() -> None:
    a, b, c = build_set(7, long_clip=False), build_set(7, long_clip=False), build_set(8, False)
    assert [truth_of(x).texts for x in a] == [truth_of(x).texts for x in b]
    assert [truth_of(x).texts for x in a] != [truth_of(x).texts for x in c]


def test_truth_of_a_variable_frame_rate_clip() -> None:
    vfr = next(c for c in build_set(7, long_clip=False) if c.vfr_from_frame)
    truth = truth_of(vfr)
    # Shots of 60 frames: cuts at 2 s and 4 s, then frames last twice as long.
    assert truth.hard_cuts_s[:3] == pytest.approx([2.0, 4.0, 8.0])
    assert truth.cut_tolerance_s[2] == pytest.approx(2 / 30 + 1e-3)
