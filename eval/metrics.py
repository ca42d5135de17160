"""Scores against the truth of a clip: pure functions, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import jiwer

from eval.clips import Truth
from eval.systems import SystemOut

#: Seconds around a speech span inside which words are not counted as invented:
#: word timestamps may run a little past the audible speech.
SPEECH_MARGIN_S = 0.5


@dataclass
class CutScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    trap_false_cuts: int = 0
    soft_found: int = 0
    soft_total: int = 0

    def add(self, other: CutScore) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score_cuts(truth: Truth, out: SystemOut) -> CutScore:
    """Hard cuts matched one to one within one frame; cuts inside a marked soft
    transition are neither rewarded nor punished."""
    score = CutScore(soft_total=len(truth.soft_spans_s))
    unmatched = list(zip(truth.hard_cuts_s, truth.cut_tolerance_s, strict=True))
    for found in out.cuts_s:
        match = next((c for c in unmatched if abs(c[0] - found) <= c[1]), None)
        if match is not None:
            unmatched.remove(match)
            score.tp += 1
            continue
        tolerance = 0.05
        if any(a - tolerance <= found <= b + tolerance for a, b in truth.soft_spans_s):
            continue
        score.fp += 1
        if truth.traps_only:
            score.trap_false_cuts += 1
    score.fn = len(unmatched)
    score.soft_found = sum(
        any(a - 0.05 <= found <= b + 0.05 for found in out.cuts_s) for a, b in truth.soft_spans_s
    )
    return score


def _norm_text(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\n", " ")).strip().upper()


@dataclass
class TextScore:
    #: (style, CER, word recall) per text event.
    events: list[tuple[str, float, float]] = field(default_factory=list)

    def add(self, other: TextScore) -> None:
        self.events += other.events

    def cer(self, styles: set[str] | None = None) -> float:
        values = [c for s, c, _ in self.events if styles is None or s in styles]
        return sum(values) / len(values) if values else 0.0

    def recall(self) -> float:
        values = [r for _, _, r in self.events]
        return sum(values) / len(values) if values else 1.0

    def missed(self) -> int:
        return sum(1 for _, _, r in self.events if r == 0.0)


def score_text(truth: Truth, out: SystemOut) -> TextScore:
    """Each text event against the lines read in frames shown while it was on screen:
    the best single line, or all those lines joined, whichever is closer."""
    score = TextScore()
    for event in truth.texts:
        start, end = float(event["start_s"]), float(event["end_s"])  # type: ignore[arg-type]
        wanted = _norm_text(str(event["text"]))
        lines = [
            _norm_text(line)
            for scene in out.scenes
            for when, texts in scene.frames
            if start <= when <= end
            for line in texts
        ]
        candidates = [*lines, " ".join(lines)] if lines else [""]
        cer = min(min(1.0, float(jiwer.cer(wanted, c))) if c else 1.0 for c in candidates)
        cjk = event["style"] == "cjk"
        units = list(wanted.replace(" ", "")) if cjk else wanted.split()
        seen = " ".join(lines)
        seen_units = set(seen.replace(" ", "")) if cjk else set(seen.split())
        recall = sum(1 for u in units if u in seen_units) / len(units) if units else 1.0
        score.events.append((str(event["style"]), cer, recall))
    return score


def words_of(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


@dataclass
class SpeechScore:
    wer_errors: float = 0.0
    wer_words: int = 0
    #: Words heard where nothing was said (music, noise, silence).
    invented_words: int = 0
    #: |error| in seconds of the first and last word heard around each speech span
    #: against where speech is audible.
    edge_errors: list[float] = field(default_factory=list)

    def add(self, other: SpeechScore) -> None:
        self.wer_errors += other.wer_errors
        self.wer_words += other.wer_words
        self.invented_words += other.invented_words
        self.edge_errors += other.edge_errors

    @property
    def wer(self) -> float:
        return self.wer_errors / self.wer_words if self.wer_words else 0.0

    @property
    def edge_error_s(self) -> float:
        return sum(self.edge_errors) / len(self.edge_errors) if self.edge_errors else 0.0


def score_speech(truth: Truth, out: SystemOut) -> SpeechScore:
    score = SpeechScore()
    spans = truth.speech_spans_s
    heard = words_of(out.transcript)
    if truth.speech_text:
        said = words_of(truth.speech_text)
        score.wer_words = len(said)
        score.wer_errors = float(jiwer.wer(" ".join(said), " ".join(heard) or "-")) * len(said)
    for start, end, word in out.words:
        middle = (start + end) / 2
        inside = any(a - SPEECH_MARGIN_S <= middle <= b + SPEECH_MARGIN_S for a, b in spans)
        if not inside:
            score.invented_words += len(words_of(word))
    for onset, offset in spans:
        mine = [w for w in out.words if w[1] > onset - 1.0 and w[0] < offset + 1.0]
        if mine:
            score.edge_errors.append(abs(mine[0][0] - onset))
            score.edge_errors.append(abs(mine[-1][1] - offset))
    return score
