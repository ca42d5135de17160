"""SSRF: blocked destinations fail with UrlNotAllowed before any connection, including
after redirects, and an allowed-network setting opens exactly what it names."""

from __future__ import annotations

import socket
import urllib.parse
import uuid
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.download import DownloadActivities, FetchPolicy
from activities.images import ImageActivities
from activities.netguard import UrlNotAllowedError, address_blocked, guard
from activities.resolve import ResolveActivities
from activities.workspace import Workspaces
from models.pipeline import DownloadInput, FetchImageInput, ResolveInput, WorkspaceRef
from tests.activities.conftest import RecordingEnvironment
from tests.conftest import SAMPLE_NAME, FlakyMediaHandler

BLOCKED = [
    "127.0.0.1",
    "127.1.2.3",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fd00::1",
    "fc00::1",
    "fe80::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "2002:7f00:1::1",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1"]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_blocked(address: str) -> None:
    assert address_blocked(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert not address_blocked(address)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "127.1",
        "::1",
        "::ffff:127.0.0.1",
        "169.254.169.254",
        "0",
    ],
)
def test_loopback_in_its_many_spellings_is_refused_at_resolution(host: str) -> None:
    with guard(allow_private=False), pytest.raises(UrlNotAllowedError):
        socket.getaddrinfo(host, 80)


def test_the_guard_is_off_outside_fetches_and_when_allowed() -> None:
    assert socket.getaddrinfo("127.0.0.1", 80)
    with guard(allow_private=True):
        assert socket.getaddrinfo("127.0.0.1", 80)
    with guard(allow_private=False, allowed_networks=["127.0.0.1/32"]):
        assert socket.getaddrinfo("127.0.0.1", 80)
        with pytest.raises(UrlNotAllowedError):
            socket.getaddrinfo("127.0.0.2", 80)


def policy(**extra: object) -> FetchPolicy:
    return FetchPolicy(socket_timeout_s=5, allow_private=False, **extra)  # type: ignore[arg-type]


def never_requested(marker: str) -> bool:
    """No server was asked for /<marker>/… (a redirect that names it does not count)."""
    return not any(path.startswith(f"/{marker}/") for path in FlakyMediaHandler.requested)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433"])
def test_resolve_refuses_loopback_without_touching_the_server(media_url: str, host: str) -> None:
    marker = uuid.uuid4().hex
    port = media_url.rsplit(":", 1)[1]
    url = f"http://{host}:{port}/{marker}/{SAMPLE_NAME}"
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(ResolveActivities(policy()).resolve_link, ResolveInput(url=url))
    assert info.value.type == "UrlNotAllowed" and info.value.non_retryable
    assert "not a public address" in info.value.message
    assert never_requested(marker)


def test_metadata_address_is_refused_fast() -> None:
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(
            ResolveActivities(policy()).resolve_link,
            ResolveInput(url="http://169.254.169.254/latest/meta-data/"),
        )
    assert info.value.type == "UrlNotAllowed"


def test_redirect_to_a_blocked_host_is_caught_at_the_hop(
    media_url: str, second_host_url: str, tmp_path: Path
) -> None:
    """127.0.0.1 is allowed by setting; it redirects to 127.0.0.2, which is not."""
    marker = uuid.uuid4().hex
    target = f"{second_host_url}/{marker}/{SAMPLE_NAME}"
    url = f"{media_url}/redirect/{urllib.parse.quote(target, safe='')}"
    allowed = policy(allowed_networks=("127.0.0.1/32",))
    workspaces = Workspaces(tmp_path / "ws")
    ref = WorkspaceRef(job_id="job-ssrf", item_index=0)
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(
            DownloadActivities(workspaces, tmp_path, allowed).download_media,
            DownloadInput(workspace=ref, url=url),
        )
    assert info.value.type == "UrlNotAllowed", info.value
    with pytest.raises(ApplicationError) as image_info:
        RecordingEnvironment().run(
            ImageActivities(workspaces, allowed, 10**8).fetch_image,
            FetchImageInput(workspace=ref, url=url),
        )
    assert image_info.value.type == "UrlNotAllowed", image_info.value
    assert never_requested(marker)

    # The same redirect to an allowed address goes through.
    ok = f"{media_url}/redirect/{urllib.parse.quote(f'{media_url}/{SAMPLE_NAME}', safe='')}"
    result = RecordingEnvironment().run(
        DownloadActivities(workspaces, tmp_path, allowed).download_media,
        DownloadInput(workspace=WorkspaceRef(job_id="job-ssrf", item_index=1), url=ok),
    )
    assert result.size_bytes > 10_000


def test_a_stream_yt_dlp_would_hand_to_ffmpeg_is_refused_before_any_fetch_of_it(
    media_dir: Path, media_url: str, second_host_url: str, tmp_path: Path
) -> None:
    """An HLS playlist on an allowed host whose key (SAMPLE-AES, which yt-dlp's own
    downloader does not read) is on a blocked one. yt-dlp hands such a playlist to
    FFmpeg whatever its settings say, and FFmpeg fetched the key from the blocked host,
    out of the guard's sight; now the download stops where FFmpeg would start."""
    marker = uuid.uuid4().hex
    playlist = (media_dir / "hls" / "stream_0.m3u8").read_text()
    key = f'#EXT-X-KEY:METHOD=SAMPLE-AES,URI="{second_host_url}/{marker}/key"'
    keyed = playlist.replace("#EXT-X-MAP:", f"{key}\n#EXT-X-MAP:", 1)
    assert key in keyed, "the playlist has no #EXT-X-MAP line to put the key before"
    (media_dir / "hls" / f"{marker}.m3u8").write_text(keyed)
    allowed = policy(allowed_networks=("127.0.0.1/32",))
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(
            DownloadActivities(Workspaces(tmp_path / "ws"), tmp_path, allowed).download_media,
            DownloadInput(
                workspace=WorkspaceRef(job_id="job-hls", item_index=0),
                url=f"{media_url}/hls/{marker}.m3u8",
            ),
        )
    assert info.value.type == "UnsupportedUrl" and info.value.non_retryable, info.value
    assert "only FFmpeg could fetch" in info.value.message
    assert never_requested(marker)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.mp4"])
def test_only_http_and_https(url: str, tmp_path: Path) -> None:
    ref = WorkspaceRef(job_id="job-ssrf", item_index=0)
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(
            DownloadActivities(Workspaces(tmp_path), tmp_path, policy()).download_media,
            DownloadInput(workspace=ref, url=url),
        )
    assert info.value.type == "UrlNotAllowed"
