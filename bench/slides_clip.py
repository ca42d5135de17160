"""A screen recording of a talk for the benches: slides dense with text, a pointer.

    .venv/bin/python bench/slides_clip.py /tmp/slides.mp4 [--size 1080p] [--slides 6]
    .venv/bin/python bench/pipeline.py --sizes "" --media /tmp/slides.mp4
    .venv/bin/python bench/worker_ab.py --media /tmp/slides.mp4 \\
        --config "REELSCOPE_OCR_REC_BATCH_BY_WIDTH=false" --config ""

Webinars, lectures and tutorials are a kind of video the pipeline bench's clips are
not: few pictures, each full of text. This renders ``--slides`` slides of
``--slide-seconds`` each (1080p by default): a title bar and nine lines of 3 to 9
words, dark on light, with a pointer that moves all the time, and the sample's speech
looped under it. The words come from a fixed seed, so a size always gives the same
clip. Each slide is a text change on a background that stays; a content detector sees
little change there (docs/benchmarks.md, session 37).

Its truth, printed when done: each slide's start and its lines. Side effects: runs
ffmpeg; writes the clip and, while it runs, slide images in a temp dir.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline import SIZES
from reelscope.sample import speech_track

WORDS = (
    *("revenue", "grew", "across", "every", "region", "while", "operating", "costs"),
    *("fell", "customer", "retention", "improved", "after", "the", "onboarding", "flow"),
    *("shipped", "in", "March", "platform", "team", "halved", "deploy", "times", "with"),
    *("cached", "builds", "next", "quarter", "we", "hire", "support", "staff"),
)
BODY_LINES = 9


def slide_lines(number: int, rng: np.random.Generator) -> list[str]:
    """The title and body lines of slide ``number`` (from 1)."""
    body = [" ".join(rng.choice(WORDS, int(rng.integers(3, 10)))) for _ in range(BODY_LINES)]
    return [f"Part {number}: results and next steps", *body]


def slide_image(lines: list[str], width: int, height: int, path: Path) -> None:
    image = Image.new("RGB", (width, height), (248, 248, 244))
    draw = ImageDraw.Draw(image)
    unit = height / 1080
    draw.rectangle((0, 0, width, int(140 * unit)), fill=(30, 60, 120))
    title = ImageFont.load_default(size=int(60 * unit))
    body = ImageFont.load_default(size=int(42 * unit))
    draw.text((int(80 * unit), int(38 * unit)), lines[0], font=title, fill=(255, 255, 255))
    for i, line in enumerate(lines[1:]):
        position = (int(110 * unit), int((200 + i * 92) * unit))
        draw.text(position, "- " + line, font=body, fill=(25, 25, 25))
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", choices=sorted(SIZES), default="1080p")
    parser.add_argument("--slides", type=int, default=6)
    parser.add_argument("--slide-seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args()
    width, height = SIZES[args.size]
    rng = np.random.default_rng(37)
    slides = [slide_lines(n + 1, rng) for n in range(args.slides)]
    seconds = args.slides * args.slide_seconds
    with tempfile.TemporaryDirectory(prefix="reelscope-slides-") as folder:
        inputs: list[str] = []
        for n, lines in enumerate(slides):
            path = Path(folder) / f"slide{n}.png"
            slide_image(lines, width, height, path)
            inputs += ["-loop", "1", "-framerate", str(args.fps)]
            inputs += ["-t", str(args.slide_seconds), "-i", str(path)]
        joined = "".join(f"[{n}:v]" for n in range(len(slides)))
        pointer = max(8, height // 40)
        graph = (
            f"{joined}concat=n={len(slides)}:v=1:a=0,format=yuv420p,"
            f"drawbox=x='{width // 3}+{width // 4}*sin(t)':y='{height * 3 // 4}"
            f"+{height // 10}*cos(1.3*t)':w={pointer}:h={pointer * 3 // 2}:color=black:t=fill[v]"
        )
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *inputs,
            "-stream_loop", "-1", "-i", str(speech_track()),
            "-filter_complex", graph, "-map", "[v]", "-map", f"{len(slides)}:a",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "medium", "-crf", "23",
            "-c:a", "aac", "-b:a", "96k", str(args.out),
        ]  # fmt: skip
        subprocess.run(command, check=True)
    print(f"{args.out}: {len(slides)} slides, {seconds:g} s at {width}x{height}")
    for n, lines in enumerate(slides):
        print(f"  {n * args.slide_seconds:5.1f} s: " + " | ".join(lines))


if __name__ == "__main__":
    main()
