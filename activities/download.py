"""Download one media link with yt-dlp into the item's workspace."""

from __future__ import annotations

import functools
import logging
import re
import shutil
import socket
import ssl
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import imageio_ffmpeg
from temporalio import activity
from temporalio.exceptions import ApplicationError
from yt_dlp import YoutubeDL
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.postprocessor import PostProcessor
from yt_dlp.utils import ExtractorError, UnsupportedError, YoutubeDLError, replace_extension

from activities.netguard import check_scheme, find_not_allowed, guard, not_allowed
from activities.progress import KeepAlive, cancellation_wins, log, reraise_if_cancelled
from activities.workspace import Workspaces, disk_full, disk_full_cause
from models.errors import ErrorKind
from models.jobs import Stage
from models.pipeline import ActivityProgress, DownloadInput, DownloadResult, size_in_words

#: Output name stem. Files are named by the server, never from titles.
MEDIA_STEM = "media"


class _TooLarge(Exception):
    """Raised from the progress hook to stop a download that passed the size cap."""


class _OverQuota(Exception):
    """Raised from the progress hook when the job's workspaces pass their disk quota."""


class _NoRoom(Exception):
    """Raised from the progress hook when the size a server declares for a download
    will not fit in the space left on the worker's disk."""

    def __init__(self, size: int, free: int) -> None:
        super().__init__(size, free)
        self.size = size
        self.free = free


#: Disk left free beside a download whose size is declared: the rest of the item's
#: work writes there too (key frames, the transcript), and so do other items'.
ROOM_AFTER_DOWNLOAD_BYTES = 64 * 2**20


class _NeedsFfmpeg(Exception):
    """Raised where yt-dlp would hand a download to FFmpeg (``native_downloads_only``)."""

    def __init__(self, live: bool) -> None:
        super().__init__("yt-dlp would fetch this stream with FFmpeg")
        self.live = live


#: What a file is saved as where yt-dlp would refuse its extension (yt-dlp's own name
#: for a direct link it cannot type).
NEUTRAL_EXTENSION = "unknown_video"


class NeutralExtension(PostProcessor):  # type: ignore[misc]
    """Saves a file whose extension yt-dlp refuses as ``media.unknown_video``.

    yt-dlp refuses to write files with extensions outside its list (a guard against a
    site naming a download ``.exe`` or ``.desktop``), and so failed camcorder files it
    was linked to straight: AVCHD's ``.mts``, DV's ``.dv``. Every file here is named by
    the worker (``media.<ext>``) in an item's own folder and read by FFmpeg, which goes
    by its content; only the extension changes. Runs before yt-dlp names the file."""

    def run(self, info: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        ext = info.get("ext")
        if ext:
            try:
                replace_extension(MEDIA_STEM, ext)
            except Exception:  # yt-dlp's _UnsafeExtensionError, a private class
                log().info("download.extension_replaced", ext=ext, saved_as=NEUTRAL_EXTENSION)
                info = {**info, "ext": NEUTRAL_EXTENSION}
        return [], info


class _QuietLogger:
    """Sends yt-dlp's messages to our log instead of stderr."""

    def __init__(self) -> None:
        self._log = logging.getLogger("reelscope.yt_dlp")

    def debug(self, msg: str) -> None:
        self._log.debug(msg)

    def info(self, msg: str) -> None:
        self._log.debug(msg)

    def warning(self, msg: str) -> None:
        self._log.info(msg)

    def error(self, msg: str) -> None:
        self._log.info(msg)


@functools.cache
def _default_extractors() -> tuple[type[Any], ...]:
    """yt-dlp's default extractors, in its order: every enabled class, named by its
    lower-cased ``IE_NAME``, a later class of the same name taking the earlier one's
    place, as ``YoutubeDL.add_default_info_extractors`` picks them."""
    from yt_dlp.extractor import gen_extractor_classes

    by_name = {ie.IE_NAME.lower(): ie for ie in gen_extractor_classes()}
    return tuple(ie for ie in by_name.values() if ie._ENABLED)


_thread_state = threading.local()


def _per_thread(make: Callable[..., ssl.SSLContext]) -> Callable[..., ssl.SSLContext]:
    @functools.wraps(make)
    def tls_context_of_this_thread(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        contexts: dict[Any, ssl.SSLContext] = _thread_state.__dict__.setdefault("tls", {})
        key = (args, tuple(sorted(kwargs.items())))
        if key not in contexts:
            contexts[key] = make(*args, **kwargs)
        return contexts[key]

    tls_context_of_this_thread.reelscope_per_thread = True  # type: ignore[attr-defined]
    return tls_context_of_this_thread


def reuse_tls_contexts() -> None:
    """yt-dlp builds a TLS context for each ``YoutubeDL`` that opens a connection,
    loading the CA bundle into it each time: about 20 ms of CPU, twice per video before
    its stages start (resolve, then download). From here on each thread builds one per
    set of TLS options and reuses it for its later downloads, so a change to the CA
    bundle on disk takes effect when the worker restarts. urllib3 amends a context as
    it connects, so contexts are never shared between threads. Idempotent."""
    from yt_dlp.networking import common

    make = getattr(common, "make_ssl_context", None)
    if make is None:  # a yt-dlp that builds contexts elsewhere: leave it be
        logging.getLogger("reelscope.download").info("yt-dlp has no make_ssl_context")
        return
    if not getattr(make, "reelscope_per_thread", False):
        common.make_ssl_context = _per_thread(make)


def _refuse_ffmpeg_download(self: Any, filename: str, info_dict: dict[str, Any]) -> bool:
    raise _NeedsFfmpeg(live=bool(info_dict.get("is_live")))


def native_downloads_only() -> None:
    """Stop yt-dlp from handing a download to FFmpeg, in this process.

    yt-dlp does so whatever ``external_downloader`` says for a live stream, and for HLS
    that its own downloader cannot read (a key method such as SAMPLE-AES). FFmpeg then
    opens connections of its own, which the address guard of ``activities.netguard``
    never sees, and which no size cap counts: a playlist on an allowed host whose key
    URL named a blocked address had FFmpeg fetch it four times (a retryable failure,
    tried again), and a live stream would never end. FFmpeg still merges the formats
    yt-dlp fetched itself: that is a post-processor, not this downloader."""
    from yt_dlp.downloader.external import FFmpegFD

    if FFmpegFD.real_download is not _refuse_ffmpeg_download:
        FFmpegFD.real_download = _refuse_ffmpeg_download


def new_downloader(options: dict[str, Any]) -> YoutubeDL:
    """A fresh ``YoutubeDL`` (its own cookies, caches and connections) with yt-dlp's
    default extractors. yt-dlp works that list out again for every instance, in a
    de-duplication that is quadratic in its ~1,800 names: about 40 ms of CPU per
    instance, twice per video (resolve and download), before the video's stages start.
    The list is worked out once per process instead, and TLS contexts once per thread
    (``reuse_tls_contexts``). Downloads never go through FFmpeg
    (``native_downloads_only``)."""
    reuse_tls_contexts()
    native_downloads_only()
    ydl = YoutubeDL(options, auto_init=False)
    for extractor in _default_extractors():
        ydl.add_info_extractor(extractor)
    return ydl


#: A link to no real site (``.invalid`` is reserved) for the warm-up to test.
_WARM_UP_URL = "https://warm-up.invalid/media"


def warm_downloader() -> None:
    """Do now what a worker's first link would otherwise wait for (about 0.5 s): yt-dlp
    compiles each extractor's URL pattern the first time it tests a link against it,
    and a direct link or an unknown site is tested against all of them, then handed
    to the generic extractor, whose module loads on first use. No network."""
    for extractor in _default_extractors():
        extractor.suitable(_WARM_UP_URL)
    import yt_dlp.extractor.generic  # noqa: F401


#: Longest an ffmpeg run started by yt-dlp (merging formats) may take.
FFMPEG_TIMEOUT_S = 1800


def ffmpeg_dir(data_dir: Path, timeout_s: int = FFMPEG_TIMEOUT_S) -> Path:
    """A folder holding ``ffmpeg`` for yt-dlp's merger: imageio-ffmpeg's static binary,
    run under coreutils ``timeout`` so a stuck merge cannot hold a worker thread
    forever. Side effect: writes the wrapper script."""
    folder = data_dir.resolve() / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "ffmpeg"
    script = (
        "#!/bin/sh\n# Written by Reelscope: yt-dlp's ffmpeg, with a time limit.\n"
        f'exec timeout --kill-after=10 {timeout_s} "{imageio_ffmpeg.get_ffmpeg_exe()}" "$@"\n'
    )
    if wrapper.is_symlink() or not wrapper.exists() or wrapper.read_text() != script:
        wrapper.unlink(missing_ok=True)
        wrapper.write_text(script)
        wrapper.chmod(0o755)
    return folder


def _causes(exc: BaseException) -> list[BaseException]:
    """The chain of causes yt-dlp wraps around the real error."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        nxt: BaseException | None = None
        exc_info = getattr(current, "exc_info", None)
        if (
            isinstance(exc_info, tuple)
            and len(exc_info) > 1
            and isinstance(exc_info[1], BaseException)
        ):
            nxt = exc_info[1]
        current = nxt or current.__cause__ or current.__context__
    return seen


#: The prefix of yt-dlp's downloader's messages.
_DOWNLOADER_PREFIX = re.compile(r"^\[download\]\s*(Got error:\s*)?")
#: How yt-dlp reports a body shorter than its Content-Length (its ContentTooShortError,
#: whose type is lost by the time the download gives up).
_CUT_OFF = re.compile(r"(\d+) bytes read, (\d+) more expected")
#: How yt-dlp's downloader ends once its own retries (``retries``) are spent.
_GAVE_UP = re.compile(r"Giving up after (\d+) retries")


def _timed_out(causes: list[BaseException]) -> bool:
    """Whether a socket read or connect ran past its time limit. By the time yt-dlp's
    downloader gives up, only its message says so ("Read timed out.")."""
    return any(
        isinstance(c, TimeoutError | httpx.TimeoutException) or "timed out" in str(c).lower()
        for c in causes
    )


def classify_download_error(
    url: str,
    exc: BaseException,
    stage: str = "download",
    timeout_s: float | None = None,
    folder: Path | None = None,
) -> ApplicationError:
    """Turn a yt-dlp failure into a typed error a user can act on. The most specific
    cause anywhere in the chain decides (a DNS failure arrives inside a TransportError).
    ``timeout_s``: the socket time limit the fetch ran under, named if it ran out;
    ``folder``: where the worker keeps its files, named if its disk filled up."""
    causes = _causes(exc)
    blocked = find_not_allowed(exc)
    if blocked is not None:
        return not_allowed(url, blocked, stage)

    def find(kind: type[BaseException]) -> Any:
        return next((c for c in causes if isinstance(c, kind)), None)

    if (no_room := find(_NoRoom)) is not None:
        return ApplicationError(
            f"{stage}: {url} is {size_in_words(no_room.size)}, more than the worker's disk "
            f"has free ({size_in_words(no_room.free)}{f' at {folder}' if folder else ''}, "
            f"{size_in_words(ROOM_AFTER_DOWNLOAD_BYTES)} of it kept for the stages); free "
            "space there or give the worker a larger disk (REELSCOPE_DATA_DIR), then send "
            "the link again",
            type=ErrorKind.DISK_FULL,
        )
    if any(disk_full_cause(c) is not None for c in causes):
        return disk_full(stage, folder)
    if (ffmpeg := find(_NeedsFfmpeg)) is not None:
        return ApplicationError(
            f"{stage}: {url} is a live stream; Reelscope reads recordings, so send the "
            "link again once the stream has ended"
            if ffmpeg.live
            else f"{stage}: {url} is a stream that only FFmpeg could fetch (an HLS "
            "encryption or feature yt-dlp's own downloader does not read). Reelscope "
            "fetches with yt-dlp's own downloader only, so that every connection passes "
            "its address checks and size limit: link the video file, or a page of a "
            "site yt-dlp supports",
            type=ErrorKind.UNSUPPORTED_URL,
            non_retryable=True,
        )
    if (too_large := find(_TooLarge)) is not None:
        return ApplicationError(
            f"{stage}: {url} is larger than the {size_in_words(too_large.args[0])} limit "
            "(REELSCOPE_MAX_DOWNLOAD_BYTES); send a shorter or lower-resolution file",
            type=ErrorKind.MEDIA_TOO_LARGE,
            non_retryable=True,
        )
    if (quota := find(_OverQuota)) is not None:
        return ApplicationError(
            f"{stage}: the job's downloads passed its {size_in_words(quota.args[0])} disk "
            f"quota (REELSCOPE_JOB_DISK_QUOTA_BYTES) at {url}; send fewer or smaller files "
            "per job",
            type=ErrorKind.DISK_QUOTA_EXCEEDED,
            non_retryable=True,
        )
    if (http_error := find(HTTPError)) is not None:
        if http_error.redirect_loop:
            return _redirect_loop(url, stage)
        return _http_error(url, http_error.status, stage)
    if find(httpx.TooManyRedirects) is not None:
        return _redirect_loop(url, stage)
    if find(socket.gaierror) is not None:
        return ApplicationError(
            f"{stage}: the host name {urlsplit(url).hostname!r} does not resolve; check the link",
            type=ErrorKind.DOWNLOAD_FAILED,
            non_retryable=True,
        )
    if find(ConnectionRefusedError) is not None:
        return ApplicationError(
            f"{stage}: nothing accepts connections at {urlsplit(url).netloc} "
            "(connection refused); check that the server is up",
            type=ErrorKind.DOWNLOAD_FAILED,
        )
    if find(UnsupportedError) is not None:
        return ApplicationError(
            f"{stage}: no video found at {url}; link a video file or a page of a supported site",
            type=ErrorKind.UNSUPPORTED_URL,
            non_retryable=True,
        )
    # yt-dlp's downloader prefixes its own messages: "\r[download] Got error: ...".
    message = _DOWNLOADER_PREFIX.sub("", str(exc).removeprefix("ERROR: ").strip())
    if _timed_out(causes):
        host = urlsplit(url).netloc
        limit = f" for {timeout_s:g} s" if timeout_s else " in time"
        if (gave_up := _GAVE_UP.search(message)) is not None:
            # yt-dlp tried again itself, each time waiting out the limit: more tries
            # from here would keep the user waiting minutes for the same answer.
            return ApplicationError(
                f"{stage}: {host} stopped sending {url}: no data came{limit}, "
                f"{int(gave_up.group(1)) + 1} times in a row; try again later, or check "
                "that the server is up",
                type=ErrorKind.DOWNLOAD_FAILED,
                non_retryable=True,
            )
        return ApplicationError(
            f"{stage}: {host} did not answer, or stopped sending, {url}: no data came"
            f"{limit} (retried); try again later, or check that the server is up",
            type=ErrorKind.DOWNLOAD_FAILED,
        )
    if (transport := find(TransportError)) is not None:
        return ApplicationError(
            f"{stage}: network error fetching {url}: {transport}",
            type=ErrorKind.DOWNLOAD_FAILED,
        )
    if (cut := _CUT_OFF.search(message)) is not None:
        got, missing = (int(n) for n in cut.groups())
        return ApplicationError(
            f"{stage}: {urlsplit(url).netloc} ended the download of {url} early, after "
            f"{got:,} of its {got + missing:,} bytes, on every try; try again later, or "
            "check that the server sends whole files",
            type=ErrorKind.DOWNLOAD_FAILED,
        )
    if "Did not get any data blocks" in message:
        return ApplicationError(
            f"{stage}: {url} answered with an empty file (0 bytes); check the link",
            type=ErrorKind.CORRUPT_MEDIA,
            non_retryable=True,
        )
    retryable = not isinstance(exc, ExtractorError) and "Unsupported URL" not in message
    return ApplicationError(
        f"{stage}: could not fetch {url}: {message}",
        type=ErrorKind.DOWNLOAD_FAILED,
        non_retryable=not retryable,
    )


def _redirect_loop(url: str, stage: str) -> ApplicationError:
    return ApplicationError(
        f"{stage}: {url} redirects in a loop, or through too many hops to follow; check "
        "the link, or link where it should lead",
        type=ErrorKind.DOWNLOAD_FAILED,
        non_retryable=True,
    )


def _http_error(url: str, status: int, stage: str = "download") -> ApplicationError:
    if status in (404, 410):
        return ApplicationError(
            f"{stage}: the server answered {status} for {url}; check that the link "
            "is correct and still online",
            type=ErrorKind.NOT_FOUND,
            non_retryable=True,
        )
    if status in (401, 403):
        return ApplicationError(
            f"{stage}: the server refused access ({status}) to {url}; the media may "
            "be private or need a login",
            type=ErrorKind.DOWNLOAD_FAILED,
            non_retryable=True,
        )
    if status == 429 or status >= 500:
        return ApplicationError(
            f"{stage}: the server answered {status} for {url} (retried); try again later",
            type=ErrorKind.DOWNLOAD_FAILED,
        )
    return ApplicationError(
        f"{stage}: the server answered {status} for {url}",
        type=ErrorKind.DOWNLOAD_FAILED,
        non_retryable=True,
    )


@dataclass(frozen=True)
class FetchPolicy:
    """What any fetch may do; built from ``Settings`` by the worker."""

    max_bytes: int = 2 * 1024**3
    socket_timeout_s: float = 30.0
    allow_private: bool = False
    allowed_networks: tuple[str, ...] = ()
    max_duration_s: float = 4 * 3600
    job_disk_quota_bytes: int = 4 * 1024**3

    def guard(self) -> AbstractContextManager[None]:
        return guard(self.allow_private, self.allowed_networks)


def too_long(url: str, duration: float, limit: float, stage: str) -> ApplicationError:
    return ApplicationError(
        f"{stage}: {url} lasts {duration:.0f} s, over the {limit:.0f} s limit; send a shorter clip",
        type=ErrorKind.MEDIA_TOO_LONG,
        non_retryable=True,
    )


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


class DownloadActivities:
    def __init__(self, workspaces: Workspaces, data_dir: Path, policy: FetchPolicy) -> None:
        self._workspaces = workspaces
        self._ffmpeg_dir = ffmpeg_dir(data_dir)
        self._policy = policy

    @activity.defn(name="download_media")
    def download_media(self, input: DownloadInput) -> DownloadResult:
        """See ``_download_media``; a cancel always ends it as a cancellation."""
        with cancellation_wins(), KeepAlive() as keep_alive:
            return self._download_media(input, keep_alive)

    def _download_media(self, input: DownloadInput, keep_alive: KeepAlive) -> DownloadResult:
        """Fetch ``input.url`` (network) into the item's workspace as ``media.<ext>``.

        A retry continues a partial download: yt-dlp keeps its ``.part`` file. Progress
        is heartbeated by ``keep_alive`` while a read waits on a slow server: the
        heartbeat timeout is for a worker that is gone, and a server that stops sending
        runs out yt-dlp's socket time limit instead, which says so."""
        check_scheme(input.url, "download")
        workspace = self._workspaces.create(input.workspace)
        policy = self._policy
        max_bytes = policy.max_bytes
        # Other items of the same job count against the job's disk quota.
        job_dir = workspace.parent
        others = _folder_bytes(job_dir) - _folder_bytes(workspace)

        # The declared size last weighed against the disk's free space.
        weighed: int | None = None

        def on_progress(status: dict[str, Any]) -> None:
            nonlocal weighed
            done = int(status.get("downloaded_bytes") or 0)
            total = status.get("total_bytes") or status.get("total_bytes_estimate")
            if done > max_bytes or (total and total > max_bytes):
                raise _TooLarge(max_bytes)
            if others + done > policy.job_disk_quota_bytes:
                raise _OverQuota(policy.job_disk_quota_bytes)
            # A declared size (not an estimate) that cannot fit stops the download at
            # its first block, before it fills the disk under other items' stages.
            declared = status.get("total_bytes")
            if declared and declared != weighed:
                weighed = declared
                free = shutil.disk_usage(workspace).free
                if declared - done + ROOM_AFTER_DOWNLOAD_BYTES > free:
                    raise _NoRoom(int(declared), free)
            keep_alive.report(
                ActivityProgress(
                    stage=Stage.DOWNLOAD,
                    fraction=min(done / total, 1.0) if total else 0.0,
                    done=done,
                    total=int(total) if total else None,
                    unit="bytes",
                )
            )

        options: dict[str, Any] = {
            "outtmpl": {"default": str(workspace / f"{MEDIA_STEM}.%(ext)s")},
            "format": "bv*+ba/b",
            "merge_output_format": "mp4",
            "ffmpeg_location": str(self._ffmpeg_dir),
            "noplaylist": True,
            "logger": _QuietLogger(),
            "progress_hooks": [on_progress],
            "socket_timeout": policy.socket_timeout_s,
            # Native downloaders only: an external one (ffmpeg) would open connections
            # this process's guard cannot see.
            "external_downloader": {"default": "native"},
            "hls_prefer_native": True,
            "retries": 2,
            "fragment_retries": 2,
            "max_filesize": max_bytes,
            "noprogress": True,
            "quiet": True,
            "no_warnings": True,
            "cachedir": False,
            "continuedl": True,
        }
        keep_alive.report(ActivityProgress(stage=Stage.DOWNLOAD, unit="bytes"))
        try:
            with policy.guard(), new_downloader(options) as ydl:
                ydl.add_post_processor(NeutralExtension(), when="video")
                info = ydl.extract_info(input.url, download=False)
                if (info or {}).get("is_live"):
                    raise _NeedsFfmpeg(live=True)
                duration = (info or {}).get("duration")
                if duration and duration > policy.max_duration_s:
                    raise too_long(input.url, duration, policy.max_duration_s, "download")
                info = ydl.process_ie_result(info, download=True) if info else None
        except (YoutubeDLError, OSError, _TooLarge, _OverQuota, _NoRoom, _NeedsFfmpeg) as exc:
            # Hook exceptions (size cap, quota) arrive bare or wrapped, by yt-dlp version;
            # a file that cannot be written, as yt-dlp's UnavailableVideoError.
            reraise_if_cancelled(exc)
            raise classify_download_error(
                input.url, exc, timeout_s=policy.socket_timeout_s, folder=self._workspaces.root
            ) from None
        if info is None:
            raise ApplicationError(
                f"download: nothing to download at {input.url}",
                type=ErrorKind.UNSUPPORTED_URL,
                non_retryable=True,
            )
        media = _downloaded_file(info, workspace)
        if media is None:
            # yt-dlp skips, without an error, files whose declared size is over max_filesize.
            raise ApplicationError(
                f"download: {input.url} was not saved; it is probably larger than the "
                f"{size_in_words(max_bytes)} limit (REELSCOPE_MAX_DOWNLOAD_BYTES)",
                type=ErrorKind.MEDIA_TOO_LARGE,
                non_retryable=True,
            )
        size = media.stat().st_size
        log().info("download.done", url=input.url, bytes=size, extractor=info.get("extractor"))
        return DownloadResult(
            media_file=media.name,
            title=info.get("title"),
            extractor=info.get("extractor_key") or info.get("extractor"),
            size_bytes=size,
        )


def _downloaded_file(info: dict[str, Any], workspace: Path) -> Path | None:
    for download in info.get("requested_downloads") or []:
        path = download.get("filepath")
        if path and Path(path).is_file():
            return Path(path)
    candidates = [
        p
        for p in workspace.glob(f"{MEDIA_STEM}.*")
        if p.is_file() and not p.name.endswith((".part", ".ytdl"))
    ]
    return candidates[0] if candidates else None
