"""Scene cuts with PySceneDetect, in chunks, heartbeating between chunks.

The default detector is PySceneDetect's AdaptiveDetector (a frame's change against
the average change of its neighbours), which keeps cuts between similar-looking shots
that a fixed ContentDetector threshold misses, and ignores camera motion. A transient
filter then drops "cuts" where the picture comes back a few frames later: flashes and
one-frame glitches. See docs/quality.md for the numbers behind these choices.

Asked for key frames, the same decode also picks each scene's key frame: full-size
frames of the scene still open are kept at even spacing, and when a cut closes the scene
the sharpest of those nearest its candidate positions is written. That saves the second
decode of the whole video that ``extract_keyframes`` costs (docs/benchmarks.md). Where
the scene's text changes while it lasts (subtitles), the frames that show each new text
are written too (``activities.text_changes``).

Frames are decoded with PyAV and used as the decoder hands them over: the detectors get
each frame scaled down plane by plane and converted to colour at their size, and
full-size frames are kept as their planes, converted only when written. Converting
every full-size frame to colour (what OpenCV's reader does) cost more than decoding
it: 2.2 of 5.6 CPU seconds for a 60 s 1080p clip. Decoding runs on a thread of its own
(``DecodeAhead``), a few frames ahead of the thread that scales frames down and runs the
detectors, so the two overlap whenever a CPU is free.

Frames no other frame is predicted from may be left out (``skip_nonreference``): below
50 fps only while the picture stands still, the frames skipped before it moves being
decoded again by a second reader; at 50 fps and more one frame in two. A cut found
right after skipped frames is placed by decoding them again (``refine_cut``). B-frames
may be decoded without the deblocking filter (``skip_b_deblocking``).
"""

from __future__ import annotations

import math
import queue
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Protocol

import av
import cv2
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.video.plane import VideoPlane
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode
from scenedetect.backends.pyav import VideoStreamAv
from scenedetect.detector import SceneDetector
from scenedetect.scene_manager import compute_downscale_factor
from scenedetect.video_stream import VideoOpenFailure
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.frames import candidate_frames, grey_sharpness, write_jpeg
from activities.heap import HEAP
from activities.priority import run_lowered
from activities.probe import displayed_width
from activities.progress import cancellation_wins, log, report, resumed
from activities.text_changes import TextChangeWatch
from activities.workspace import Workspaces
from models.errors import ErrorKind
from models.jobs import KeyFrame, Stage
from models.pipeline import (
    ActivityProgress,
    DetectScenesInput,
    DetectScenesResult,
    KeyframeFile,
    SceneSpan,
)

#: Seconds of video between heartbeats ...
CHUNK_SECONDS = 10.0
#: ... and seconds of work at most, however slowly the frames decode: 10 s of 4K video
#: at 60 fps, on a worker busy with other items and at a lower priority beside
#: transcription, can take longer than the heartbeat timeout (30 s by default), and
#: the attempt would be taken for lost.
BEAT_SECONDS = 2.0
#: How long after a cut the picture is compared with the one before it.
SETTLE_SECONDS = 0.12
#: At most this much change (the detectors' HSV score, 0-255) between the frame before
#: a cut and the one after it settles means the picture came back: not a cut.
RETURN_SCORE = 15.0
#: Full-size frames of the open scene are first kept this many seconds apart ...
SAMPLE_SECONDS = 0.125
#: ... and the spacing doubles whenever more than this many bytes of them would be held.
SAMPLE_BUDGET_BYTES = 96 * 2**20
#: Decoded frames the decode thread may hold ahead of the detectors (PySceneDetect's
#: own reader queues 4).
DECODE_AHEAD_FRAMES = 4
#: Frames a second the detectors see at least when the scene pass skips frames. The
#: detectors' thresholds are tuned on 24-30 fps video; seen at fewer frames a second,
#: a moving shot changes more between the frames compared and a cut into it stands
#: out less: on a 30 fps clip whose every fourth frame was decoded, a cut into a busy
#: panning shot scored 34 against 24 for the frames after it (12 at full rate), and
#: was missed (docs/benchmarks.md).
SKIM_MIN_FPS = 25.0
#: A scene lasts at least the worker's ``min_scene_len_frames`` (15: half a second at
#: 30 fps), but never longer than this. Counted in frames alone, the minimum grew as the
#: frame rate fell: at 1 fps (a slideshow, a time-lapse, an animated GIF) it was 15 s,
#: and every cut closer than that to the last was lost. At 15 fps and more it changes
#: nothing.
MIN_SCENE_SECONDS_AT_MOST = 1.0


#: Below 50 fps, frames are skipped only while the picture stands still: while each
#: decoded frame's planes, sampled every 8th pixel (every 4th of the half-size colour
#: planes), differ from the last one's by less than this on average (0-255)...
STILL_CHANGE = 1.0
#: ... for this many decoded frames in a row.
STILL_FRAMES = 4

#: FFmpeg's ``skip_loop_filter`` in the scene pass when it skips B-frames' deblocking:
#: "bidir" leaves the filter out on B-frames only. Decoding a filmed 60 s 720p H.264
#: clip (4 Mbit/s, B-frames) on one thread took 4.2-4.7 CPU-s instead of 5.0-5.6; its
#: frames, scaled down as the detectors see them, differed by at most 0.34 of 255 on
#: average. "all" saved a little more (4.0-4.1) but spreads the difference to every
#: frame predicted from an unfiltered one until the next key frame: up to 7.8 of 255
#: there, which vanishes at a key frame like a cut would (docs/benchmarks.md).
SKIP_LOOP_FILTER = "bidir"
#: ... for these decoders only. HEVC encoders predict many frames from B-frames: a
#: 20 s x265 copy of the same clip decoded only 7 % faster, and its detectors' pictures
#: differed by up to 1.08 of 255.
SKIP_LOOP_FILTER_CODECS = frozenset({"h264"})
#: Decoders that read ``skip_frame`` once, when they open, and keep to it for the rest
#: of the stream: dav1d, FFmpeg's AV1 decoder (what YouTube and Instagram serve much of
#: their video in). Told mid-stream, it goes on as it started; told before it opens to
#: skip, it skips for good.
SKIP_SET_AT_OPEN_CODECS = frozenset({"libdav1d"})


def min_scene_frames(frames: int, fps: float) -> int:
    """The detectors' ``min_scene_len`` for a video of ``fps``: ``frames``, capped at
    ``MIN_SCENE_SECONDS_AT_MOST`` of video (at least one frame)."""
    if not fps > 0:  # no usable rate: the frames as set
        return frames
    return max(1, min(frames, round(MIN_SCENE_SECONDS_AT_MOST * fps)))


def skim_step(fps: float) -> int:
    """The most frames one decoded frame may stand for when skipping keeps the detectors
    at ``SKIM_MIN_FPS`` or more: 2 at 50-74 fps, 4 at 100 fps and more; 1 (no
    skipping) below 50 fps."""
    return max(1, int(fps // SKIM_MIN_FPS)) if fps > 0 else 1


def _hsv(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)


def hsv_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two HSV frames over their three channels."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


class TransientFilter(SceneDetector):
    """Wraps a detector. A cut it reports at frame c is kept only if frame c + settle
    still differs from the last frame decoded before c (c - 1, unless frames were
    skipped); confirmed cuts collect in ``cuts``."""

    def __init__(
        self,
        inner: SceneDetector,
        settle_frames: int,
        refine: Callable[[int, int], int] | None = None,
    ) -> None:
        """``refine(after, at)``: where a cut reported at frame ``at`` really lies, when
        the frames between ``after`` (the last one decoded before it) and ``at`` were
        skipped by the decoder (see ``refine_cut``)."""
        super().__init__()
        self.inner = inner
        self.settle = settle_frames
        self.refine = refine
        self.recent: deque[tuple[int, np.ndarray]] = deque(
            maxlen=settle_frames + inner.event_buffer_length + 2
        )
        #: (cut, the last frame decoded before it, that frame's image).
        self.pending: list[tuple[int, int | None, np.ndarray | None]] = []
        self.cuts: list[int] = []
        self.dropped = 0

    def process_frame(self, timecode: FrameTimecode, frame_img: np.ndarray) -> list[FrameTimecode]:
        number = timecode.frame_num
        # Frames are kept as they come (already downscaled); only the two frames of a
        # candidate cut are converted, so the filter costs nothing between cuts.
        self.recent.append((number, frame_img))
        for cut in self.inner.process_frame(timecode, frame_img):
            # The last frame decoded before the cut: frame cut - 1, unless the decoder
            # skipped it (or the frame rate varies).
            last = next(((n, img) for n, img in reversed(self.recent) if n < cut.frame_num), None)
            self.pending.append(
                (cut.frame_num, last[0], last[1]) if last else (cut.frame_num, None, None)
            )
        waiting = []
        for cut, after, before in self.pending:
            if number < cut + self.settle:
                waiting.append((cut, after, before))
            elif before is not None and hsv_change(_hsv(before), _hsv(frame_img)) <= RETURN_SCORE:
                self.dropped += 1
            else:
                self._confirm(cut, after)
        self.pending = waiting
        return []

    def _confirm(self, cut: int, after: int | None) -> None:
        if self.refine is not None and after is not None and after < cut - 1:
            cut = self.refine(after, cut)
        self.cuts.append(cut)

    def finish(self) -> None:
        """At the end of the video: cuts too close to the end to check are kept."""
        for cut, after, _ in self.pending:
            self._confirm(cut, after)
        self.pending = []

    @property
    def event_buffer_length(self) -> int:
        return self.inner.event_buffer_length

    def get_metrics(self) -> list[str]:
        return self.inner.get_metrics()


#: 4:2:0 pixel formats whose frames are used plane by plane, and their bits per sample.
#: Phones record 8-bit video in full range (``yuvj420p``, FFmpeg's older name for it, or
#: ``yuv420p`` flagged full range) and HDR video in 10 bits. Any other format goes
#: through FFmpeg's own conversion to BGR at full size, as these did until session 24:
#: that took 3.1 ms a 720p frame for 10-bit (against 5.8 ms to decode it) and 0.57 ms
#: for full-range 8-bit (docs/benchmarks.md).
PLANAR_420 = {"yuv420p": 8, "yuvj420p": 8, "yuv420p10le": 10}
#: Full-range samples brought to the limited range that OpenCV's BT.601 conversion
#: expects: luma 0-255 to 16-235, colour 0-255 to 16-240 around 128. Converting the
#: result is the full-range (JPEG) conversion FFmpeg applies, to within a level.
LUMA_TO_LIMITED = np.round(16 + np.arange(256) * 219 / 255).astype(np.uint8)
CHROMA_TO_LIMITED = np.round(128 + (np.arange(256) - 128) * 224 / 255).astype(np.uint8)


@dataclass(frozen=True)
class Sampling:
    """How a frame's 4:2:0 planes store their samples."""

    bits: int = 8
    full_range: bool = False

    def limited_8bit(self, plane: np.ndarray, chroma: bool) -> np.ndarray:
        """``plane`` as 8-bit limited-range samples, as OpenCV's conversion takes them."""
        if self.bits > 8:
            # Rounds to the nearest 8-bit level.
            plane = cv2.convertScaleAbs(plane, alpha=1 / (1 << (self.bits - 8)))
        if self.full_range:
            plane = cv2.LUT(plane, CHROMA_TO_LIMITED if chroma else LUMA_TO_LIMITED)
        return plane

    def to_bgr(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """BGR from 4:2:0 planes (BT.601, as OpenCV's reader converts)."""
        height, width = y.shape
        if height % 4:
            # I420 packs two rows of each colour plane into one of luma width, so the
            # colour planes need an even number of rows. A 4:5 portrait video (1080x1350)
            # has an odd number: its last rows are repeated for the conversion, then cut.
            y = np.pad(y, ((0, 2), (0, 0)), mode="edge")
            u, v = (np.pad(plane, ((0, 1), (0, 0)), mode="edge") for plane in (u, v))
        i420 = np.concatenate(
            [
                self.limited_8bit(y, chroma=False),
                self.limited_8bit(u, chroma=True).reshape(-1, width),
                self.limited_8bit(v, chroma=True).reshape(-1, width),
            ]
        )
        return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)[:height]


@dataclass(frozen=True)
class Picture:
    """A full-size frame as decoded: its 4:2:0 planes, or BGR for other pixel formats.
    Colour conversion and the display rotation wait for ``bgr``, which only the frames
    written as key frames need. The planes are views of the decoder's frame, which they
    keep alive, not copies: copying every candidate took a tenth of the scene pass's
    main thread at 1080p (docs/benchmarks.md)."""

    planes: tuple[np.ndarray, ...]
    #: Counter-clockwise quarter turns that show the frame upright (as ``np.rot90``).
    turns: int = 0
    sampling: Sampling = Sampling()
    #: Flipped left to right before it is turned (``orientation``).
    mirrored: bool = False

    @classmethod
    def of_bgr(cls, image: np.ndarray, turns: int = 0, mirrored: bool = False) -> Picture:
        return cls((image,), turns, mirrored=mirrored)

    @property
    def nbytes(self) -> int:
        return sum(plane.nbytes for plane in self.planes)

    def grey(self) -> np.ndarray:
        """Brightness: the luma plane (in 8 bits), or BGR made grey."""
        if len(self.planes) == 3:
            return Sampling(self.sampling.bits).limited_8bit(self.planes[0], chroma=False)
        return cv2.cvtColor(self.planes[0], cv2.COLOR_BGR2GRAY)

    def bgr(self, sample_aspect: Fraction | None = None) -> np.ndarray:
        """The frame in BGR as a player shows it: widened or narrowed by the stream's
        ``sample_aspect`` ratio (``displayed_width``), then turned upright."""
        image = self.sampling.to_bgr(*self.planes) if len(self.planes) == 3 else self.planes[0]
        height, width = image.shape[:2]
        shown = displayed_width(width, sample_aspect)
        if shown != width:
            shrink = cv2.INTER_AREA if shown < width else cv2.INTER_LINEAR
            image = cv2.resize(image, (shown, height), interpolation=shrink)
        return shown_upright(image, self.turns, self.mirrored)


def shown_upright(image: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    """``image`` flipped left to right if ``mirrored``, then turned ``turns`` quarter
    turns counter-clockwise."""
    if mirrored:
        image = image[:, ::-1]
    return np.ascontiguousarray(np.rot90(image, turns)) if turns or mirrored else image


def _plane(plane: VideoPlane, dtype: np.dtype, height: int, width: int) -> np.ndarray:
    """A view of one plane, without the decoder's row padding. The view holds the frame:
    the decoder never writes into a buffer while a frame refers to it."""
    rows = np.frombuffer(memoryview(plane), dtype).reshape(-1, plane.line_size // dtype.itemsize)
    return rows[:height, :width]


def _three_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of a 4:2:0 frame's luma and half-size colour planes: 8-bit samples, or
    16-bit ones for formats of more bits."""
    width, height = frame.width, frame.height
    wide = PLANAR_420.get(frame.format.name, 8) > 8
    dtype = np.dtype("<u2") if wide else np.dtype(np.uint8)
    # PyAV builds the planes anew each time they are asked for.
    luma, blue, red = frame.planes
    return (
        _plane(luma, dtype, height, width),
        _plane(blue, dtype, height // 2, width // 2),
        _plane(red, dtype, height // 2, width // 2),
    )


def _planes_420(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Views of the frame's three planes, or None where it is not in a ``PLANAR_420``
    format or its size does not halve evenly."""
    if frame.format.name not in PLANAR_420 or frame.width % 2 or frame.height % 2:
        return None
    return _three_planes(frame)


def _sampling(frame: av.VideoFrame) -> Sampling:
    return Sampling(
        bits=PLANAR_420.get(frame.format.name, 8),
        # 2 is FFmpeg's AVCOL_RANGE_JPEG; the J format is full range whatever it says.
        full_range=frame.color_range == 2 or frame.format.name == "yuvj420p",
    )


#: The side data of a frame that says how a player turns and flips it.
DISPLAY_MATRIX = SideDataType.DISPLAYMATRIX


def orientation(frame: av.VideoFrame) -> tuple[int, bool]:
    """(counter-clockwise quarter turns, mirrored) that show the frame as a player does
    (FFmpeg's own autorotation), from its display matrix; mirrored means flipped left
    to right before turning. ``frame.rotation`` alone reads a mirrored matrix (a front
    camera's, which flips the picture back) as a turn: such a video's key frames were
    written upside down, and no caption in them was read."""
    if DISPLAY_MATRIX not in frame.side_data:
        return 0, False
    # PyAV's stubs give side_data as a TypedDict; it is a container keyed by Type.
    matrix = frame.side_data[DISPLAY_MATRIX]  # type: ignore[literal-required]
    a, b, _, c, d = struct.unpack_from("<5i", bytes(matrix))
    if a * d - b * c < 0:
        return round(math.degrees(math.atan2(c, -a)) / 90) % 4, True
    return round(math.degrees(math.atan2(c, a)) / 90) % 4, False


def detector_size(width: int, height: int, turns: int) -> tuple[int, int]:
    """Coded width and height for the detectors: the upright picture's width brought to
    PySceneDetect's downscale width, then even (and the height a multiple of 4), as I420
    needs."""
    factor = compute_downscale_factor(height if turns % 2 else width)
    return (
        max(2, round(width / factor) // 2 * 2),
        max(4, round(height / factor) // 4 * 4),
    )


def scaled_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.resize(plane, size)``, bilinear, to the same samples. Where the plane shrinks
    by one odd whole factor ``k`` both ways (5 from 1280x720 to the detectors' 256x144,
    15 from 3840x2160), every bilinear sample falls on a source pixel, the middle one of
    each ``k`` by ``k`` block, with a weight of one: taking those pixels is the same
    result. It reads one row in ``k`` of a plane no longer in the cache, where the
    resize reads two (docs/benchmarks.md)."""
    height, width = plane.shape[:2]
    factor, left = divmod(width, size[0])
    if factor % 2 and not left and height == size[1] * factor:
        middle = factor // 2
        return np.ascontiguousarray(plane[middle::factor, middle::factor])
    return cv2.resize(plane, size)


def split_frame(
    frame: av.VideoFrame, keep: bool, upright: tuple[int, bool]
) -> tuple[np.ndarray, Picture | None]:
    """The frame for the detectors (BGR at ``detector_size``, turned upright), and, if
    ``keep``, the full-size ``Picture``. ``upright``: the frame's ``orientation``, as
    ``PlanarStream.upright`` gives it.

    4:2:0 in a ``PLANAR_420`` format, the usual case, is scaled plane by plane and
    converted at the small size (the same BT.601 conversion OpenCV's reader applies;
    10-bit samples rounded to 8, full range brought to limited first). Every other pixel
    format goes through FFmpeg's own conversion to BGR at full size."""
    width, height = frame.width, frame.height
    turns, mirrored = upright
    small = detector_size(width, height, turns)
    planes = _planes_420(frame)
    if planes is not None:
        y, u, v = planes
        sampling = _sampling(frame)
        chroma = (small[0] // 2, small[1] // 2)
        image = sampling.to_bgr(
            scaled_plane(y, small), scaled_plane(u, chroma), scaled_plane(v, chroma)
        )
        kept = Picture((y, u, v), turns, sampling, mirrored) if keep else None
    else:
        full = frame.to_ndarray(format="bgr24")
        image = cv2.resize(full, small)
        kept = Picture.of_bgr(full, turns, mirrored) if keep else None
    return shown_upright(image, turns, mirrored), kept


class PlanarStream(VideoStreamAv):
    """The scene pass's reader: PyAV, on one decoding thread unless ``decode_on`` sets
    more. ``read`` returns each frame at the detectors' size (PySceneDetect's
    auto-downscale width, 256 px and up), so a ``SceneManager`` scales nothing; the
    scene pass itself reads through ``DecodeAhead`` and ``split_frame``."""

    def __init__(self, path: str, skip_b_deblocking: bool = False) -> None:
        """``skip_b_deblocking``: an H.264 stream's B-frames are decoded without the
        deblocking (loop) filter, a sizeable part of decoding it. Their pictures then
        differ slightly from the encoder's, by too little to change what the detectors
        see; few other frames are predicted from them, so the difference does not
        spread (``SKIP_LOOP_FILTER``). Other codecs decode as they are."""
        # Frame threading as PySceneDetect sets it up (its end-of-file check included),
        # with one thread until ``decode_on`` says otherwise. ``suppress_output`` keeps
        # PyAV's own handler of FFmpeg's messages, which drops them. Without it
        # PySceneDetect hands them to FFmpeg's, which prints each to the worker's stderr
        # from then on, for every video: one line a frame for some files (a full-range
        # 4:2:2 video: "deprecated pixel format used"), raw text amid the worker's JSON
        # logs. PyAV's handler takes no GIL, so it cannot deadlock with frame threading,
        # which is what PySceneDetect warns of.
        super().__init__(path, threading_mode="AUTO", suppress_output=True)
        self._video_stream.thread_count = 1
        self.skip_b_deblocking = skip_b_deblocking
        #: Whether this stream's B-frames are decoded without the filter.
        self.skips_b_deblocking = (
            skip_b_deblocking and self._codec_context.name in SKIP_LOOP_FILTER_CODECS
        )
        if self.skips_b_deblocking:
            # Read when the codec opens, on the first frame decoded.
            self._codec_context.options = {
                **self._codec_context.options,
                "skip_loop_filter": SKIP_LOOP_FILTER,
            }
        #: Whether skipping frames can only be chosen before the first frame is decoded
        #: (``SKIP_SET_AT_OPEN_CODECS``).
        self.skip_fixed_at_open = self._codec_context.name in SKIP_SET_AT_OPEN_CODECS
        #: Frames decoded and read, seeking included.
        self.frames_read = 0
        #: The rotation angle of the last frame ``upright`` was asked about, and its
        #: orientation.
        self._upright: tuple[int, tuple[int, bool]] | None = None

    def upright(self, frame: av.VideoFrame) -> tuple[int, bool]:
        """``orientation(frame)`` for a frame of this stream, read from the frame's side
        data only when its rotation angle (which PyAV reads without it) differs from the
        last one's. Reading a frame's side data ties the frame and PyAV's container of
        it in a reference cycle, which only Python's cyclic collector frees: read for
        every frame, it kept hundreds of decoded frames, and the decoder's buffers they
        hold, alive at once, and the decoder zeroed fresh memory for most frames: a
        fifth of the scene pass's CPU (docs/benchmarks.md)."""
        angle = frame.rotation
        if self._upright is None or self._upright[0] != angle:
            self._upright = (angle, orientation(frame))
        return self._upright[1]

    def decode_on(self, threads: int) -> None:
        """Before the first read: decode on ``threads`` threads, 0 for FFmpeg's own
        count (the CPUs, plus one)."""
        self._video_stream.thread_count = max(0, threads)

    def skip_nonreference(self, skip: bool = True) -> None:
        """FFmpeg skips (or, with ``skip`` false, again decodes) the frames no other frame
        is predicted from, most B-frames of H.264 and HEVC: skipped frames are neither
        decoded nor read. Call it before the first read, or from the thread reading;
        where ``skip_fixed_at_open``, only a call before the first read counts."""
        self._codec_context.skip_frame = "NONREF" if skip else "DEFAULT"

    def close(self) -> None:
        self._container.close()

    def frames_from(self, first: int, before: int) -> list[tuple[FrameTimecode, av.VideoFrame]]:
        """Frames ``first`` up to ``before`` (left out), with their positions: a seek to
        the key frame before ``first``, from which only the frames others are predicted
        from are decoded until ``first`` (the others cannot matter to what follows).
        Whether a frame is skipped is decided by its own packet, so a frame the decoder
        holds back to put frames in order is never lost. A decoder that chooses skipping
        only when it opens (``skip_fixed_at_open``) decodes every frame from the key
        frame: skipping before ``first`` would skip from ``first`` on too. For a second
        reader of a file: ``read`` goes on from wherever this stops."""
        stream = self._video_stream
        time_base = stream.time_base
        assert time_base is not None
        first_pts = (stream.start_time or 0) + int(
            FrameTimecode(first, self.frame_rate).seconds / time_base
        )
        half_frame = int(0.5 / float(self.frame_rate) / time_base)
        self._decoder = None
        self._container.seek(first_pts, stream=stream)
        found: list[tuple[FrameTimecode, av.VideoFrame]] = []
        try:
            for packet in self._container.demux(stream):
                if packet.pts is not None and not self.skip_fixed_at_open:
                    before_first = packet.pts < first_pts - half_frame
                    self.skip_nonreference(before_first)
                for frame in packet.decode():
                    self._frame = frame
                    self.frames_read += 1
                    position = self.position
                    if position.frame_num >= before:
                        return found
                    if position.frame_num >= first:
                        found.append((position, frame))
        finally:
            self.skip_nonreference(False)
        return found

    @property
    def coded_size(self) -> tuple[int, int]:
        """Width and height as decoded, before any display rotation."""
        return self._codec_context.width, self._codec_context.height

    @property
    def claimed_frames(self) -> int | None:
        """The frames the file says the stream holds: PySceneDetect's count (the track's
        samples, else its length at the frame rate), but no more than the stream's own
        length gives. An MP4 cut without re-encoding (``ffmpeg -ss … -c copy``, a phone's
        trim) keeps the frames before the cut, hidden by an edit list: its track held
        542 samples where 530 play, and the item was said to end early. The length is
        counted at the higher of the stream's average rate and the rate the pass goes
        by, so that a variable frame rate never makes it fewer frames than there are."""
        counted = self.duration.frame_num if self.duration is not None else None
        stream = self._video_stream
        if counted and stream.duration and stream.time_base:
            rate = max(float(self.frame_rate), float(stream.average_rate or 0))
            shown = round(float(stream.duration * stream.time_base) * rate)
            if 0 < shown < counted:
                return shown
        return counted

    @property
    def bit_rate(self) -> int:
        """The video stream's bits per second; the whole file's where the container
        records none for the stream (Matroska, WebM); 0 where neither is known."""
        return int(self._video_stream.bit_rate or self._container.bit_rate or 0)

    @property
    def decoded(self) -> av.VideoFrame | None:
        """The frame the last ``read`` decoded."""
        return self._frame

    @property
    def sample_aspect(self) -> Fraction | None:
        """The stream's sample (pixel) aspect ratio, or None where it states none."""
        ratio = self._video_stream.sample_aspect_ratio
        return Fraction(ratio) if ratio else None

    @property
    def frame_size(self) -> tuple[int, int]:
        """The size ``read`` returns, upright."""
        turns = self.upright(self._frame)[0] if self._frame is not None else 0
        width, height = detector_size(*self.coded_size, turns)
        return (height, width) if turns % 2 else (width, height)

    def read(self, decode: bool = True) -> np.ndarray | bool:
        if not super().read(decode=False):
            return False
        self.frames_read += 1
        if not decode:
            return True
        frame = self._frame
        assert frame is not None
        return split_frame(frame, keep=False, upright=self.upright(frame))[0]


def still_gauge(frame: av.VideoFrame) -> np.ndarray | None:
    """A coarse sample of the frame's planes in 8-bit levels, to tell whether the
    picture moved; None for pixel formats other than ``PLANAR_420``."""
    bits = PLANAR_420.get(frame.format.name)
    if bits is None:
        return None
    y, u, v = _three_planes(frame)
    sample = np.concatenate([y[::8, ::8].ravel(), u[::4, ::4].ravel(), v[::4, ::4].ravel()])
    return (sample >> (bits - 8)).astype(np.int16)


def refine_cut(path: str, after: int, at: int, skip_b_deblocking: bool = False) -> int:
    """Where a cut reported at frame ``at`` lies, when the frames after ``after`` and
    before ``at`` were skipped: decodes that stretch again, every frame (from the key
    frame before it, as decoding must), and returns the frame whose picture differs
    most from the one before it. ``skip_b_deblocking`` as the pass decoded
    (``PlanarStream``). Raises what PyAV raises for a file it cannot read."""
    video = PlanarStream(path, skip_b_deblocking)
    try:
        previous: np.ndarray | None = None
        best, best_change = at, -1.0
        for position, frame in video.frames_from(after, at + 1):
            number = position.frame_num
            image = _hsv(split_frame(frame, keep=False, upright=video.upright(frame))[0])
            if previous is not None and previous.shape == image.shape:
                change = hsv_change(previous, image)
                if change > best_change:
                    best, best_change = number, change
            previous = image
        return best
    finally:
        video.close()


class DecodeAhead:
    """Reads ``video`` on a thread of its own, at most ``ahead`` frames ahead of the
    caller, who iterates over ``(position, frame)`` of each frame as PyAV decoded it.
    Decoding is most of the scene pass; the caller scales each frame down and runs the
    detectors meanwhile. A context manager: leaving it stops the thread, whatever ends
    the caller's loop. While it runs, only its thread may touch ``video``."""

    def __init__(
        self,
        video: PlanarStream,
        ahead: int = DECODE_AHEAD_FRAMES,
        widest_step: int = 0,
        skip_while_still: bool = False,
    ) -> None:
        """``widest_step``: when ``video`` skips frames and one decoded frame stands for
        more than this many, it decodes every frame from there on (0: no limit).

        ``skip_while_still``: ``video`` skips the frames no other frame is predicted
        from while the picture stands still (``STILL_CHANGE``, ``STILL_FRAMES``), and
        decodes every frame again once it moves. The frames skipped just before a frame
        that moved are decoded again from a second reader and handed over in their
        place, so the caller sees every frame around any change. Where that costs more
        decoding than skipping saved, skipping stops for good."""
        self._video = video
        self._widest_step = widest_step
        self._while_still = skip_while_still
        #: The frame from which every frame was decoded, skipping having stopped there.
        self.skipping_stopped_at: int | None = None
        #: Frames skipped and never decoded; frames decoded a second time.
        self.skipped = 0
        self.decoded_again = 0
        self._queue: queue.Queue[tuple[FrameTimecode, av.VideoFrame] | BaseException | None] = (
            queue.Queue(ahead)
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._decode, name="scene-decode", daemon=True)

    def __enter__(self) -> DecodeAhead:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():
            self._drain()
            self._thread.join(timeout=0.05)
        self._drain()

    def __iter__(self) -> Iterator[tuple[FrameTimecode, av.VideoFrame]]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _put(self, item: tuple[FrameTimecode, av.VideoFrame] | BaseException | None) -> bool:
        """Waits for room; False once the caller has gone."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode(self) -> None:
        video = self._video
        again: PlanarStream | None = None
        last: int | None = None
        last_gauge: np.ndarray | None = None
        still_run = 0
        skipping = False
        # Where skipping last stopped: frame threads may still skip a few frames after.
        stopped_at = -(2**31)
        # Whether the second reader failed: skipping then stops for good.
        unreadable = False
        try:
            while video.read(decode=False):
                frame = video.decoded
                assert frame is not None
                position = video.position
                number = position.frame_num
                gap = number - last - 1 if last is not None else 0
                if self._widest_step and gap >= self._widest_step and not video.skip_fixed_at_open:
                    # Frames already skipped stay skipped; a cut among them is found
                    # again by refine_cut. (A decoder that chose skipping when it opened
                    # keeps skipping, and refine_cut places the cuts.)
                    video.skip_nonreference(False)
                    self._widest_step = 0
                    self.skipping_stopped_at = number
                if self._while_still:
                    gauge = still_gauge(frame)
                    moved = (
                        gauge is None
                        or last_gauge is None
                        or float(np.abs(gauge - last_gauge).mean()) >= STILL_CHANGE
                    )
                    last_gauge = gauge
                    # Frames missing for no skip of ours: a variable frame rate.
                    gap = gap if skipping or number - stopped_at <= 16 else 0
                    if moved and gap > 0 and last is not None:
                        refilled: list[tuple[FrameTimecode, av.VideoFrame]] = []
                        try:
                            again = again or PlanarStream(video.path, video.skip_b_deblocking)
                            read_before = again.frames_read
                            refilled = again.frames_from(last + 1, number)
                            self.decoded_again += again.frames_read - read_before
                        except (VideoOpenFailure, OSError, av.error.FFmpegError):  # type: ignore[attr-defined]
                            # The frames stay skipped, as at 50 fps and more: a cut
                            # among them is placed by refine_cut, or stays late.
                            unreadable = True
                        for item in refilled:
                            if not self._put(item):
                                return
                        gap -= len(refilled)
                    self.skipped += gap
                    still_run = 0 if moved else still_run + 1
                    if unreadable or self.decoded_again > self.skipped:
                        self._while_still = False
                        self.skipping_stopped_at = number
                        still_run = 0
                    wanted = still_run >= STILL_FRAMES
                    if wanted != skipping:
                        video.skip_nonreference(wanted)
                        skipping = wanted
                        stopped_at = stopped_at if wanted else number
                last = number
                if not self._put((position, frame)):
                    return
        except BaseException as exc:  # handed to the caller, who raises it
            self._put(exc)
            return
        finally:
            if again is not None:
                again.close()
        self._put(None)


@dataclass(frozen=True)
class PickedKeyframe:
    """A scene's key frame, written during the pass; heartbeated for a retry."""

    scene_start: int
    frame: int
    image_file: str


def shown_by_main(main: int, extras: list[PickedKeyframe], every: int) -> PickedKeyframe | None:
    """Of a scene's ``extras`` (picked where its text changed, in order), the one whose
    text the main key frame ``main`` surely shows too. A change is picked at most two
    looks (``every`` frames each) after it happened; a third allows for text that fades
    in. Where that leaves a doubt, None."""
    for extra, following in zip(extras, [*extras[1:], None], strict=False):
        if extra.frame > main:
            return None
        if following is None or main <= following.frame - 3 * every:
            return extra
    return None


class KeyframeCollector:
    """Picks each scene's key frame from evenly spaced full-size frames of the scene,
    and, if ``text_changes``, the frames where the scene's text changed
    (``activities.text_changes``).

    ``offer`` every frame ``wanted_from`` on, in order; ``close(cut)`` when a cut is
    confirmed. Samples start ``SAMPLE_SECONDS`` apart and thin out (every other one
    dropped, spacing doubled) whenever the scene gets long, so memory stays under
    ``SAMPLE_BUDGET_BYTES`` whatever its length. The pick is the sharpest of the samples
    nearest the candidate positions ``extract_keyframes`` uses (35, 50 and 65 % into the
    scene). Frames picked for their text are written when seen, so none is held; at the
    scene's close, the one whose text the main pick shows too is left out."""

    def __init__(
        self,
        fps: float,
        open_start: int,
        save: Callable[[int, Picture, int | None], str],
        text_changes: bool = True,
        open_extras: list[PickedKeyframe] | None = None,
    ) -> None:
        self.base_stride = max(1, round(SAMPLE_SECONDS * fps))
        self.stride = self.base_stride
        self.capacity = 0
        self.open_start = open_start
        self.next_at = open_start
        self.samples: list[tuple[int, Picture]] = []
        self.picked: list[PickedKeyframe] = []
        self._save = save
        self.text: TextChangeWatch[Picture] | None = None
        if text_changes:
            self.text = TextChangeWatch(fps)
            self.text.restart(open_start)
        #: The open scene's frames picked for their text, already written.
        self.extras: list[PickedKeyframe] = list(open_extras or [])

    @property
    def wanted_from(self) -> int:
        """The first frame from which on a full-size picture is wanted."""
        return self.next_at if self.text is None else min(self.next_at, self.text.next_at)

    def offer(self, number: int, image: Picture) -> None:
        if self.text is not None and number >= self.text.next_at:
            for frame, picture in self.text.look(number, image.grey(), image):
                name = self._save(self.open_start, picture, frame)
                self.extras.append(PickedKeyframe(self.open_start, frame, name))
        if number < self.next_at:
            return
        if not self.capacity:
            self.capacity = max(4, SAMPLE_BUDGET_BYTES // max(image.nbytes, 1))
        self.samples.append((number, image))
        if len(self.samples) > self.capacity:
            self.samples = self.samples[::2]
            self.stride *= 2
        self.next_at = self.samples[-1][0] + self.stride

    def close(self, end: int) -> None:
        """The open scene ends before frame ``end``; the next one starts there."""
        if end <= self.open_start:
            return
        start, self.open_start = self.open_start, end
        inside = [s for s in self.samples if start <= s[0] < end]
        self.samples = [s for s in self.samples if s[0] >= end]
        self.stride = self.base_stride
        self.next_at = self.samples[-1][0] + self.stride if self.samples else end
        # Looks past the cut, taken before it was confirmed, saw the next scene.
        extras = [kf for kf in self.extras if kf.frame < end]
        self.extras = []
        if self.text is not None:
            self.text.restart(end)
        if not inside:
            self.picked += extras
            return
        nearest: dict[int, Picture] = {}
        for target in candidate_frames(start, end):
            number, image = min(inside, key=lambda s: abs(s[0] - target))
            nearest[number] = image
        # The earliest wins a tie, as in extract_keyframes.
        frame = max(sorted(nearest), key=lambda n: grey_sharpness(nearest[n].grey()))
        self.picked.append(PickedKeyframe(start, frame, self._save(start, nearest[frame], None)))
        if self.text is not None:
            same = shown_by_main(frame, extras, self.text.every)
            self.picked += [kf for kf in extras if kf is not same]


class KeyframeTap:
    """Follows the ``TransientFilter``: closes the scene each newly confirmed cut ends,
    says which frames the collector wants at full size, and offers them to it."""

    def __init__(self, cuts: TransientFilter, collector: KeyframeCollector) -> None:
        self.filter = cuts
        self.collector = collector
        self.closed = 0

    def wants(self, number: int) -> bool:
        """Whether frame ``number``'s full-size picture may become a sample."""
        self.close_confirmed()
        return number >= self.collector.wanted_from

    def offer(self, number: int, picture: Picture | None) -> None:
        """After the detectors have seen frame ``number``."""
        self.close_confirmed()
        if picture is not None:
            self.collector.offer(number, picture)

    def close_confirmed(self) -> None:
        for cut in self.filter.cuts[self.closed :]:
            self.collector.close(cut)
        self.closed = len(self.filter.cuts)


class ChannelSumsScore(ContentDetector):
    """PySceneDetect's content score (``ContentDetector._calculate_frame_score``, which
    ``AdaptiveDetector`` uses too), the same numbers computed in fewer passes.

    The library splits each HSV frame into three planes and sums each plane's absolute
    difference from the last frame in numpy, as 32-bit integers. Here OpenCV sums all
    three channels of one absolute difference at once. The sums are whole numbers, far
    below 2**53 at the detectors' size, so exact in either form, and the score is
    combined in the library's order: every frame scores the same to the last bit
    (tested). It saves about 0.13 CPU-s per minute of 30 fps video. With a stats
    manager or an edge weight, the library's own code runs."""

    _last_hsv: np.ndarray | None = None

    def _calculate_frame_score(self, timecode: FrameTimecode, frame_img: np.ndarray) -> float:
        if self.stats_manager is not None or self._weights.delta_edges > 0.0:
            return float(super()._calculate_frame_score(timecode, frame_img))
        hsv = cv2.cvtColor(frame_img, cv2.COLOR_BGR2HSV)
        last, self._last_hsv = self._last_hsv, hsv
        if last is None:
            return 0.0
        pixels = float(hsv.shape[0] * hsv.shape[1])
        hue, sat, lum, _ = cv2.sumElems(cv2.absdiff(hsv, last))
        components = (hue / pixels, sat / pixels, lum / pixels, 0.0)
        return sum(
            component * weight for component, weight in zip(components, self._weights, strict=True)
        ) / sum(abs(weight) for weight in self._weights)


class AdaptiveCutDetector(ChannelSumsScore, AdaptiveDetector):
    """PySceneDetect's ``AdaptiveDetector`` with the score of ``ChannelSumsScore``."""


class ContentCutDetector(ChannelSumsScore):
    """PySceneDetect's ``ContentDetector`` with the score of ``ChannelSumsScore``."""


#: Below this many frames a second the content detector finds the cuts, whatever the
#: worker's choice. The adaptive detector weighs a frame's change against the changes of
#: the two frames on either side, so a shot must last three frames to stand out: a tenth
#: of a second at 30 fps, but 6 s at 0.5 fps. A 0.5 fps slideshow of 4 s slides kept one
#: cut of four, and one with a frame per slide none. Frames a third of a second or more
#: apart are each their own picture; a change of content between them is a cut.
ADAPTIVE_MIN_FPS = 3.0


def detector_kind(kind: str, fps: float) -> str:
    """The detector to run on video of ``fps``: ``kind``, or "content" at low rates."""
    return "content" if 0 < fps < ADAPTIVE_MIN_FPS else kind


def make_detector(kind: str, threshold: float, min_scene_len: int) -> SceneDetector:
    if kind == "content":
        return ContentCutDetector(threshold=threshold, min_scene_len=min_scene_len)
    return AdaptiveCutDetector(min_scene_len=min_scene_len)


def spans_from_cuts(cuts: list[int], total_frames: int, fps: float) -> list[SceneSpan]:
    """Scenes between consecutive cut frames; one scene when there is no cut."""
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < total_frames), total_frames]
    return [
        SceneSpan(
            start_frame=start,
            end_frame=end,
            start_s=round(start / fps, 3),
            end_s=round(end / fps, 3),
        )
        for start, end in pairwise(bounds)
        if end > start
    ]


#: Decoding work a second of video brings, counted in pixels, given to each decoding
#: thread while transcription runs beside the scene pass. Frame threads cost CPU
#: (decoding the 720p bench clip took 1.15 CPU-s on one thread, 1.4-1.9 on FFmpeg's 3),
#: which transcription could use; but a video that is costly to decode makes the scene
#: pass outlast transcription on one thread, and a CPU then waits. Refitted in session
#: 37, once the scene pass no longer kept its frames alive (which had made every pixel
#: cost more): on 2 CPUs, through the API, 1080p at 30 fps (62.2 M pixels a second) with
#: few bits (the bench's flat clip at 37 kbit/s, a slides clip at 122 kbit/s) was 3-4 %
#: faster on one thread, and filmed 720p and 1080p at 1.7-3.7 Mbit/s 4.5-14 % faster on
#: two (docs/benchmarks.md).
PIXELS_PER_DECODE_THREAD = 72e6
#: What a bit of the stream counts for, in pixels. Bits cost decoding time beyond the
#: pixels: filmed 720p at 4 Mbit/s took 5.3 CPU-s to decode on one thread, the flat clip
#: (28 kbit/s) 1.1. With ``PIXELS_PER_DECODE_THREAD``, 720p at 30 fps takes a second
#: thread from 1.5 Mbit/s, where session 11 found it began to pay, and 1080p at 30 fps
#: from 0.33 Mbit/s.
BITS_AS_PIXELS = 30.0
#: Alone, with no transcription beside it (a video with no sound, or transcription
#: switched off), the scene pass has a CPU to spare; yet where decoding is cheap a
#: second frame thread only contends with the pass's own thread, which resizes and
#: scores every frame. Measured alone on 2 CPUs in one process (session 38): flat 720p
#: and 1080p at 28-122 kbit/s 6-22 % faster on one thread, filmed 720p at 0.39 Mbit/s
#: even, filmed 1080p at 0.34 Mbit/s and 720p at 0.84 Mbit/s 10-11 % faster on two,
#: and at 0.8-3.7 Mbit/s 15-27 % (docs/benchmarks.md). Alone, a video gets a thread for
#: each of these bits a second, or for each ``PIXELS_PER_DECODE_THREAD``, whichever
#: asks more.
BITS_PER_DECODE_THREAD_ALONE = 0.3e6


def decode_threads(
    most: int,
    width: int,
    height: int,
    fps: float,
    bit_rate: int,
    transcription_beside: bool,
    spare: int = 1,
) -> int:
    """Threads to decode a video on in the scene pass, at most ``most`` (0: FFmpeg's
    own count). Beside transcription: one for each ``PIXELS_PER_DECODE_THREAD`` of its
    pixels and weighted bits (``bit_rate``, bits a second) a second, and never fewer
    than ``spare``, the CPUs transcription leaves (on 2 CPUs, 1; on 8, 4). Alone: one
    for each ``BITS_PER_DECODE_THREAD_ALONE`` of its bits or each
    ``PIXELS_PER_DECODE_THREAD`` of its pixels a second, whichever asks more; all of
    them where its bits are not known."""
    if most <= 0:
        return 0
    pixels = width * height * fps
    if transcription_beside:
        work = pixels + BITS_AS_PIXELS * max(0, bit_rate)
        wanted = max(spare, math.ceil(work / PIXELS_PER_DECODE_THREAD))
    elif bit_rate <= 0:
        wanted = most
    else:
        wanted = max(
            math.ceil(pixels / PIXELS_PER_DECODE_THREAD),
            math.ceil(bit_rate / BITS_PER_DECODE_THREAD_ALONE),
        )
    return max(1, min(most, wanted))


class KeyframeReader(Protocol):
    """What reads key frames as the scene pass writes them (``activities.ocr.ReadAhead``)."""

    def offer(self, path: Path, engine: str | None) -> None: ...


class SceneActivities:
    def __init__(
        self,
        workspaces: Workspaces,
        threshold: float,
        min_scene_len_frames: int,
        detector: str = "adaptive",
        decode_threads: int = 1,
        spare_cpus: int = 1,
        skip_nonreference: bool = False,
        skip_b_deblocking: bool = False,
        niceness: int = 0,
        text_changes: bool = True,
        read_ahead: KeyframeReader | None = None,
    ) -> None:
        """``decode_threads``: the most threads that decode one video (see
        ``decode_threads``); 0 leaves the count to FFmpeg. ``spare_cpus``: the CPUs
        transcription leaves to the scene pass beside it. ``skip_nonreference``: the
        pass decodes only the frames others are predicted from, and finds the frame of
        a cut that follows skipped frames by decoding them again (``refine_cut``).
        ``skip_b_deblocking``: B-frames are decoded without the deblocking filter
        (``PlanarStream``). ``niceness``: beside transcription, the pass runs this many
        nice steps below the worker's other threads (``activities.priority``).
        ``text_changes``: key frames are also written where a scene's text changes
        (``activities.text_changes``). ``read_ahead``: each key frame written is offered
        to it, where OCR reads the key frames after the pass."""
        self._read_ahead = read_ahead
        self._niceness = niceness
        self._text_changes = text_changes
        self._skip_nonreference = skip_nonreference
        self._skip_b_deblocking = skip_b_deblocking
        self._workspaces = workspaces
        self._threshold = threshold
        self._min_scene_len_frames = min_scene_len_frames
        self._detector = detector
        self._decode_threads = decode_threads
        self._spare_cpus = spare_cpus

    @activity.defn(name="detect_scenes")
    def detect_scenes(self, input: DetectScenesInput) -> DetectScenesResult:
        """See ``_detect_scenes``; a cancel always ends it as a cancellation."""
        steps = self._niceness if input.transcription_beside else 0
        with HEAP.stage(), cancellation_wins():
            return run_lowered(lambda: self._detect_scenes(input), steps, "scene-pass")

    def _detect_scenes(self, input: DetectScenesInput) -> DetectScenesResult:
        """Hard cuts (see the module) with auto-downscale and, if asked, each scene's key
        frame, written as ``keyframes/at-NNNNNNN.jpg`` (the scene's first frame) in the
        workspace, and one more, ``at-NNNNNNN-MMMMMMM.jpg`` (its own frame), wherever the
        scene's text changes. A retry seeks to the frame the last attempt heartbeated and
        keeps the cuts and key frames found before it."""
        path = self._workspaces.file(input.workspace, input.media_file)
        try:
            video = PlanarStream(str(path), self._skip_b_deblocking)
        except (VideoOpenFailure, OSError) as exc:
            raise ApplicationError(
                f"scenes: the video cannot be opened for decoding ({exc})",
                type=ErrorKind.CORRUPT_MEDIA,
                non_retryable=True,
            ) from None
        fps = float(video.frame_rate)
        threads = decode_threads(
            self._decode_threads,
            *video.coded_size,
            fps,
            video.bit_rate,
            input.transcription_beside,
            self._spare_cpus,
        )
        video.decode_on(threads)
        # At 50 fps and more, one frame in ``step``; below, only while the picture
        # stands still (``DecodeAhead``).
        step = skim_step(fps) if self._skip_nonreference else 1
        if step > 1:
            video.skip_nonreference()
        # Skipping that starts mid-stream would not take with a decoder that chooses it
        # when it opens (AV1): every frame is decoded there.
        while_still = self._skip_nonreference and step == 1 and not video.skip_fixed_at_open
        total = video.claimed_frames
        # For progress only: the probe's length where the stream gives none.
        progress_total = total or (round(input.duration_s * fps) if input.duration_s else None)
        min_scene_len = min_scene_frames(
            input.min_scene_len_frames or self._min_scene_len_frames, fps
        )
        detector = TransientFilter(
            make_detector(
                detector_kind(self._detector, fps),
                input.threshold or self._threshold,
                min_scene_len,
            ),
            settle_frames=max(2, round(SETTLE_SECONDS * fps)),
            refine=partial(self._refine_cut, str(path)) if self._skip_nonreference else None,
        )
        cuts: list[int] = []
        picked: list[PickedKeyframe] = []
        # The first frame whose picture may become a key frame; before it, on a retry,
        # frames go to the detectors only.
        keyframes_from = 0
        previous = resumed(Stage.SCENES)
        if previous and previous.done > 0:
            cuts = [int(c) for c in previous.resume.get("cuts", [])]
            picked = [
                PickedKeyframe(**raw)
                for raw in previous.resume.get("keyframes", [])
                if self._workspaces.file(input.workspace, raw["image_file"]).is_file()
            ]
            # Start before the heartbeated frame. A heartbeat holds the cuts confirmed so
            # far; a cut among its last frames was still to be reported (the detector
            # weighs a frame against those after it) or confirmed (``settle``). The
            # detector needs the frame before a cut, and ignores cuts within
            # min_scene_len of where it starts. Cuts found again are merged below. The
            # key frames start later, where they always did: from further back the
            # text-change watch could pick a caption the last attempt had picked.
            keyframes_from = max(0, previous.done - min_scene_len - 1)
            lookback = min_scene_len + 1 + detector.settle + detector.event_buffer_length
            video.seek(max(0, previous.done - lookback))
            log().info("scenes.resumed", from_frame=previous.done, cuts=len(cuts))
        tap: KeyframeTap | None = None
        if input.keyframes:
            out_dir = self._workspaces.file(input.workspace, "keyframes")
            out_dir.mkdir(exist_ok=True)
            # The scene open at the resume point lost its samples with the last attempt:
            # its key frame comes from the part decoded from here on. What it picked for
            # the scene's text so far stays; no key frame of that scene was picked else.
            open_start = max(cuts, default=0)
            collector = KeyframeCollector(
                fps,
                open_start,
                partial(
                    self._save,
                    out_dir,
                    video.sample_aspect,
                    self._read_ahead if input.text_read_after else None,
                    input.ocr_engine,
                ),
                text_changes=self._text_changes,
                open_extras=[kf for kf in picked if kf.scene_start == open_start],
            )
            picked = [kf for kf in picked if kf.scene_start != open_start]
            tap = KeyframeTap(detector, collector)

        def heartbeat(position: int) -> None:
            resume: dict[str, object] = {"cuts": sorted(set(cuts + detector.cuts))}
            if tap:
                resume["keyframes"] = [
                    vars(kf) for kf in picked + tap.collector.picked + tap.collector.extras
                ]
            report(
                ActivityProgress(
                    stage=Stage.SCENES,
                    fraction=min(position / progress_total, 1.0) if progress_total else 0.0,
                    done=position,
                    total=progress_total,
                    unit="frames",
                    resume=resume,
                )
            )

        chunk = max(1, round(CHUNK_SECONDS * fps))
        # Frames read so far, as PySceneDetect counts them (the last one's number + 1).
        done = video.frame_number
        next_beat = done + chunk
        beat_by = time.monotonic() + BEAT_SECONDS
        detector_shape: tuple[int, ...] | None = None
        # The most frames one decoded frame stood for (more than 1 when frames are skipped).
        widest_step = 1
        decoding = DecodeAhead(
            video, widest_step=step if step > 1 else 0, skip_while_still=while_still
        )
        with decoding as frames:
            for position, frame in frames:
                number = position.frame_num
                widest_step = max(widest_step, number + 1 - done)
                tapped = tap if number >= keyframes_from else None
                image, kept = split_frame(
                    frame,
                    keep=tapped is not None and tapped.wants(number),
                    upright=video.upright(frame),
                )
                # A frame whose size changed mid-stream cannot be compared with the
                # others; PySceneDetect's reader skips it too.
                detector_shape = detector_shape or image.shape
                if image.shape == detector_shape:
                    detector.process_frame(position, image)
                    if tapped:
                        tapped.offer(number, kept)
                done = number + 1
                if done >= next_beat or time.monotonic() >= beat_by:
                    heartbeat(done)
                    next_beat = done + chunk
                    beat_by = time.monotonic() + BEAT_SECONDS
        heartbeat(done)
        detector.finish()
        all_cuts = sorted(set(cuts + detector.cuts))
        # Scenes end where decoding really ended: a truncated file claims more. Frames
        # skipped at the very end still count: what the container claims, when it is
        # no further away than frames were skipped.
        end_frame = video.frame_number
        if self._skip_nonreference and total and end_frame < total < end_frame + widest_step:
            end_frame = total
        if end_frame <= 0:
            raise ApplicationError(
                "scenes: no frame could be decoded",
                type=ErrorKind.CORRUPT_MEDIA,
                non_retryable=True,
            )
        scenes = spans_from_cuts(all_cuts, end_frame, fps)
        keyframes: list[KeyframeFile] | None = None
        if tap:
            tap.close_confirmed()
            tap.collector.close(end_frame)
            by_start: dict[int, list[PickedKeyframe]] = {}
            for kf in sorted(picked + tap.collector.picked, key=lambda kf: kf.frame):
                by_start.setdefault(kf.scene_start, []).append(kf)
            keyframes = [
                KeyframeFile(
                    scene_index=index,
                    keyframe=KeyFrame(time_s=round(kf.frame / fps, 3), frame=kf.frame),
                    image_file=kf.image_file,
                )
                for index, scene in enumerate(scenes)
                for kf in by_start.get(scene.start_frame, [])
            ]
        log().info(
            "scenes.detected",
            count=len(scenes),
            frames=end_frame,
            fps=fps,
            detector=detector_kind(self._detector, fps),
            decode_threads=threads,
            skipping_nonreference="one frame in two or more"
            if step > 1
            else "while the picture stands still"
            if while_still
            else "no",
            frames_skipped=decoding.skipped if while_still else None,
            frames_decoded_again=decoding.decoded_again if while_still else None,
            skipping_stopped_at=decoding.skipping_stopped_at,
            b_frames_deblocked=not video.skips_b_deblocking,
            transients_dropped=detector.dropped,
            keyframes=None if keyframes is None else len(keyframes),
            keyframes_for_changed_text=None
            if keyframes is None
            else len(keyframes) - len({kf.scene_index for kf in keyframes}),
        )
        return DetectScenesResult(
            fps=fps,
            scenes=scenes,
            decoded_frames=end_frame,
            expected_frames=total,
            keyframes=keyframes,
        )

    def _refine_cut(self, path: str, after: int, at: int) -> int:
        """``refine_cut``; where the stretch cannot be decoded again, the cut stays where
        it was reported, at most the skipped frames late."""
        try:
            return refine_cut(path, after, at, self._skip_b_deblocking)
        except (VideoOpenFailure, OSError, av.error.FFmpegError) as exc:  # type: ignore[attr-defined]
            log().warning("scenes.cut_not_refined", frame=at, after=after, error=str(exc))
            return at

    def _save(
        self,
        out_dir: Path,
        sample_aspect: Fraction | None,
        reader: KeyframeReader | None,
        ocr_engine: str | None,
        scene_start: int,
        picture: Picture,
        frame: int | None,
    ) -> str:
        """Writes a key frame JPEG, shaped as a player shows the frame, and offers it to
        ``reader``; returns its name inside the workspace. ``frame``: set for a frame
        picked for its text."""
        name = f"at-{scene_start:07d}" + ("" if frame is None else f"-{frame:07d}") + ".jpg"
        write_jpeg(out_dir / name, picture.bgr(sample_aspect))
        if reader is not None:
            reader.offer(out_dir / name, ocr_engine)
        return f"keyframes/{name}"
