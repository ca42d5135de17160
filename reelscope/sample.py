"""The bundled sample video: shots with hard cuts at known frames, text drawn on some
shots, and a committed speech track of known words. Used by `reelscope up --demo`
and by the end-to-end tests, which compare results with the truth below."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: The words spoken in ``assets/speech.ogg`` (regenerate with ``assets/make_speech.sh``).
SPEECH_TEXT = (
    "Welcome to the sample video. This video has four scenes. Each scene shows a different "
    "color. The weather today is sunny and warm. Thank you for watching."
)


@dataclass(frozen=True)
class Shot:
    frames: int
    color: tuple[int, int, int]
    text: str | None = None


@dataclass(frozen=True)
class SampleSpec:
    width: int = 854
    height: int = 480
    fps: int = 30
    shots: tuple[Shot, ...] = (
        Shot(120, (30, 70, 160)),
        Shot(120, (150, 40, 40), "OPEN SOURCE VIDEO"),
        Shot(120, (40, 130, 60)),
        Shot(120, (110, 60, 140), "TEMPORAL WORKFLOW 42"),
    )

    #: Repeat the speech track to fill the video (long benchmark clips).
    loop_speech: bool = False

    @classmethod
    def long(cls, width: int, height: int, seconds: int = 60, fps: int = 30) -> SampleSpec:
        """A longer clip for benchmarks: 4 s shots cycling colours, every other captioned."""
        palette = [(30, 70, 160), (150, 40, 40), (40, 130, 60), (110, 60, 140), (160, 120, 30)]
        shots = tuple(
            Shot(4 * fps, palette[n % len(palette)], f"CAPTION NUMBER {n}" if n % 2 else None)
            for n in range(seconds // 4)
        )
        return cls(width=width, height=height, fps=fps, shots=shots, loop_speech=True)

    @property
    def cut_frames(self) -> list[int]:
        """First frame of every shot but the first."""
        cuts, position = [], 0
        for shot in self.shots[:-1]:
            position += shot.frames
            cuts.append(position)
        return cuts

    @property
    def total_frames(self) -> int:
        return sum(s.frames for s in self.shots)


def _frame(
    spec: SampleSpec,
    shot: Shot,
    shot_index: int,
    t: int,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> bytes:
    """One RGB frame: a shaded background with a moving square, so shots are not static,
    and the shot's caption centred in the lower third."""
    y = np.linspace(0.6, 1.0, spec.height, dtype=np.float32)[:, None, None]
    base = np.asarray(shot.color, dtype=np.float32)[None, None, :]
    image = np.broadcast_to(base * y, (spec.height, spec.width, 3)).astype(np.uint8).copy()
    size = 60
    x0 = (40 + t * 3 + shot_index * 150) % (spec.width - size)
    y0 = 40 + (shot_index * 37) % 100
    image[y0 : y0 + size, x0 : x0 + size] = (230, 230, 230)
    if shot.text:
        pil = Image.fromarray(image)
        draw = ImageDraw.Draw(pil)
        box = draw.textbbox((0, 0), shot.text, font=font)
        w, h = box[2] - box[0], box[3] - box[1]
        x, yy = (spec.width - w) // 2, int(spec.height * 0.62)
        draw.rectangle((x - 16, yy - 12, x + w + 16, yy + h + 20), fill=(0, 0, 0))
        draw.text((x, yy), shot.text, font=font, fill=(255, 255, 255))
        image = np.asarray(pil)
    return image.tobytes()


def speech_track() -> Path:
    return Path(str(resources.files("reelscope") / "assets" / "speech.ogg"))


def make_sample(path: Path, spec: SampleSpec | None = None, ffmpeg: str | None = None) -> Path:
    """Render the sample to ``path`` (H.264 + AAC in MP4). Side effect: runs ffmpeg."""
    import imageio_ffmpeg

    spec = spec or SampleSpec()
    ffmpeg = ffmpeg or imageio_ffmpeg.get_ffmpeg_exe()
    path.parent.mkdir(parents=True, exist_ok=True)
    duration = spec.total_frames / spec.fps
    command = [
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{spec.width}x{spec.height}",
        "-r",
        str(spec.fps),
        "-i",
        "-",
        *(["-stream_loop", "-1"] if spec.loop_speech else []),
        "-i",
        str(speech_track()),
        "-filter_complex",
        f"[1:a]apad,atrim=0:{duration}[a]",
        "-map",
        "0:v",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "20",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(spec.fps * 2),
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        "-ar",
        "44100",
        "-movflags",
        "+faststart",
        "-t",
        f"{duration}",
        str(path),
    ]
    font = ImageFont.load_default(size=44)
    process = subprocess.Popen(command, stdin=subprocess.PIPE)
    assert process.stdin is not None
    try:
        for index, shot in enumerate(spec.shots):
            for t in range(shot.frames):
                process.stdin.write(_frame(spec, shot, index, t, font))
    finally:
        process.stdin.close()
        code = process.wait(timeout=120)
    if code != 0:
        raise RuntimeError(f"ffmpeg failed ({code}) writing {path}")
    return path


if __name__ == "__main__":
    import sys

    print(make_sample(Path(sys.argv[1] if len(sys.argv) > 1 else "sample.mp4")))
