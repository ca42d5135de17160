"""Evaluation clips, generated from a seed, with their exact ground truth.

A clip is a list of shots. Each shot has a background, on-screen text events, trap
events and a transition in. Its audio is speech (the committed track of known words)
placed at known times, optionally under noise or music, or music only. Rendering
writes frames with numpy and Pillow, and audio as 16-bit PCM. ffmpeg encodes them
as H.264/AAC in MP4 or VP9/Opus in WebM, at constant or variable frame rate. The
media is written to a temporary folder and never committed.
"""

from __future__ import annotations

import subprocess
import tarfile
import urllib.request
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from reelscope.sample import SPEECH_TEXT, speech_track

SAMPLE_RATE = 16_000

#: Noto Sans SC (SIL Open Font License) from the npm registry, for the non-Latin text
#: clip: no CJK font ships with Python or Pillow. Downloaded once into the cache.
CJK_FONT_TARBALL = (
    "https://registry.npmjs.org/@expo-google-fonts/noto-sans-sc/-/noto-sans-sc-0.4.3.tgz"
)
CJK_FONT_MEMBER = "package/400Regular/NotoSansSC_400Regular.ttf"


# -- the spec ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TextEvent:
    """Text on screen from ``start`` to ``end`` (frames within the clip)."""

    text: str
    start: int
    end: int
    style: str = "caption"  # caption, busy, small, two_line, scroll, fade, cjk


@dataclass(frozen=True)
class Shot:
    frames: int
    background: str = "gradient"  # gradient, texture, pan, static
    color: tuple[int, int, int] = (40, 80, 160)
    transition_in: str = "cut"  # cut, fade, dissolve (the first shot's is ignored)
    transition_frames: int = 0
    flash_at: int | None = None  # one white frame, at this frame of the shot
    glitch_at: int | None = None  # one frame of noise blocks
    overlay_from: int | None = None  # a logo box that appears and stays


@dataclass(frozen=True)
class SpeechPlacement:
    start_s: float
    gain_db: float = 0.0


@dataclass(frozen=True)
class ClipSpec:
    name: str
    width: int
    height: int
    fps: int
    shots: tuple[Shot, ...]
    texts: tuple[TextEvent, ...] = ()
    speech: tuple[SpeechPlacement, ...] = ()
    noise_db: float | None = None  # noise level relative to the speech's RMS
    music_db: float | None = None  # music bed level relative to full scale
    codec: str = "h264"  # h264 (mp4) or vp9 (webm)
    vfr_from_frame: int | None = None  # frames from here on last twice as long
    traps_only: bool = False  # a clip whose right answer is no cut at all

    @property
    def total_frames(self) -> int:
        return sum(s.frames for s in self.shots)

    def frame_time(self, frame: int) -> float:
        """Presentation time of ``frame``, variable frame rate included."""
        if self.vfr_from_frame is None or frame <= self.vfr_from_frame:
            return frame / self.fps
        return (self.vfr_from_frame + 2 * (frame - self.vfr_from_frame)) / self.fps

    def frame_duration(self, frame: int) -> float:
        slow = self.vfr_from_frame is not None and frame >= self.vfr_from_frame
        return (2.0 if slow else 1.0) / self.fps

    @property
    def duration_s(self) -> float:
        return self.frame_time(self.total_frames)


@dataclass
class Truth:
    """What a perfect system reports for a clip."""

    hard_cuts_s: list[float]
    #: (start, end) of fades and dissolves: cuts found inside are not errors.
    soft_spans_s: list[tuple[float, float]]
    #: Tolerance of a cut, per cut: one frame at that point of the clip.
    cut_tolerance_s: list[float]
    texts: list[dict[str, object]]  # text, start_s, end_s, style
    speech_text: str
    #: Where speech is really audible: (onset, offset) per placement.
    speech_spans_s: list[tuple[float, float]]
    duration_s: float
    traps_only: bool = False


def truth_of(spec: ClipSpec) -> Truth:
    cuts, soft, tolerance = [], [], []
    position = 0
    for index, shot in enumerate(spec.shots):
        if index > 0:
            if shot.transition_in == "cut":
                cuts.append(spec.frame_time(position))
                tolerance.append(spec.frame_duration(position) + 1e-3)
            else:
                half = shot.transition_frames
                soft.append((spec.frame_time(position - half), spec.frame_time(position + half)))
        position += shot.frames
    onset, offset = _speech_bounds()
    spans = [(p.start_s + onset, p.start_s + offset) for p in spec.speech]
    return Truth(
        hard_cuts_s=cuts,
        soft_spans_s=soft,
        cut_tolerance_s=tolerance,
        texts=[
            {
                "text": t.text,
                "start_s": spec.frame_time(t.start),
                "end_s": spec.frame_time(t.end),
                "style": t.style,
            }
            for t in spec.texts
        ],
        speech_text=" ".join(SPEECH_TEXT for _ in spec.speech),
        speech_spans_s=spans,
        duration_s=spec.duration_s,
        traps_only=spec.traps_only,
    )


# -- the set ------------------------------------------------------------------------------


def _palette(rng: np.random.Generator, n: int) -> list[tuple[int, int, int]]:
    """Distinct, mid-bright colours: adjacent shots always differ clearly in hue."""
    hues = (rng.uniform(0, 1) + np.arange(n) * 0.37) % 1.0
    colors = []
    for h in hues:
        rgb = np.array(
            [abs(h * 6 - 3) - 1, 2 - abs(h * 6 - 2), 2 - abs(h * 6 - 4)], dtype=np.float32
        ).clip(0, 1)
        colors.append(tuple(int(40 + 150 * c) for c in rgb))
    return colors  # type: ignore[return-value]


VOCABULARY = (
    "OPEN SOURCE VIDEO TEMPORAL WORKFLOW SCENE CAPTION MARKET NEWS WEATHER SPORTS GARDEN "
    "RIVER SUMMER NORTH CITY LIVE REPORT MUSIC TRAVEL SIGNAL ORBIT PLANET"
)


def _words(rng: np.random.Generator, count: int) -> str:
    vocabulary = VOCABULARY.split()
    picked = rng.choice(vocabulary, size=count, replace=False)
    return " ".join(str(w) for w in picked) + f" {int(rng.integers(10, 99))}"


def build_set(seed: int = 7, long_clip: bool = True) -> list[ClipSpec]:
    """The evaluation set. Same seed, same clips."""
    rng = np.random.default_rng(seed)
    clips: list[ClipSpec] = []

    # 1. Landscape 30 fps: hard cuts, a fade and a dissolve; captions, busy-background
    #    text, small text and text that persists across a cut; clean speech.
    fps = 30
    colors = _palette(rng, 8)
    shots = [
        Shot(90, "gradient", colors[0]),
        Shot(75, "texture", colors[1]),
        Shot(90, "gradient", colors[2]),
        Shot(80, "gradient", colors[3], "fade", 10),
        Shot(70, "texture", colors[4]),
        Shot(90, "gradient", colors[5], "dissolve", 12),
        Shot(60, "gradient", colors[6]),
        Shot(85, "texture", colors[7]),
    ]
    starts = np.cumsum([0] + [s.frames for s in shots])
    texts = [
        TextEvent(_words(rng, 3), int(starts[0]) + 5, int(starts[1]) - 5, "caption"),
        TextEvent(_words(rng, 2), int(starts[1]) + 5, int(starts[2]) - 5, "busy"),
        TextEvent(_words(rng, 4).lower(), int(starts[2]) + 5, int(starts[3]) - 15, "small"),
        # The same words over two shots: each scene must report them.
        TextEvent(_words(rng, 2), int(starts[4]) + 5, int(starts[6]) - 20, "caption"),
        TextEvent(_words(rng, 3), int(starts[6]) + 5, int(starts[7]) - 5, "caption"),
        TextEvent(_words(rng, 3), int(starts[7]) + 5, int(starts[8]) - 5, "busy"),
    ]
    clips.append(
        ClipSpec(
            "landscape_30fps_h264",
            1280,
            720,
            fps,
            tuple(shots),
            tuple(texts),
            (SpeechPlacement(1.0),),
        )
    )

    # 2. False-cut traps in one continuous shot: fast camera motion, a flash, a
    #    one-frame glitch and an overlay that appears. The right answer is no cut.
    clips.append(
        ClipSpec(
            "traps_one_shot",
            960,
            540,
            30,
            (
                Shot(
                    300,
                    "pan",
                    _palette(rng, 1)[0],
                    flash_at=60,
                    glitch_at=150,
                    overlay_from=220,
                ),
            ),
            (TextEvent("BREAKING NEWS", 20, 280, "caption"),),
            traps_only=True,
        )
    )

    # 3. A static one-shot clip with music only: no cut, and no words.
    clips.append(
        ClipSpec(
            "static_music_only",
            854,
            480,
            30,
            (Shot(240, "static", _palette(rng, 1)[0]),),
            music_db=-14.0,
            traps_only=True,
        )
    )

    # 4. Portrait 9:16 at 24 fps in VP9/WebM: two-line and fading text, speech under
    #    noise.
    fps = 24
    colors = _palette(rng, 6)
    shots = [Shot(72, "gradient", c) for c in colors]
    starts = np.cumsum([0] + [s.frames for s in shots])
    two_line = f"{_words(rng, 2)}\n{_words(rng, 2)}"
    texts = [
        TextEvent(two_line, int(starts[0]) + 4, int(starts[1]) - 4, "two_line"),
        TextEvent(_words(rng, 2), int(starts[1]) + 4, int(starts[2]) - 4, "fade"),
        TextEvent(_words(rng, 3), int(starts[3]) + 4, int(starts[4]) - 4, "caption"),
    ]
    clips.append(
        ClipSpec(
            "portrait_24fps_vp9_noise",
            720,
            1280,
            fps,
            tuple(shots),
            tuple(texts),
            (SpeechPlacement(0.5, -3.0),),
            noise_db=-12.0,
            codec="vp9",
        )
    )

    # 5. 60 fps: scrolling text; speech, a silence gap (for VAD), speech again, under
    #    a quiet music bed.
    fps = 60
    colors = _palette(rng, 7)
    shots = [Shot(330, "gradient" if i % 2 else "texture", c) for i, c in enumerate(colors)]
    starts = np.cumsum([0] + [s.frames for s in shots])
    texts = [
        TextEvent(_words(rng, 3), int(starts[1]) + 10, int(starts[2]) - 10, "scroll"),
        TextEvent(_words(rng, 3), int(starts[3]) + 10, int(starts[4]) - 10, "caption"),
    ]
    clips.append(
        ClipSpec(
            "landscape_60fps_gap_music",
            1280,
            720,
            fps,
            tuple(shots),
            tuple(texts),
            (SpeechPlacement(0.5), SpeechPlacement(22.0)),
            music_db=-30.0,
        )
    )

    # 6. Variable frame rate: after 4 s, every frame lasts twice as long.
    fps = 30
    colors = _palette(rng, 5)
    shots = [Shot(60, "gradient", c) for c in colors]
    clips.append(
        ClipSpec(
            "vfr_30_to_15fps",
            854,
            480,
            fps,
            tuple(shots),
            (TextEvent(_words(rng, 3), 130, 170, "caption"),),
            (SpeechPlacement(0.6),),
            vfr_from_frame=120,
        )
    )

    # 7. Non-Latin text the OCR model supports (Chinese).
    colors = _palette(rng, 3)
    shots = [Shot(75, "gradient", c) for c in colors]
    clips.append(
        ClipSpec(
            "cjk_text",
            960,
            540,
            30,
            tuple(shots),
            (
                TextEvent("开源视频理解", 5, 70, "cjk"),
                TextEvent("今天天气晴朗", 155, 220, "cjk"),
            ),
        )
    )

    # 8. Five minutes: 4 s shots, captions on every other, speech every 20 s.
    if long_clip:
        fps = 30
        colors = _palette(rng, 75)
        shots = [Shot(120, "gradient" if i % 3 else "texture", c) for i, c in enumerate(colors)]
        texts = [
            TextEvent(_words(rng, 2), i * 120 + 8, i * 120 + 112, "caption")
            for i in range(1, 75, 2)
        ]
        clips.append(
            ClipSpec(
                "long_5min",
                640,
                360,
                fps,
                tuple(shots),
                tuple(texts),
                tuple(SpeechPlacement(float(s)) for s in range(2, 290, 20)),
            )
        )

    # 9. One 24 s shot whose burned-in subtitles change every 2 s, as a talking head's
    #    do on social video: outlined text over a moving picture, then boxed captions,
    #    each replacing the last with no gap.
    #    Its own generator, so the clips above stay as they were.
    sub_rng = np.random.default_rng(seed + 9)
    texts = [
        TextEvent(_words(sub_rng, 3), i * 60, i * 60 + 60, "busy" if i < 6 else "caption")
        for i in range(12)
    ]
    clips.append(
        ClipSpec(
            "subtitled_one_shot",
            960,
            540,
            30,
            (Shot(720, "texture", _palette(sub_rng, 1)[0]),),
            tuple(texts),
            (SpeechPlacement(1.0),),
        )
    )
    return clips


def ci_slice(seed: int = 7) -> list[ClipSpec]:
    """A few short clips for the test suite: cuts and text, traps, music only."""
    wanted = {"landscape_30fps_h264", "traps_one_shot", "static_music_only"}
    return [c for c in build_set(seed, long_clip=False) if c.name in wanted]


# -- rendering ----------------------------------------------------------------------------


def _font(style: str, height: int, cache: Path) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    size = {"small": 0.028, "caption": 0.06, "busy": 0.06, "cjk": 0.07}.get(style, 0.055)
    pixels = max(14, int(height * size)) if height < 1000 else int(1080 * size)
    if style == "cjk":
        return ImageFont.truetype(str(cjk_font(cache)), pixels)
    return ImageFont.load_default(size=pixels)


def cjk_font(cache: Path) -> Path:
    """The Noto Sans SC font, downloaded from the npm registry once (network)."""
    target = cache / "NotoSansSC-Regular.ttf"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / "noto-sans-sc.tgz"
    if not tarball.is_file():
        urllib.request.urlretrieve(CJK_FONT_TARBALL, tarball)
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(CJK_FONT_MEMBER)
        if member is None:
            raise RuntimeError(f"{CJK_FONT_MEMBER} is missing from {CJK_FONT_TARBALL}")
        target.write_bytes(member.read())
    tarball.unlink()
    return target


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A busy, blotchy texture (smoothed noise at a few scales), float 0..1."""
    out = np.zeros((height, width), np.float32)
    for scale in (8, 32, 96):
        small = rng.random((height // scale + 2, width // scale + 2)).astype(np.float32)
        big = np.asarray(
            Image.fromarray((small * 255).astype(np.uint8)).resize(
                (width + 2 * scale, height + 2 * scale), Image.Resampling.BILINEAR
            ),
            np.float32,
        )[:height, :width]
        out += big / 255.0
    return out / 3.0


class _Renderer:
    def __init__(self, spec: ClipSpec, seed: int, cache: Path) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        self.cache = cache
        h, w = spec.height, spec.width
        self.ramp = np.linspace(0.65, 1.0, h, dtype=np.float32)[:, None, None]
        self.textures = [_texture(self.rng, h, w) for _ in range(2)]
        self.panorama = _texture(self.rng, h, w * 4)
        self.fonts: dict[str, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}

    def background(self, shot: Shot, index: int, t: int) -> np.ndarray:
        h, w = self.spec.height, self.spec.width
        color = np.asarray(shot.color, np.float32)[None, None, :]
        if shot.background == "texture":
            tex = np.roll(self.textures[index % 2], t * 2, axis=1)[:, :, None]
            image = color * (0.45 + 0.75 * tex)
        elif shot.background == "pan":
            # Fast camera motion: 24 px a frame across a wide scene.
            x = (t * 24) % (w * 3)
            tex = self.panorama[:, x : x + w][:, :, None]
            image = color * (0.35 + 0.9 * tex)
        else:
            image = np.broadcast_to(color * self.ramp, (h, w, 3)).copy()
            if shot.background == "gradient":
                size = max(24, h // 10)
                x0 = (40 + t * 3 + index * 150) % max(1, w - size)
                y0 = 40 + (index * 37) % max(1, h // 4)
                image[y0 : y0 + size, x0 : x0 + size] = 225.0
        image = image.clip(0, 255)
        if shot.overlay_from is not None and t >= shot.overlay_from:
            image[h // 12 : h // 12 + h // 5, w - w // 4 : w - w // 20] = (240, 200, 30)
        if shot.flash_at is not None and t == shot.flash_at:
            image[:] = 250.0
        if shot.glitch_at is not None and t == shot.glitch_at:
            blocks = self.rng.integers(0, 255, (h // 16 + 1, w // 16 + 1, 3)).astype(np.float32)
            image = np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)[:h, :w]
        return image

    def draw_text(self, image: np.ndarray, event: TextEvent, frame: int) -> np.ndarray:
        h, w = self.spec.height, self.spec.width
        font = self.fonts.setdefault(event.style, _font(event.style, h, self.cache))
        pil = Image.fromarray(image.astype(np.uint8))
        draw = ImageDraw.Draw(pil)
        box = draw.multiline_textbbox((0, 0), event.text, font=font, spacing=10)
        tw, th = box[2] - box[0], box[3] - box[1]
        x, y = (w - tw) // 2, int(h * 0.66)
        if event.style == "small":
            x, y = int(w * 0.05), int(h * 0.08)
        if event.style == "scroll":
            # Rises slowly from the lower third, always fully visible.
            y = int(h * 0.75) - int(
                (frame - event.start) * (h * 0.4) / max(1, event.end - event.start)
            )
        alpha = 1.0
        if event.style == "fade":
            ramp = max(1, self.spec.fps // 2)
            alpha = min(1.0, (frame - event.start) / ramp, (event.end - frame) / ramp)
        if event.style in ("caption", "two_line", "cjk", "scroll"):
            draw.rectangle((x - 16, y - 12, x + tw + 16, y + th + 20), fill=(0, 0, 0))
            draw.multiline_text((x, y), event.text, font=font, fill=(255, 255, 255), spacing=10)
        elif event.style == "busy":
            draw.multiline_text(
                (x, y),
                event.text,
                font=font,
                fill=(255, 255, 255),
                stroke_width=2,
                stroke_fill=(0, 0, 0),
            )
        else:
            draw.multiline_text((x, y), event.text, font=font, fill=(255, 255, 255), spacing=10)
        drawn = np.asarray(pil, np.float32)
        return image * (1 - alpha) + drawn * alpha

    def frames(self) -> list[Callable[[], np.ndarray]]:
        """One callable per frame, in order, so frames render lazily."""
        spec = self.spec
        out: list[Callable[[], np.ndarray]] = []
        position = 0
        for index, shot in enumerate(spec.shots):
            previous = spec.shots[index - 1] if index else None
            for t in range(shot.frames):

                def render(
                    shot: Shot = shot,
                    index: int = index,
                    t: int = t,
                    frame: int = position + t,
                    previous: Shot | None = previous,
                ) -> np.ndarray:
                    image = self.background(shot, index, t)
                    half = shot.transition_frames
                    if previous is not None and t < half and shot.transition_in != "cut":
                        # Blend with the previous shot continued past its end.
                        before = self.background(previous, index - 1, previous.frames + t)
                        mix = (t + 1) / (half + 1)
                        if shot.transition_in == "dissolve":
                            image = before * (1 - mix) + image * mix
                        else:  # fade: through black
                            image = image * mix
                    nxt = spec.shots[index + 1] if index + 1 < len(spec.shots) else None
                    if nxt is not None and nxt.transition_in == "fade":
                        left = shot.frames - t
                        if left <= nxt.transition_frames:
                            image = image * ((left - 1) / (nxt.transition_frames + 1))
                    for event in spec.texts:
                        if event.start <= frame < event.end:
                            image = self.draw_text(image, event, frame)
                    return image.clip(0, 255).astype(np.uint8)

                out.append(render)
            position += shot.frames
        return out


def _speech_source() -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(speech_track()), sampling_rate=SAMPLE_RATE), np.float32)


def _speech_bounds() -> tuple[float, float]:
    """Onset and offset of audible speech inside the committed track (energy > 1 % of
    its peak, in 20 ms windows): the reference for word-timing errors."""
    audio = _speech_source()
    window = SAMPLE_RATE // 50
    frames = audio[: len(audio) // window * window].reshape(-1, window)
    energy = np.sqrt((frames**2).mean(axis=1))
    loud = np.flatnonzero(energy > 0.01 * energy.max())
    return float(loud[0] * window / SAMPLE_RATE), float((loud[-1] + 1) * window / SAMPLE_RATE)


def render_audio(spec: ClipSpec, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    n = int(spec.duration_s * SAMPLE_RATE)
    track = np.zeros(n, np.float32)
    speech = _speech_source()
    for placement in spec.speech:
        start = int(placement.start_s * SAMPLE_RATE)
        piece = speech[: max(0, min(len(speech), n - start))] * 10 ** (placement.gain_db / 20)
        track[start : start + len(piece)] += piece
    rms = float(np.sqrt((speech**2).mean()))
    if spec.noise_db is not None:
        track += rng.normal(0, rms * 10 ** (spec.noise_db / 20), n).astype(np.float32)
    if spec.music_db is not None:
        t = np.arange(n, dtype=np.float32) / SAMPLE_RATE
        chords = ((220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6))
        music = np.zeros(n, np.float32)
        for bar in range(int(spec.duration_s // 2) + 1):
            lo, hi = bar * 2 * SAMPLE_RATE, min(n, (bar + 1) * 2 * SAMPLE_RATE)
            envelope = np.exp(-np.arange(hi - lo, dtype=np.float32) / SAMPLE_RATE * 1.5)
            for f in chords[bar % len(chords)]:
                music[lo:hi] += np.sin(2 * np.pi * f * t[lo:hi]) * envelope / 3
        track += music * 10 ** (spec.music_db / 20)
    return np.clip(track, -1.0, 1.0)


def render(spec: ClipSpec, folder: Path, seed: int, cache: Path, ffmpeg: str) -> Path:
    """Encode the clip into ``folder``; returns its path. Side effect: runs ffmpeg."""
    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / f"{spec.name}.wav"
    with wave.open(str(wav), "wb") as sink:
        sink.setnchannels(1)
        sink.setsampwidth(2)
        sink.setframerate(SAMPLE_RATE)
        sink.writeframes((render_audio(spec, seed) * 32767).astype("<i2").tobytes())
    extension = "webm" if spec.codec == "vp9" else "mp4"
    out = folder / f"{spec.name}.{extension}"
    video_codec = (
        ["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "32", "-deadline", "realtime", "-cpu-used", "8"]
        if spec.codec == "vp9"
        else ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
    )
    audio_codec = ["-c:a", "libopus", "-b:a", "64k"] if spec.codec == "vp9" else ["-c:a", "aac"]
    timing: list[str] = []
    if spec.vfr_from_frame is not None:
        n = spec.vfr_from_frame
        timing = [
            "-vf",
            f"setpts='if(lt(N,{n}),N,{n}+2*(N-{n}))/({spec.fps}*TB)'",
            "-fps_mode",
            "vfr",
        ]
    command = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{spec.width}x{spec.height}",
        "-r", str(spec.fps), "-i", "-", "-i", str(wav),
        *timing, *video_codec, *audio_codec, "-shortest", str(out),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdin=subprocess.PIPE)
    assert process.stdin is not None
    try:
        for make in _Renderer(spec, seed, cache).frames():
            process.stdin.write(make().tobytes())
    finally:
        process.stdin.close()
        code = process.wait(timeout=600)
    wav.unlink()
    if code != 0:
        raise RuntimeError(f"ffmpeg failed ({code}) writing {out}")
    return out
