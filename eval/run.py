"""Score Reelscope and the standalone tools on the evaluation set, side by side.

    .venv/bin/python -m eval.run                 # the whole set (about 10 min on 2 CPUs)
    .venv/bin/python -m eval.run --no-long       # without the 5-minute clip
    .venv/bin/python -m eval.run --write docs/quality.md

Clips are generated from ``--seed`` into a temporary folder (see ``eval/clips.py``)
and deleted afterwards. It prints one table per clip and one summary table; with
``--write`` the summary and the command go into that Markdown file too.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from eval.clips import ClipSpec, build_set, render, truth_of
from eval.metrics import CutScore, SpeechScore, TextScore, score_cuts, score_speech, score_text
from eval.systems import Reelscope, Standalone, SystemOut

DEFAULT_CACHE = Path.home() / ".cache" / "reelscope-eval"


@dataclass
class Totals:
    cuts: CutScore = field(default_factory=CutScore)
    text: TextScore = field(default_factory=TextScore)
    speech: SpeechScore = field(default_factory=SpeechScore)
    seconds: float = 0.0


def evaluate(
    clips: list[ClipSpec],
    seed: int,
    cache: Path,
    log: bool = True,
    baseline: bool = True,
) -> tuple[dict[str, Totals], dict[str, dict[str, Totals]]]:
    """Render each clip, run Reelscope (and the standalone tools, with ``baseline``),
    score. Returns (totals by system, per clip by system). Side effects: a temporary
    folder of media, removed at the end."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    work = Path(tempfile.mkdtemp(prefix="reelscope-eval-"))
    try:
        systems: list[Reelscope | Standalone] = [Reelscope(work)]
        if baseline:
            systems.append(Standalone(work))
        totals = {s.name: Totals() for s in systems}
        per_clip: dict[str, dict[str, Totals]] = {}
        for spec in clips:
            if log:
                print(f"rendering {spec.name} ...", file=sys.stderr, flush=True)
            media = render(spec, work / "media", seed, cache, ffmpeg)
            truth = truth_of(spec)
            per_clip[spec.name] = {}
            for system in systems:
                out: SystemOut = system.run(media)
                clip = Totals(
                    score_cuts(truth, out),
                    score_text(truth, out),
                    score_speech(truth, out),
                    out.seconds,
                )
                per_clip[spec.name][system.name] = clip
                total = totals[system.name]
                total.cuts.add(clip.cuts)
                total.text.add(clip.text)
                total.speech.add(clip.speech)
                total.seconds += clip.seconds
            media.unlink()
        return totals, per_clip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _rows(totals: dict[str, Totals]) -> list[tuple[str, list[str], str]]:
    """(metric, value per system, which way is better)."""

    def each(fn) -> list[str]:  # type: ignore[no-untyped-def]
        return [fn(t) for t in totals.values()]

    return [
        ("hard-cut precision (±1 frame)", each(lambda t: f"{t.cuts.precision:.3f}"), "↑"),
        ("hard-cut recall (±1 frame)", each(lambda t: f"{t.cuts.recall:.3f}"), "↑"),
        ("hard-cut F1", each(lambda t: f"{t.cuts.f1:.3f}"), "↑"),
        ("false cuts on trap clips", each(lambda t: str(t.cuts.trap_false_cuts)), "↓"),
        (
            "soft transitions with a cut",
            each(lambda t: f"{t.cuts.soft_found}/{t.cuts.soft_total}"),
            "·",
        ),
        ("OCR CER, captions", each(lambda t: f"{t.text.cer({'caption'}):.3f}"), "↓"),
        ("OCR CER, all text events", each(lambda t: f"{t.text.cer():.3f}"), "↓"),
        ("OCR word recall, all text events", each(lambda t: f"{t.text.recall():.3f}"), "↑"),
        (
            "text events not found in their scene",
            each(lambda t: f"{t.text.missed()}/{len(t.text.events)}"),
            "↓",
        ),
        ("ASR WER", each(lambda t: f"{t.speech.wer:.3f}"), "↓"),
        ("speech start/end error (s)", each(lambda t: f"{t.speech.edge_error_s:.2f}"), "↓"),
        ("invented words on non-speech", each(lambda t: str(t.speech.invented_words)), "↓"),
        ("processing time (s)", each(lambda t: f"{t.seconds:.1f}"), "↓"),
    ]


def table(totals: dict[str, Totals]) -> str:
    names = list(totals)
    lines = [
        "| metric | " + " | ".join(names) + " | better |",
        "| --- | " + " | ".join("---" for _ in names) + " | --- |",
    ]
    for metric, values, better in _rows(totals):
        lines.append(f"| {metric} | " + " | ".join(values) + f" | {better} |")
    return "\n".join(lines)


def clip_table(per_clip: dict[str, dict[str, Totals]]) -> str:
    lines = [
        "| clip | system | cuts TP/FP/FN | OCR CER | word recall | WER | invented words | s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for clip, by_system in per_clip.items():
        for name, t in by_system.items():
            lines.append(
                f"| {clip} | {name} | {t.cuts.tp}/{t.cuts.fp}/{t.cuts.fn} | "
                f"{t.text.cer():.3f} | {t.text.recall():.3f} | {t.speech.wer:.3f} | "
                f"{t.speech.invented_words} | {t.seconds:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-long", action="store_true", help="Leave out the 5-minute clip.")
    parser.add_argument("--clips", help="Comma-separated clip names (default: all).")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="Font cache.")
    parser.add_argument("--write", type=Path, help="Also write the tables to this file.")
    args = parser.parse_args()

    clips = build_set(args.seed, long_clip=not args.no_long)
    if args.clips:
        wanted = set(args.clips.split(","))
        clips = [c for c in clips if c.name in wanted]
    started = time.perf_counter()
    totals, per_clip = evaluate(clips, args.seed, args.cache)
    summary, details = table(totals), clip_table(per_clip)
    command = "python -m eval.run " + " ".join(sys.argv[1:])
    print(f"\n{summary}\n\n{details}\n")
    print(f"{len(clips)} clips, {time.perf_counter() - started:.0f} s, seed {args.seed}")
    if args.write:
        text = args.write.read_text() if args.write.exists() else ""
        marker = "<!-- eval:run -->"
        block = (
            f"{marker}\nCommand: `.venv/bin/{command.strip()}`, on {platform.machine()} with "
            f"{_cpus()} CPUs, seed {args.seed}, {len(clips)} clips.\n\n{summary}\n\n"
            f"Per clip:\n\n{details}\n{marker}"
        )
        if marker in text:
            head, _, rest = text.partition(marker)
            _, _, tail = rest.partition(marker)
            text = head + block + tail
        else:
            text = text + "\n" + block + "\n"
        args.write.write_text(text)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
