"""Read the facts of a downloaded file with PyAV, and prove it decodes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.progress import log, reraise_if_cancelled
from activities.workspace import Workspaces
from models.errors import ErrorKind
from models.jobs import MediaMetadata
from models.pipeline import ProbeInput, ProbeResult


def too_large(message: str) -> ApplicationError:
    return ApplicationError(message, type=ErrorKind.MEDIA_TOO_LARGE, non_retryable=True)


def corrupt(message: str) -> ApplicationError:
    return ApplicationError(message, type=ErrorKind.CORRUPT_MEDIA, non_retryable=True)


def moving_picture(container: av.container.InputContainer) -> tuple[av.VideoStream | None, bool]:
    """The video stream to read, if any, and whether the file holds a cover picture.

    An audio file's cover art (an MP3's or M4A's, a podcast's) is a video stream of one
    picture, flagged as attached: it is no video, and FFmpeg gives it a rate of 90000
    frames a second. Containers list such pictures after their tracks (MP4 cannot do
    otherwise), so the first video stream, which the scene pass reads, is the video.
    """
    streams = list(container.streams.video)
    moving = [s for s in streams if not s.disposition & av.stream.Disposition.attached_pic]
    return (moving[0] if moving else None), len(moving) < len(streams)


def speech_track(container: av.container.InputContainer) -> av.AudioStream | None:
    """The audio track to transcribe: the first one marked default, the one a player
    plays, else the first. A second track (another language, a commentary) is often
    marked so; a silent first track left unmarked once gave "no speech"."""
    tracks = list(container.streams.audio)
    marked = [t for t in tracks if t.disposition & av.stream.Disposition.default]
    chosen = marked or tracks
    return chosen[0] if chosen else None


#: Sample aspect ratios beyond these are taken for a broken header, not a picture meant
#: to be shown four times wider or narrower than it is stored.
SANE_SAMPLE_ASPECT = (Fraction(1, 4), Fraction(4))


#: The most frames a second a stream's average rate is believed at. High-speed phone
#: video is stored at 240; FFmpeg's DV demuxer gives its time base (60000) instead.
MAX_PLAUSIBLE_FPS = 1000.0


def frame_rate(video: av.VideoStream) -> float | None:
    """A video stream's frames a second: its average rate, unless that is implausible,
    then the rate FFmpeg guesses from its first frames' times, which the scene pass
    goes by (PySceneDetect's ``guessed_rate``). A DV camcorder file's average rate is
    60000, its guessed rate 25: at 60000 fps a 2-minute DV clip was refused as too
    large to decode. Where both are implausible the higher is kept, so that the decode
    budget still weighs a file that has that many frames."""
    rates = [float(rate) for rate in (video.average_rate, video.guessed_rate) if rate and rate > 0]
    plausible = [rate for rate in rates if rate <= MAX_PLAUSIBLE_FPS]
    if plausible:
        return plausible[0]
    return max(rates) if rates else None


#: Packets read from the start of a file to learn whether it is encrypted.
ENCRYPTION_PACKETS = 16


def encrypted(path: Path) -> bool:
    """Whether the file's first packets carry encryption info: an MP4 under DRM (Common
    Encryption). Without the key FFmpeg cannot decode its video, and decodes its sound
    to noise: an encrypted podcast was transcribed as "no speech was detected".
    Reads ``ENCRYPTION_PACKETS`` packets, decoding none."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            for count, packet in enumerate(container.demux()):
                if count >= ENCRYPTION_PACKETS:
                    break
                if packet.has_sidedata("encryption_info"):
                    return True
    except av.error.FFmpegError:  # type: ignore[attr-defined]
        pass  # damaged: the probe says so
    return False


#: The longest title taken from a file's tags; a longer one is cut, with an ellipsis.
TAG_TITLE_CHARS = 200


def tagged_title(container: av.container.InputContainer) -> str | None:
    """The title a file's own tags give it: an MP3's ID3 title, an MP4's or MOV's name,
    a Matroska or WebM segment's title; in Ogg, whose comments belong to a stream, its
    first audio stream's. Runs of white space and control characters become one space;
    None where there is no such tag, or it is blank.

    A Matroska track's title is not read: it names the track ("English", "Commentary")."""
    tags = {key.lower(): value for key, value in container.metadata.items()}
    title = tags.get("title")
    if not title and container.format.name == "ogg" and container.streams.audio:
        stream_tags = container.streams.audio[0].metadata
        title = {key.lower(): value for key, value in stream_tags.items()}.get("title")
    words = "".join(c if c.isprintable() else " " for c in title or "").split()
    tidy = " ".join(words)
    if len(tidy) > TAG_TITLE_CHARS:
        tidy = tidy[: TAG_TITLE_CHARS - 1].rstrip() + "…"
    return tidy or None


def displayed_width(width: int, sample_aspect: Fraction | None) -> int:
    """The width a player shows a frame stored ``width`` pixels wide at, given the
    stream's sample (pixel) aspect ratio: a DVD's 720x480 with 32:27 shows 853 wide, as
    16:9. Players keep the height and scale the width; so does this. An unknown (None or
    0:1) or implausible ratio leaves the width as stored."""
    low, high = SANE_SAMPLE_ASPECT
    if not sample_aspect or not low <= sample_aspect <= high:
        return width
    return max(1, round(width * sample_aspect))


@dataclass(frozen=True)
class MediaLimits:
    max_duration_s: float = 4 * 3600
    max_dimension_px: int = 8192
    max_decode_pixels: float = 2e12


#: The most time spent reading a file's packets for a length its header does not give
#: (a 60 s 720p MP4 took 48 ms, about 10 µs a packet: 4 hours at 30 fps about 11 s).
PACKET_SCAN_S = 30.0


def _duration_from_packets(path: Path, enough_s: float) -> float | None:
    """Seconds from the first packet's time to the last one's end, read from the
    packets (no decoding); reading stops once that passes ``enough_s``, and the result
    is then only a lower bound. None where no packet has a time, or the packets take
    longer than ``PACKET_SCAN_S`` to read."""
    first = last = None
    deadline = time.monotonic() + PACKET_SCAN_S
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            for count, packet in enumerate(container.demux()):
                if count % 1000 == 0 and time.monotonic() > deadline:
                    return None
                if first is not None and last is not None and last - first > enough_s:
                    break
                if packet.pts is None or packet.time_base is None:
                    continue
                start = float(packet.pts * packet.time_base)
                end = start + float((packet.duration or 0) * packet.time_base)
                first = start if first is None else min(first, start)
                last = end if last is None else max(last, end)
    except av.error.FFmpegError:  # type: ignore[attr-defined]
        pass  # damaged further on: as far as it reads
    return last - first if first is not None and last is not None and last > first else None


class ProbeActivities:
    def __init__(self, workspaces: Workspaces, limits: MediaLimits | None = None) -> None:
        self._workspaces = workspaces
        self._limits = limits or MediaLimits()

    @activity.defn(name="probe_media")
    def probe_media(self, input: ProbeInput) -> ProbeResult:
        """Duration, frame rate, size, codecs and streams. Decodes the first video frame,
        because a container can list a stream it cannot deliver."""
        path = self._workspaces.file(input.workspace, input.media_file)
        size = path.stat().st_size
        if size == 0:
            raise corrupt("probe: the downloaded file is empty (0 bytes); check the link")
        if encrypted(path):
            raise corrupt(
                "probe: the media is encrypted (DRM): without its key its pictures and "
                "sound do not decode; send a copy without DRM"
            )
        try:
            container = av.open(str(path), metadata_errors="ignore")
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            reraise_if_cancelled(exc)
            raise corrupt(
                f"probe: the file is not playable media ({exc.__class__.__name__}); "
                "check that the link points to a video"
            ) from None
        with container:
            video, cover = moving_picture(container)
            audio = speech_track(container)
            tracks = len(container.streams.audio)
            if video is None and audio is None:
                raise corrupt(
                    "probe: the file holds no audio or video stream"
                    + (", only a cover picture" if cover else "")
                )
            duration = container.duration / av.time_base if container.duration else None
            fps = None
            frame_count = None
            width = height = None
            if video is not None:
                fps = frame_rate(video)
                width, height = video.codec_context.width, video.codec_context.height
                if duration is None and video.duration and video.time_base:
                    duration = float(video.duration * video.time_base)
            declared = duration is not None
            if duration is None:
                # A browser's recording (MediaRecorder's WebM), a live capture: the
                # header never got the length, and the limits below would not apply.
                duration = _duration_from_packets(path, self._limits.max_duration_s)
            if video is not None:
                frame_count = video.frames or (round(duration * fps) if duration and fps else None)
                self._check_budget(width, height, fps, duration)
                try:
                    first = next(container.decode(video=0), None)
                except av.error.FFmpegError as exc:
                    raise corrupt(f"probe: the video stream does not decode ({exc})") from None
                if first is None:
                    raise corrupt("probe: the video stream holds no decodable frame")
                # The metadata gives the picture as a player shows it, as key frames
                # are written: widened by the pixels' aspect ratio, turned upright.
                if width and height:
                    ratio = video.sample_aspect_ratio
                    shown = displayed_width(width, Fraction(ratio) if ratio else None)
                    turned = int(first.rotation) % 180
                    width, height = (height, shown) if turned else (shown, height)
            if duration and duration > self._limits.max_duration_s:
                # Read from packets, the length is known only as far as past the limit.
                lasts = f"{duration:.0f} s, over" if declared else "more than"
                raise ApplicationError(
                    f"probe: the media lasts {lasts} the "
                    f"{self._limits.max_duration_s:.0f} s limit; send a shorter clip",
                    type=ErrorKind.MEDIA_TOO_LONG,
                    non_retryable=True,
                )
            title = input.title
            if input.title_is_file_name or not title:
                # A podcast's or an exported video's own title says more than its name.
                title = tagged_title(container) or title
            metadata = MediaMetadata(
                title=title,
                duration_s=round(duration, 3) if duration else None,
                width=width,
                height=height,
                fps=round(fps, 3) if fps else None,
                has_audio=audio is not None,
                # The codec's own name ("av1"), not the decoder FFmpeg picked ("libdav1d").
                video_codec=video.codec_context.codec.canonical_name if video else None,
                audio_codec=audio.codec_context.codec.canonical_name if audio else None,
                size_bytes=size,
            )
        log().info(
            "probe.done",
            cover_picture=cover,
            audio_tracks=tracks,
            **metadata.model_dump(exclude={"title"}),
        )
        return ProbeResult(
            metadata=metadata,
            has_video=video is not None,
            frame_count=frame_count,
            cover_picture=cover,
            audio_tracks=tracks,
        )

    def _check_budget(
        self, width: int | None, height: int | None, fps: float | None, duration: float | None
    ) -> None:
        """Refuse frames too large to decode safely, before decoding any."""
        limits = self._limits
        if not width or not height:
            raise corrupt("probe: the video stream declares no frame size")
        if width > limits.max_dimension_px or height > limits.max_dimension_px:
            raise too_large(
                f"probe: frames of {width}x{height} pixels are over the "
                f"{limits.max_dimension_px} px limit; send a smaller video"
            )
        if fps and duration:
            cost = width * height * fps * duration
            if cost > limits.max_decode_pixels:
                raise too_large(
                    f"probe: {width}x{height} at {fps:.0f} fps for {duration:.0f} s is "
                    f"{cost:.2g} pixels to decode, over the {limits.max_decode_pixels:.2g} "
                    "budget; send a shorter or smaller video"
                )
