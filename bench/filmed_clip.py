"""A filmed-like clip for the benches: texture, motion, grain and a real bit rate.

    .venv/bin/python bench/filmed_clip.py /tmp/filmed-720p.mp4 [--size 720p] [--bitrate 2M]
    .venv/bin/python bench/pipeline.py --sizes "" --media /tmp/filmed-720p.mp4
    # A short portrait clip, as social posts hold: 16 s, 720x1280, VP9 in WebM.
    .venv/bin/python bench/filmed_clip.py /tmp/short.webm --portrait --shot-seconds 3.2 --codec vp9
    # What phones record: 10-bit HEVC (HDR), or H.264 in full range.
    .venv/bin/python bench/filmed_clip.py /tmp/phone.mp4 --size 1080p --bitrate 8M --codec hevc10
    .venv/bin/python bench/filmed_clip.py /tmp/phone.mp4 --size 1080p --bitrate 8M --full-range
    # AV1, as YouTube and Instagram serve much of their video.
    .venv/bin/python bench/filmed_clip.py /tmp/av1.mp4 --codec av1
    # H.264 with every frame a reference (no B-frames, a key frame a second), at 16 Mbit/s.
    .venv/bin/python bench/filmed_clip.py /tmp/nob.mp4 --size 1080p --bitrate 16M --codec h264-no-b

The pipeline bench's own clips are flat colours that H.264 holds in under 40 kbit/s,
and they cost little to decode: 1.1 CPU-s for 60 s at 720p. Filmed video of that size
runs at 1-8 Mbit/s and takes 3-5 times as long (docs/benchmarks.md). This script
renders 60 s of five 12 s shots of moving FFmpeg test sources (a cellular automaton,
colour gradients, a test pattern, a Sierpinski carpet, another automaton), three of
them captioned, with film grain over all and the sample's speech throughout. The seeds are
fixed, so a size and bit rate always give the same clip.

Its truth: hard cuts at 12, 24, 36 and 48 s (multiples of ``--shot-seconds``), and the
captions in ``CAPTIONS``. Side
effects: runs ffmpeg; writes the clip and, while it runs, caption images in a temp dir.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline import SIZES
from reelscope.sample import speech_track

SHOT_SECONDS = 12
#: Shot number -> caption, and where it sits: "lower third" or "top left".
CAPTIONS = {
    1: ("BREAKING NEWS TONIGHT", "lower third"),
    3: ("Subscribe for more videos", "top left"),
    4: ("Chapter 2 The Forest", "lower third"),
}


def shot_sources(width: int, height: int, fps: int) -> list[str]:
    size = f"s={width}x{height}:r={fps}"
    return [
        # Cellular automata read as gravel or foliage: fine detail that keeps changing.
        f"life={size}:seed=7:ratio=0.3:mold=10:life_color=#c0a060:death_color=#203040"
        ":mold_color=#506030",
        f"gradients={size}:speed=0.02:seed=3:n=5",
        f"testsrc2={size}",
        f"sierpinski={size}:seed=5:jump=20:type=carpet",
        f"life={size}:seed=11:ratio=0.2:mold=25:life_color=#80c040:death_color=#102010"
        ":mold_color=#306020",
    ]


def caption_image(text: str, where: str, width: int, height: int, path: Path) -> None:
    """A transparent full-frame image holding the caption, white on a dark box."""
    font = ImageFont.load_default(size=max(24, min(width, height) // 14))
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    text_w, text_h = right - left, bottom - top
    if where == "top left":
        x, y = width // 30, height // 18
    else:
        x, y = (width - text_w) // 2, int(height * 0.75)
    pad = height // 50
    draw.rectangle((x - pad, y - pad, x + text_w + pad, y + text_h + 2 * pad), fill=(0, 0, 0, 180))
    draw.text((x - left, y - top), text, font=font, fill=(255, 255, 255, 255))
    image.save(path)


def render(
    out: Path,
    width: int,
    height: int,
    bitrate: str,
    fps: int = 30,
    shot_seconds: float = SHOT_SECONDS,
    codec: str = "h264",
    full_range: bool = False,
) -> Path:
    import imageio_ffmpeg

    sources = shot_sources(width, height, fps)
    seconds = shot_seconds * len(sources)
    with tempfile.TemporaryDirectory(prefix="reelscope-filmed-") as folder:
        inputs: list[str] = []
        for source in sources:
            inputs += ["-f", "lavfi", "-i", source]
        # FFmpeg numbers its inputs in order: the shots, the captions, the speech.
        captions: dict[int, int] = {}
        for shot, (text, where) in CAPTIONS.items():
            png = Path(folder) / f"caption-{shot}.png"
            caption_image(text, where, width, height, png)
            captions[shot] = len(sources) + len(captions)
            inputs += ["-i", str(png)]
        speech = len(sources) + len(captions)
        inputs += ["-stream_loop", "-1", "-i", str(speech_track())]
        chains = []
        for shot in range(len(sources)):
            chain = f"[{shot}:v]trim=0:{shot_seconds},setpts=PTS-STARTPTS,format=yuv420p"
            if shot in captions:
                chains.append(f"{chain}[raw{shot}]")
                chain = f"[raw{shot}][{captions[shot]}:v]overlay=0:0,format=yuv420p"
            chains.append(f"{chain}[v{shot}]")
        joined = "".join(f"[v{shot}]" for shot in range(len(sources)))
        chains.append(f"{joined}concat=n={len(sources)}:v=1:a=0,noise=alls=6:allf=t[v]")
        chains.append(f"[{speech}:a]apad,atrim=0:{seconds}[a]")
        out.parent.mkdir(parents=True, exist_ok=True)
        # x264 at a capped rate, as services deliver video: keyframes and bit budget
        # as its defaults set them for that rate. VP9 as a real-time encoder makes it.
        if codec == "vp9":
            encode = ["-c:v", "libvpx-vp9", "-b:v", bitrate, "-deadline", "realtime"]
            encode += ["-cpu-used", "8", "-pix_fmt", "yuv420p", "-c:a", "libopus", "-b:a", "64k"]
        elif codec == "hevc10":
            # As an iPhone stores HDR video: 10-bit HEVC tagged hvc1, AAC.
            encode = ["-c:v", "libx265", "-preset", "veryfast", "-b:v", bitrate]
            encode += ["-x265-params", "log-level=error", "-pix_fmt", "yuv420p10le"]
            encode += ["-tag:v", "hvc1", "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart"]
        elif codec == "av1":
            # As YouTube and Instagram serve much of their video: AV1 in MP4, from SVT-AV1
            # at a fast preset, at the bit rate given (its rate control: VBR).
            encode = ["-c:v", "libsvtav1", "-preset", "10", "-b:v", bitrate]
            encode += ["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k"]
            encode += ["-movflags", "+faststart"]
        else:
            encode = ["-c:v", "libx264", "-preset", "veryfast", "-b:v", bitrate]
            encode += ["-maxrate", bitrate, "-bufsize", f"{2 * _bits(bitrate)}"]
            if codec == "h264-no-b":
                # No B-frames and a key frame every second, as a hardware encoder set for
                # low delay writes: every frame is a reference, so the scene pass's
                # levers on B-frames and unreferenced frames find nothing to save.
                encode += ["-bf", "0", "-g", str(fps)]
            encode += [
                "-pix_fmt",
                # FFmpeg's older name for full-range 8-bit, which some phones record.
                "yuvj420p" if full_range else "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "96k",
                "-movflags",
                "+faststart",
            ]
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            *inputs,
            "-filter_complex",
            ";".join(chains),
            "-map",
            "[v]",
            "-map",
            "[a]",
            *encode,
            "-t",
            str(seconds),
            str(out),
        ]
        # SVT-AV1 prints its settings to stderr unless told to print errors only.
        subprocess.run(command, check=True, env={**os.environ, "SVT_LOG": "1"})
    return out


def _bits(rate: str) -> int:
    units = {"k": 1_000, "M": 1_000_000}
    return int(float(rate[:-1]) * units[rate[-1]]) if rate[-1] in units else int(rate)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", choices=sorted(SIZES), default="720p")
    parser.add_argument("--bitrate", default="2M", help="video bit rate, e.g. 800k, 2M, 4M")
    parser.add_argument("--portrait", action="store_true", help="9:16: the size turned")
    parser.add_argument(
        "--shot-seconds", type=float, default=SHOT_SECONDS, help="each of the five shots"
    )
    parser.add_argument(
        "--codec",
        choices=["h264", "h264-no-b", "vp9", "hevc10", "av1"],
        default="h264",
        help="h264-no-b: H.264 with no B-frames and a key frame a second; vp9: WebM; "
        "hevc10: 10-bit HEVC in MP4; av1: AV1 in MP4",
    )
    parser.add_argument("--full-range", action="store_true", help="H.264 in full range (yuvj420p)")
    parser.add_argument("--fps", type=int, default=30, help="frames a second, e.g. 60")
    args = parser.parse_args()
    if args.full_range and not args.codec.startswith("h264"):
        parser.error("--full-range is for --codec h264 or h264-no-b")
    width, height = SIZES[args.size]
    if args.portrait:
        width, height = height, width
    render(
        args.out,
        width,
        height,
        args.bitrate,
        fps=args.fps,
        shot_seconds=args.shot_seconds,
        codec=args.codec,
        full_range=args.full_range,
    )
    print(args.out)


if __name__ == "__main__":
    main()
