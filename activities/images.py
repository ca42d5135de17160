"""Image items (a carousel's pictures, a direct image link): fetch, check, normalise.
An animated image is kept for the video stages (scenes, key frames, OCR), as a silent
video: as fetched where FFmpeg decodes it (GIF, APNG), else its frames as H.264."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import av
import httpx
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
from pillow_heif import register_heif_opener
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.download import (
    FetchPolicy,
    _http_error,
    classify_download_error,
    size_in_words,
)
from activities.netguard import check_scheme
from activities.progress import cancellation_wins, log, report, reraise_if_cancelled
from activities.workspace import Workspaces
from models.errors import ErrorKind
from models.jobs import MediaMetadata, Stage
from models.pipeline import ActivityProgress, FetchImageInput, FetchImageResult

# Phones' photos are HEIC (HEVC pictures in HEIF): Pillow reads them through
# pillow-heif, which turns them upright as their rotation says.
register_heif_opener()

#: A frame's time where an animated image gives none (browsers show such frames for
#: about 0.1 s).
DEFAULT_FRAME_MS = 100
RAW_FILE = "image.orig"
IMAGE_FILE = "image.jpg"
#: An animated image, kept as fetched for the video stages: ``animation.gif``, ...
ANIMATION_STEM = "animation"
#: ... or, where FFmpeg cannot decode it (animated WebP), its frames as video.
TRANSCODED_ANIMATION = f"{ANIMATION_STEM}.mkv"
#: How often the transcoding reports progress, in frames.
FRAMES_PER_REPORT = 25


class ImageActivities:
    def __init__(self, workspaces: Workspaces, policy: FetchPolicy, max_pixels: int) -> None:
        self._workspaces = workspaces
        self._policy = policy
        self._max_bytes = policy.max_bytes
        self._max_pixels = max_pixels
        self._timeout_s = policy.socket_timeout_s

    @activity.defn(name="fetch_image")
    def fetch_image(self, input: FetchImageInput) -> FetchImageResult:
        """See ``_fetch_image``; a cancel always ends it as a cancellation."""
        with cancellation_wins():
            return self._fetch_image(input)

    def _fetch_image(self, input: FetchImageInput) -> FetchImageResult:
        """Download an image (network), refuse decompression bombs, and save it as
        ``image.jpg`` in the workspace for OCR, turned upright as its EXIF orientation
        says."""
        check_scheme(input.url, "download")
        workspace = self._workspaces.create(input.workspace)
        raw = workspace / RAW_FILE
        size = 0
        try:
            with (
                self._policy.guard(),
                httpx.stream(
                    "GET", input.url, follow_redirects=True, timeout=self._timeout_s
                ) as response,
            ):
                if response.status_code >= 400:
                    raise _http_error(input.url, response.status_code)
                with raw.open("wb") as sink:
                    for chunk in response.iter_bytes(64 * 1024):
                        size += len(chunk)
                        if size > self._max_bytes:
                            raise ApplicationError(
                                f"download: the image at {input.url} is larger than the "
                                f"{size_in_words(self._max_bytes)} limit "
                                "(REELSCOPE_MAX_DOWNLOAD_BYTES)",
                                type=ErrorKind.MEDIA_TOO_LARGE,
                                non_retryable=True,
                            )
                        sink.write(chunk)
                        report(ActivityProgress(stage=Stage.DOWNLOAD, done=size, unit="bytes"))
        except (httpx.HTTPError, OSError) as exc:
            reraise_if_cancelled(exc)
            raise classify_download_error(
                input.url, exc, timeout_s=self._timeout_s, folder=self._workspaces.root
            ) from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(raw) as image:
                    width, height = image.size
                    if width * height > self._max_pixels:
                        raise ApplicationError(
                            f"probe: the image is {width}x{height} pixels, over the "
                            f"{self._max_pixels} pixel limit",
                            type=ErrorKind.MEDIA_TOO_LARGE,
                            non_retryable=True,
                        )
                    image_format = image.format
                    # Only formats that can move (GIF, PNG, WebP, ...) have the count.
                    # A HEIF file's pictures are a collection (a burst, a depth map's
                    # companions), not frames: its primary picture is read.
                    frames = int(getattr(image, "n_frames", 1)) if image_format != "HEIF" else 1
                    # A phone's photo is often stored sideways, with an EXIF tag that
                    # says how to turn it; read as stored, its text was read sideways.
                    upright = ImageOps.exif_transpose(image)
                    width, height = upright.size
                    upright.convert("RGB").save(workspace / IMAGE_FILE, "JPEG", quality=92)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ApplicationError(
                f"probe: the image at {input.url} is too large to decode safely ({exc})",
                type=ErrorKind.MEDIA_TOO_LARGE,
                non_retryable=True,
            ) from None
        except (UnidentifiedImageError, OSError) as exc:
            raise ApplicationError(
                f"probe: {input.url} is not a readable image ({exc.__class__.__name__})",
                type=ErrorKind.CORRUPT_MEDIA,
                non_retryable=True,
            ) from None
        else:
            animation_file, notes = None, []
            if frames > 1:
                kind = (image_format or "image").lower()
                if ffmpeg_decodes_frames(raw):
                    animation_file = f"{ANIMATION_STEM}.{kind}"
                    raw.rename(workspace / animation_file)
                else:
                    try:
                        transcode_animation(raw, workspace / TRANSCODED_ANIMATION)
                        animation_file = TRANSCODED_ANIMATION
                    except (OSError, ValueError, EOFError, av.error.FFmpegError) as exc:  # type: ignore[attr-defined]
                        reraise_if_cancelled(exc)
                        (workspace / TRANSCODED_ANIMATION).unlink(missing_ok=True)
                        notes.append(
                            f"the {kind} image is animated ({frames} frames), but its frames "
                            f"could not be turned into video ({exc.__class__.__name__}: "
                            f"{exc}): only the first frame was read"
                        )
        finally:
            raw.unlink(missing_ok=True)
        log().info(
            "image.fetched",
            url=input.url,
            width=width,
            height=height,
            bytes=size,
            frames=frames,
            animated=animation_file is not None,
        )
        return FetchImageResult(
            image_file=IMAGE_FILE,
            metadata=MediaMetadata(
                width=width,
                height=height,
                size_bytes=size,
                video_codec=(image_format or "").lower() or None,
            ),
            animation_file=animation_file,
            notes=notes,
        )


def ffmpeg_decodes_frames(path: Path) -> bool:
    """Whether FFmpeg (PyAV) decodes more than one frame of ``path``: GIF and APNG, yes;
    WebP, no (PyAV 18.1's FFmpeg 8.1 decodes WebP stills only: ``transcode_animation``)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return False
            return sum(1 for _ in zip(range(2), container.decode(video=0), strict=False)) == 2
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):  # type: ignore[attr-defined]
        return False


def transcode_animation(image_path: Path, out: Path) -> None:
    """Every frame of an animated image that Pillow reads and FFmpeg does not (animated
    WebP) into ``out``, for the video stages: H.264 4:4:4 (x264's fastest preset, CRF
    18, close enough to lossless for OCR) in Matroska, each frame shown for as long as
    the image shows it, the stream's rate their average. Reads the file twice (the
    first time for the frame times). Side effects: writes ``out``; reports progress in
    frames. Raises what Pillow or PyAV raise for frames they cannot read or write."""
    with Image.open(image_path) as image:
        durations = []
        for frame in ImageSequence.Iterator(image):
            frame.load()  # WebP sets a frame's duration as it decodes it
            durations.append(max(1, int(frame.info.get("duration") or DEFAULT_FRAME_MS)))
    rate = Fraction(len(durations) * 1000, sum(durations)).limit_denominator(1001)
    with Image.open(image_path) as image, av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = image.size
        stream.pix_fmt = "yuv444p"
        stream.time_base = Fraction(1, 1000)
        stream.options = {"preset": "ultrafast", "crf": "18"}
        shown_ms = 0
        for number, (frame, duration) in enumerate(
            zip(ImageSequence.Iterator(image), durations, strict=False)
        ):
            picture = av.VideoFrame.from_image(frame.convert("RGB")).reformat(format="yuv444p")
            picture.pts, picture.time_base = shown_ms, Fraction(1, 1000)
            shown_ms += duration
            container.mux(stream.encode(picture))
            if number % FRAMES_PER_REPORT == 0:
                report(
                    ActivityProgress(
                        stage=Stage.DOWNLOAD, done=number, total=len(durations), unit="frames"
                    )
                )
        container.mux(stream.encode(None))
