from __future__ import annotations

from pathlib import Path

import av
import pytest
from temporalio.exceptions import ApplicationError

from activities.download import FetchPolicy
from activities.images import IMAGE_FILE, RAW_FILE, TRANSCODED_ANIMATION, ImageActivities
from activities.workspace import Workspaces
from models.pipeline import FetchImageInput, FetchImageResult, WorkspaceRef
from tests.activities.conftest import RecordingEnvironment
from tests.conftest import SAMPLE_NAME


def fetch(workspaces: Workspaces, ref: WorkspaceRef, url: str) -> FetchImageResult:
    policy = FetchPolicy(socket_timeout_s=10, allow_private=True)
    return RecordingEnvironment().run(
        ImageActivities(workspaces, policy, 10**8).fetch_image,
        FetchImageInput(workspace=ref, url=url),
    )


def test_a_still_is_kept_as_a_jpeg_for_ocr(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str
) -> None:
    result = fetch(workspaces, ref, f"{media_url}/caption.jpg")
    assert result.image_file == IMAGE_FILE and result.animation_file is None
    assert result.notes == []
    assert sorted(p.name for p in workspaces.file(ref, ".").iterdir()) == [IMAGE_FILE]


def test_an_animated_gif_is_kept_as_fetched_for_the_video_stages(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str
) -> None:
    result = fetch(workspaces, ref, f"{media_url}/animated.gif")
    assert result.animation_file == "animation.gif"
    assert result.metadata.video_codec == "gif" and result.notes == []
    kept = workspaces.file(ref, result.animation_file)
    assert kept.read_bytes()[:6] == b"GIF89a"
    assert not workspaces.file(ref, RAW_FILE).exists()


def test_an_animated_webp_becomes_video_for_the_video_stages(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str
) -> None:
    """PyAV 18.1's FFmpeg (8.1) decodes WebP stills only, so its frames are written as
    H.264, each at its own time: 60 frames of 0.1 s."""
    result = fetch(workspaces, ref, f"{media_url}/animated.webp")
    assert result.animation_file == TRANSCODED_ANIMATION and result.notes == []
    assert result.metadata.video_codec == "webp"
    with av.open(str(workspaces.file(ref, TRANSCODED_ANIMATION))) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 10
        frames = list(container.decode(stream))
    assert len(frames) == 60 and frames[-1].time == pytest.approx(5.9)
    assert not workspaces.file(ref, RAW_FILE).exists()


def test_an_animation_whose_frames_cannot_be_read_is_read_from_its_first_frame(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where turning the frames into video fails (here, as if the disk were full), the
    item goes on as a still, says so, and leaves no half-written file."""
    import activities.images as images

    def fails(image_path: Path, out: Path) -> None:
        out.write_bytes(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr(images, "transcode_animation", fails)
    result = fetch(workspaces, ref, f"{media_url}/animated.webp")
    assert result.animation_file is None
    (note,) = result.notes
    assert "webp image is animated (60 frames)" in note and "only the first frame" in note
    assert "No space left on device" in note
    assert sorted(p.name for p in workspaces.file(ref, ".").iterdir()) == [IMAGE_FILE]


def test_an_image_server_that_stops_sending_is_named(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str
) -> None:
    policy = FetchPolicy(socket_timeout_s=1, allow_private=True)
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(
            ImageActivities(workspaces, policy, 10**8).fetch_image,
            FetchImageInput(workspace=ref, url=f"{media_url}/stall/caption.jpg"),
        )
    # One read per try here: the activity's retries are the ones left.
    assert info.value.type == "DownloadFailed" and not info.value.non_retryable
    assert "stopped sending" in info.value.message, info.value.message
    assert "no data came for 1 s" in info.value.message


def test_an_image_over_the_size_limit_names_the_limit_and_its_setting(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str
) -> None:
    policy = FetchPolicy(socket_timeout_s=10, allow_private=True, max_bytes=200_000)
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(
            ImageActivities(workspaces, policy, 10**8).fetch_image,
            FetchImageInput(workspace=ref, url=f"{media_url}/{SAMPLE_NAME}"),
        )
    assert info.value.type == "MediaTooLarge"
    message = info.value.message
    assert "larger than the 200,000 bytes limit (REELSCOPE_MAX_DOWNLOAD_BYTES)" in message
