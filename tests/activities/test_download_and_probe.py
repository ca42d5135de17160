from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import DownloadError, UnsupportedError

from activities import progress
from activities.download import (
    NEUTRAL_EXTENSION,
    DownloadActivities,
    FetchPolicy,
    classify_download_error,
    new_downloader,
    size_in_words,
)
from activities.probe import TAG_TITLE_CHARS, MediaLimits, ProbeActivities
from activities.resolve import ResolveActivities
from activities.workspace import Workspaces
from models.pipeline import (
    ActivityProgress,
    DownloadInput,
    ProbeInput,
    ResolveInput,
    WorkspaceRef,
)
from tests.activities.conftest import RecordingEnvironment
from tests.conftest import (
    SAMPLE_NAME,
    STALL_S,
    VAST_BYTES,
    make_audio_with_cover,
    make_browser_recording,
    make_dv,
    make_second_audio_track,
    run_ffmpeg,
)


def downloader(workspaces: Workspaces, tmp_path: Path, max_bytes: int = 10**9):
    policy = FetchPolicy(max_bytes=max_bytes, socket_timeout_s=10, allow_private=True)
    return DownloadActivities(workspaces, tmp_path / "data", policy).download_media


def test_download_writes_media_and_heartbeats_bytes(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str, media_dir: Path, tmp_path: Path
) -> None:
    env = RecordingEnvironment()
    result = env.run(
        downloader(workspaces, tmp_path),
        DownloadInput(workspace=ref, url=f"{media_url}/{SAMPLE_NAME}"),
    )
    assert result.media_file == "media.mp4"  # named by us, never from the title
    saved = workspaces.file(ref, result.media_file)
    assert saved.read_bytes() == (media_dir / SAMPLE_NAME).read_bytes()
    byte_beats = [b for b in env.heartbeats if b.unit == "bytes" and b.done]
    assert byte_beats and byte_beats[-1].done == result.size_bytes
    assert byte_beats[-1].fraction == 1.0


def test_new_downloader_has_yt_dlps_own_extractors_in_its_order() -> None:
    """The list worked out once per process is the one yt-dlp builds for each instance,
    so a post is matched by the same extractor, the generic one last."""
    from yt_dlp import YoutubeDL

    with (
        YoutubeDL({"quiet": True}) as stock,
        new_downloader({"quiet": True}) as ours,
        new_downloader({"quiet": True}) as another,
    ):
        assert list(ours._ies.items()) == list(stock._ies.items())
        assert list(ours._ies)[-1] == "Generic"
        # Each instance is its own: no cookies shared between jobs.
        assert ours.cookiejar is not another.cookiejar


def test_downloaders_of_one_thread_share_a_tls_context_and_threads_do_not() -> None:
    """The CA bundle is loaded once per thread and TLS options, not per instance."""
    import threading

    from yt_dlp.networking._requests import RequestsRH

    def contexts() -> list[object]:
        found = []
        for _ in range(2):
            with new_downloader({"quiet": True}) as ydl:
                handler = ydl._request_director.handlers[RequestsRH.RH_KEY]
                found.append(handler._make_sslcontext())
        return found

    first, second = contexts()
    assert first is second
    with new_downloader({"quiet": True, "nocheckcertificate": True}) as ydl:
        handler = ydl._request_director.handlers[RequestsRH.RH_KEY]
        assert handler._make_sslcontext() is not first  # other options, another context
    elsewhere: list[object] = []
    thread = threading.Thread(target=lambda: elsewhere.extend(contexts()))
    thread.start()
    thread.join()
    assert elsewhere[0] is elsewhere[1]
    assert elsewhere[0] is not first


def test_warm_downloader_compiles_every_url_pattern_a_first_link_would() -> None:
    """In a fresh interpreter, as a worker starts: nothing is compiled before, every
    default extractor's pattern and the generic extractor are ready after."""
    script = """
import json, sys
from activities.download import _default_extractors, warm_downloader
def compiled():
    return sum("_VALID_URL_RE" in ie.__dict__ for ie in _default_extractors())
with_pattern = sum(bool(ie._VALID_URL) for ie in _default_extractors())
before = [compiled(), "yt_dlp.extractor.generic" in sys.modules]
warm_downloader()
print(json.dumps([before, [compiled(), "yt_dlp.extractor.generic" in sys.modules], with_pattern]))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()[-1]
    before, after, with_pattern = json.loads(out)
    assert before == [0, False]
    assert with_pattern > 1000
    assert after == [with_pattern, True]


def test_a_file_whose_extension_yt_dlp_refuses_is_saved_under_a_neutral_one(
    workspaces: Workspaces, ref: WorkspaceRef, tmp_path: Path, media_dir: Path, media_url: str
) -> None:
    """A camcorder's DV file, served as ``video/dv``: yt-dlp refused to write a ".dv"
    file ("the extracted extension is unusual and will be skipped for safety reasons"),
    and the download failed. The worker names the file; FFmpeg reads it by content."""
    result = RecordingEnvironment().run(
        downloader(workspaces, tmp_path),
        DownloadInput(workspace=ref, url=f"{media_url}/camcorder.dv"),
    )
    assert result.media_file == f"media.{NEUTRAL_EXTENSION}"
    saved = workspaces.file(ref, result.media_file)
    assert saved.read_bytes() == (media_dir / "camcorder.dv").read_bytes()
    probe = RecordingEnvironment().run(
        ProbeActivities(workspaces).probe_media,
        ProbeInput(workspace=ref, media_file=result.media_file),
    )
    assert probe.has_video and probe.metadata.video_codec == "dvvideo"


def test_download_404_is_a_final_not_found(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str, tmp_path: Path
) -> None:
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(
            downloader(workspaces, tmp_path),
            DownloadInput(workspace=ref, url=f"{media_url}/nope.mp4"),
        )
    assert info.value.type == "NotFound" and info.value.non_retryable


def test_download_over_the_size_cap_stops_while_streaming(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str, tmp_path: Path
) -> None:
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(
            downloader(workspaces, tmp_path, max_bytes=50_000),
            DownloadInput(workspace=ref, url=f"{media_url}/{SAMPLE_NAME}"),
        )
    assert info.value.type == "MediaTooLarge" and info.value.non_retryable


def test_a_download_the_server_cuts_off_says_so_and_is_retried(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str, media_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(
            downloader(workspaces, tmp_path),
            DownloadInput(workspace=ref, url=f"{media_url}/cut/{SAMPLE_NAME}"),
        )
    size = (media_dir / SAMPLE_NAME).stat().st_size
    assert info.value.type == "DownloadFailed" and not info.value.non_retryable
    assert f"after {size // 2:,} of its {size:,} bytes" in info.value.message
    # yt-dlp's own prefixes and carriage returns stay out of the message.
    assert "[download]" not in info.value.message and "\r" not in info.value.message


def test_a_server_that_stops_sending_is_named_and_heartbeats_go_on_meanwhile(
    workspaces: Workspaces,
    ref: WorkspaceRef,
    media_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that sends a quarter of the file and then nothing: the error says so
    once yt-dlp's own tries ran out, and the activity heartbeats while each read waits
    (without, the heartbeat timeout ended it as 'the worker may have stopped'), saying
    how long no data has come, across yt-dlp's tries."""
    beats: list[tuple[float, ActivityProgress]] = []
    env = RecordingEnvironment()
    env.on_heartbeat = lambda *d: beats.append(
        (time.monotonic(), ActivityProgress.model_validate(d[0]))
    )
    monkeypatch.setattr(progress, "WAITING_AFTER_SECONDS", 1.5)
    policy = FetchPolicy(socket_timeout_s=3, allow_private=True)
    download = DownloadActivities(workspaces, tmp_path / "data", policy).download_media
    started = time.monotonic()
    with pytest.raises(ApplicationError) as info:
        env.run(download, DownloadInput(workspace=ref, url=f"{media_url}/stall/{SAMPLE_NAME}"))
    took = time.monotonic() - started
    assert info.value.type == "DownloadFailed" and info.value.non_retryable
    assert "stopped sending" in info.value.message, info.value.message
    assert "no data came for 3 s, 3 times in a row" in info.value.message
    assert took < STALL_S, "each read gives up after the socket time limit"
    # Bytes came first; then, through three reads that each waited 3 s for more, the
    # heartbeats went on about every second (yt-dlp's own hook runs once a try).
    assert max(beat.done for _, beat in beats) > 0
    times = [at for at, _ in beats]
    assert times[-1] - times[0] > 6.0
    assert max(b - a for a, b in itertools.pairwise(times)) < 2.0, times
    # Each try waited 3 s for more; the status said how long, from 1.5 s on.
    waits = [beat for _, beat in beats if beat.waiting_s]
    assert waits and max(beat.waiting_s or 0 for beat in waits) >= 2, beats
    # Each try got as far as the last (the same quarter of the file), and stood there.
    assert len({beat.done for beat in waits}) == 1 and waits[-1].done > 0
    assert waits[-1].describe() == (
        f"{waits[-1].done:,} bytes of 258,773 bytes; no progress for {waits[-1].waiting_s} s"
    )


@pytest.mark.parametrize("stage", ["download", "resolve"])
def test_a_redirect_loop_is_named(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str, tmp_path: Path, stage: str
) -> None:
    loop = f"{media_url}/loop/clip.mp4"
    with pytest.raises(ApplicationError) as info:
        if stage == "download":
            RecordingEnvironment().run(
                downloader(workspaces, tmp_path), DownloadInput(workspace=ref, url=loop)
            )
        else:
            policy = FetchPolicy(socket_timeout_s=10, allow_private=True)
            RecordingEnvironment().run(
                ResolveActivities(policy).resolve_link, ResolveInput(url=loop)
            )
    assert info.value.type == "DownloadFailed" and info.value.non_retryable
    assert info.value.message.startswith(f"{stage}: ")
    assert "redirects in a loop" in info.value.message, info.value.message


@pytest.mark.parametrize(
    ("count", "words"),
    [
        (3 * 1024**5, "3 PiB"),
        (int(1.2 * 1024**4), "1.2 TiB"),
        (2 * 1024**3, "2 GiB"),
        (1536 * 1024**2, "1.5 GiB"),
        (300 * 1024**2, "300 MiB"),
        (4096, "4,096 bytes"),
    ],
)
def test_sizes_in_messages_read_as_a_person_writes_them(count: int, words: str) -> None:
    assert size_in_words(count) == words


def _wrapped(cause: BaseException) -> DownloadError:
    return DownloadError(f"ERROR: {cause}", exc_info=(type(cause), cause, None))


@pytest.mark.parametrize(
    ("cause", "kind", "final"),
    [
        (UnsupportedError("http://x"), "UnsupportedUrl", True),
        (RuntimeError("connection reset"), "DownloadFailed", False),
    ],
)
def test_classify_download_errors(cause: BaseException, kind: str, final: bool) -> None:
    error = classify_download_error("http://x", _wrapped(cause))
    assert (error.type, error.non_retryable) == (kind, final)


def test_yt_dlp_never_downloads_through_ffmpeg_and_a_live_stream_is_named() -> None:
    """yt-dlp picks FFmpeg for live streams whatever its settings say; the refusal
    (tested on a real playlist in test_netguard) says which case a link was."""
    from yt_dlp.downloader.external import FFmpegFD

    ydl = new_downloader({"quiet": True})
    with pytest.raises(Exception) as info:
        FFmpegFD(ydl, ydl.params).real_download("media.mp4", {"is_live": True, "url": "x"})
    error = classify_download_error("https://example.com/live", _wrapped(info.value))
    assert (error.type, error.non_retryable) == ("UnsupportedUrl", True)
    assert "is a live stream" in error.message and "once the stream has ended" in error.message


def test_classify_http_statuses() -> None:
    class FakeResponse:
        def __init__(self, status: int) -> None:
            self.status, self.reason, self.headers, self.url = status, "", {}, "http://x"

        def close(self) -> None:
            pass

    for status, kind, final in [
        (404, "NotFound", True),
        (403, "DownloadFailed", True),
        (503, "DownloadFailed", False),
        (429, "DownloadFailed", False),
    ]:
        error = classify_download_error("http://x", _wrapped(HTTPError(FakeResponse(status))))  # type: ignore[arg-type]
        assert (error.type, error.non_retryable) == (kind, final), status


def test_probe_reads_the_facts(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str
) -> None:
    result = RecordingEnvironment().run(
        ProbeActivities(workspaces).probe_media,
        ProbeInput(workspace=ref, media_file=sample_in_workspace, title="t"),
    )
    meta = result.metadata
    assert result.has_video and result.frame_count == 480
    assert (meta.width, meta.height, meta.fps, meta.duration_s) == (854, 480, 30.0, 16.0)
    assert meta.has_audio and meta.audio_codec == "aac" and meta.title == "t"


def test_probe_names_the_codec_not_the_decoder(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str
) -> None:
    """AV1 is decoded by dav1d ("libdav1d"), Opus by FFmpeg's own decoder; the metadata
    names the codecs."""
    import imageio_ffmpeg

    source = workspaces.file(ref, sample_in_workspace)
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(source), "-t", "1",
            "-c:v", "libsvtav1", "-preset", "12", "-c:a", "libopus",
            str(workspaces.file(ref, "av1.webm")),
        ],
        check=True,
        env={**os.environ, "SVT_LOG": "1"},
    )  # fmt: skip
    meta = (
        RecordingEnvironment()
        .run(
            ProbeActivities(workspaces).probe_media,
            ProbeInput(workspace=ref, media_file="av1.webm"),
        )
        .metadata
    )
    assert (meta.video_codec, meta.audio_codec) == ("av1", "opus")


LONG_TITLE = "A title\nover two lines, " + "and on " * 40


@pytest.mark.parametrize(
    ("name", "tags", "title"),
    [
        ("tagged.mp4", ["-metadata", "title=Review – part 2"], "Review – part 2"),
        ("tagged.mkv", ["-metadata", "title=Interview"], "Interview"),
        # Ogg keeps its comments with the stream they describe.
        ("tagged.ogg", ["-vn", "-c:a", "libopus", "-metadata", "title=A talk"], "A talk"),
        # A Matroska track's title names the track, not the media.
        ("track-named.mkv", ["-metadata:s:a:0", "title=English"], "media"),
        ("untagged.mp4", [], "media"),
        ("blank.mp4", ["-metadata", "title=   "], "media"),
        ("long.mp4", ["-metadata", f"title={LONG_TITLE}"], None),
    ],
)
def test_a_files_own_title_tag_names_it_where_its_link_gave_only_its_name(
    workspaces: Workspaces,
    ref: WorkspaceRef,
    sample_in_workspace: str,
    name: str,
    tags: list[str],
    title: str | None,
) -> None:
    source = workspaces.file(ref, sample_in_workspace)
    run_ffmpeg("-i", str(source), "-c:v", "copy", *tags, str(workspaces.file(ref, name)))
    probe = ProbeActivities(workspaces).probe_media
    named = RecordingEnvironment().run(
        probe, ProbeInput(workspace=ref, media_file=name, title="media", title_is_file_name=True)
    )
    if title is not None:
        assert named.metadata.title == title
    else:  # one line, cut with an ellipsis
        got = named.metadata.title or ""
        assert got.startswith("A title over two lines, and on and on")
        assert len(got) <= TAG_TITLE_CHARS and got.endswith("on…") and "\n" not in got
    # A title the link's page gave is kept.
    paged = RecordingEnvironment().run(
        probe, ProbeInput(workspace=ref, media_file=name, title="A post (2)")
    )
    assert paged.metadata.title == "A post (2)"


def test_a_dv_files_frame_rate_is_its_frames_not_its_time_base(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str
) -> None:
    """FFmpeg gives a DV file's average rate as 60000 (its time base): at that rate a
    2-minute camcorder clip was refused as too large to decode. A budget that 25 fps
    passes and 60000 fps would not shows which rate the probe went by."""
    make_dv(workspaces.file(ref, sample_in_workspace), workspaces.file(ref, "tape.dv"))
    limits = MediaLimits(max_decode_pixels=720 * 576 * 25 * 2 * 10)
    result = RecordingEnvironment().run(
        ProbeActivities(workspaces, limits).probe_media,
        ProbeInput(workspace=ref, media_file="tape.dv"),
    )
    meta = result.metadata
    assert (meta.fps, meta.duration_s, result.frame_count) == (25.0, 2.0, 50)


@pytest.mark.parametrize("name", ["cover.mp3", "cover.m4a", "thumbnail-after.mp4"])
def test_probe_reads_a_cover_picture_as_no_video(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, name: str
) -> None:
    """Cover art is a video stream of one attached picture: an audio file with one is
    audio only; a video with one after it (a thumbnail) is read by its video."""
    source = workspaces.file(ref, sample_in_workspace)
    make_audio_with_cover(source, workspaces.file(ref, name))
    result = RecordingEnvironment().run(
        ProbeActivities(workspaces).probe_media, ProbeInput(workspace=ref, media_file=name)
    )
    meta = result.metadata
    assert result.cover_picture and meta.has_audio
    if name.endswith(".mp4"):
        assert result.has_video and (meta.width, meta.fps, meta.video_codec) == (854, 30.0, "h264")
    else:
        assert not result.has_video and (meta.width, meta.fps, meta.video_codec) == (None,) * 3


def test_probe_counts_the_audio_tracks(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str
) -> None:
    make_second_audio_track(
        workspaces.file(ref, sample_in_workspace), workspaces.file(ref, "two.mkv")
    )
    probe = ProbeActivities(workspaces).probe_media
    env = RecordingEnvironment()
    assert env.run(probe, ProbeInput(workspace=ref, media_file="two.mkv")).audio_tracks == 2
    single = env.run(probe, ProbeInput(workspace=ref, media_file=sample_in_workspace))
    assert single.audio_tracks == 1


def test_probe_reads_the_length_a_browser_recording_leaves_out(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str
) -> None:
    """A browser's recording (MediaRecorder's WebM; FFmpeg's live WebM here) has no
    length in its header. The probe reads it from the packets, and the length limit
    holds for it: before, such a file had no duration and passed any limit."""
    import av

    recorded = workspaces.file(ref, "recorded.webm")
    make_browser_recording(workspaces.file(ref, sample_in_workspace), recorded)
    with av.open(str(recorded)) as container:
        assert container.duration is None
    env = RecordingEnvironment()
    probed = env.run(
        ProbeActivities(workspaces).probe_media,
        ProbeInput(workspace=ref, media_file="recorded.webm"),
    )
    assert probed.metadata.duration_s == pytest.approx(16.0, abs=0.1)
    assert probed.frame_count == pytest.approx(480, abs=3)
    with pytest.raises(ApplicationError) as info:
        env.run(
            ProbeActivities(workspaces, MediaLimits(max_duration_s=10)).probe_media,
            ProbeInput(workspace=ref, media_file="recorded.webm"),
        )
    assert info.value.type == "MediaTooLong"
    assert "lasts more than the 10 s limit" in info.value.message


@pytest.mark.parametrize("content", [b"", b"<html>hello</html>", b"\x00\x00\x00\x18ftypmp42" * 3])
def test_probe_rejects_what_is_not_media(
    workspaces: Workspaces, ref: WorkspaceRef, content: bytes
) -> None:
    workspaces.create(ref)
    workspaces.file(ref, "media.mp4").write_bytes(content)
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(
            ProbeActivities(workspaces).probe_media,
            ProbeInput(workspace=ref, media_file="media.mp4"),
        )
    assert info.value.type == "CorruptMedia" and info.value.non_retryable


def test_workspace_paths_stay_inside(workspaces: Workspaces, ref: WorkspaceRef) -> None:
    with pytest.raises(ApplicationError):
        workspaces.file(ref, "../../escape.txt")
    with pytest.raises(ApplicationError):
        workspaces.path(WorkspaceRef(job_id="../etc", item_index=0))
    workspaces.create(ref)
    assert workspaces.remove(ref) and not workspaces.path(ref).parent.exists()


def test_classify_network_failures() -> None:
    import socket

    # As yt-dlp wraps it: DownloadError -> TransportError -> ... -> gaierror.
    transport = TransportError("Failed to resolve")
    transport.__cause__ = socket.gaierror(-2, "Name or service not known")
    dns = classify_download_error("http://nohost.invalid/a", _wrapped(transport))
    assert (dns.type, dns.non_retryable) == ("DownloadFailed", True)
    assert "'nohost.invalid' does not resolve" in dns.message
    refused = classify_download_error("http://h:9/a", _wrapped(ConnectionRefusedError(111, "r")))
    assert (refused.type, refused.non_retryable) == ("DownloadFailed", False)
    assert "h:9" in refused.message


def test_job_disk_quota_stops_the_download(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str, tmp_path: Path
) -> None:
    # Another item of the same job already holds 90 kB of a 100 kB quota.
    sibling = workspaces.create(WorkspaceRef(job_id=ref.job_id, item_index=1))
    (sibling / "media.mp4").write_bytes(b"\0" * 90_000)
    policy = FetchPolicy(socket_timeout_s=10, allow_private=True, job_disk_quota_bytes=100_000)
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(
            DownloadActivities(workspaces, tmp_path / "data", policy).download_media,
            DownloadInput(workspace=ref, url=f"{media_url}/{SAMPLE_NAME}"),
        )
    assert info.value.type == "DiskQuotaExceeded" and info.value.non_retryable


def test_ffmpeg_for_yt_dlp_runs_under_a_time_limit(tmp_path: Path) -> None:
    import subprocess

    from activities.download import ffmpeg_dir

    wrapper = ffmpeg_dir(tmp_path, timeout_s=1) / "ffmpeg"
    assert "timeout --kill-after=10 1 " in wrapper.read_text()
    version = subprocess.run([str(wrapper), "-version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and "ffmpeg version" in version.stdout
    # A run longer than the limit is stopped (exit 124 from timeout).
    stuck = subprocess.run(
        [
            str(wrapper),
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "anullsrc",
            "-t",
            "30",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        timeout=30,
    )
    assert stuck.returncode == 124


def test_size_cap_is_enforced_by_our_stream_check_too(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str, tmp_path: Path, monkeypatch
) -> None:
    """Without yt-dlp's own max_filesize check, the progress hook still stops it."""
    import yt_dlp

    original = yt_dlp.YoutubeDL.__init__

    def without_max_filesize(self, params=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        params = dict(params or {})
        params.pop("max_filesize", None)
        original(self, params, *args, **kwargs)

    monkeypatch.setattr(yt_dlp.YoutubeDL, "__init__", without_max_filesize)
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(
            downloader(workspaces, tmp_path, max_bytes=50_000),
            DownloadInput(workspace=ref, url=f"{media_url}/{SAMPLE_NAME}"),
        )
    assert info.value.type == "MediaTooLarge"


def test_a_download_that_fills_the_disk_says_it_is_the_workers_disk(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str, tmp_path: Path
) -> None:
    """yt-dlp writes into ``media.mp4.part``; here that is the kernel's ``/dev/full``,
    where every write fails as on a full disk. Not the link's fault, and retried."""
    (workspaces.create(ref) / "media.mp4.part").symlink_to("/dev/full")
    with pytest.raises(ApplicationError) as failed:
        RecordingEnvironment().run(
            downloader(workspaces, tmp_path),
            DownloadInput(workspace=ref, url=f"{media_url}/{SAMPLE_NAME}"),
        )
    assert failed.value.type == "DiskFull"
    assert not failed.value.non_retryable
    message = failed.value.message
    assert message.startswith("download: the worker's disk is full (")
    assert f"free at {workspaces.root})" in message
    assert "REELSCOPE_DATA_DIR" in message


def test_a_download_declared_larger_than_the_free_disk_stops_at_once(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str, tmp_path: Path
) -> None:
    """A server declares a pebibyte: the download stops at its first block, before it
    fills the disk that other items' stages write to, and says how much is free."""
    policy = FetchPolicy(
        max_bytes=VAST_BYTES * 2,
        job_disk_quota_bytes=VAST_BYTES * 2,
        socket_timeout_s=10,
        allow_private=True,
    )
    download = DownloadActivities(workspaces, tmp_path / "data", policy).download_media
    with pytest.raises(ApplicationError) as failed:
        RecordingEnvironment().run(
            download, DownloadInput(workspace=ref, url=f"{media_url}/vast/{SAMPLE_NAME}")
        )
    assert failed.value.type == "DiskFull"
    assert not failed.value.non_retryable
    message = failed.value.message
    said = f"/vast/{SAMPLE_NAME} is 1 PiB, more than the worker's disk has free ("
    assert said in message, message
    assert f" at {workspaces.root}, 64 MiB of it kept for the stages)" in message
    assert "REELSCOPE_DATA_DIR" in message


@pytest.mark.parametrize("name", ["drm.mp4", "drm.m4a"])
def test_encrypted_media_is_said_to_be_encrypted(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, name: str
) -> None:
    """An MP4 under Common Encryption (DRM). Its video failed as "does not decode
    (Invalid data found when processing input)", and its sound alone decoded to noise:
    the item succeeded with "no speech was detected"."""
    source = workspaces.file(ref, sample_in_workspace)
    video = [] if name.endswith(".mp4") else ["-vn"]
    run_ffmpeg(
        "-i", str(source), *video, "-c", "copy", "-encryption_scheme", "cenc-aes-ctr",
        "-encryption_key", "76a6c65c5ea762046bd749a2e632ccbb",
        "-encryption_kid", "a7e61c373e219033c21091fa607bf3b8", str(workspaces.file(ref, name)),
    )  # fmt: skip
    with pytest.raises(ApplicationError) as caught:
        RecordingEnvironment().run(
            ProbeActivities(workspaces).probe_media, ProbeInput(workspace=ref, media_file=name)
        )
    assert caught.value.type == "CorruptMedia" and caught.value.non_retryable
    assert "encrypted (DRM)" in caught.value.message
