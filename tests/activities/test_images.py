from __future__ import annotations

from activities.download import FetchPolicy
from activities.images import IMAGE_FILE, RAW_FILE, ImageActivities
from activities.workspace import Workspaces
from models.pipeline import FetchImageInput, FetchImageResult, WorkspaceRef
from tests.activities.conftest import RecordingEnvironment


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


def test_an_animation_ffmpeg_cannot_decode_is_read_from_its_first_frame_and_says_so(
    workspaces: Workspaces, ref: WorkspaceRef, media_url: str
) -> None:
    """PyAV 18.1's FFmpeg (8.1) decodes WebP stills only."""
    result = fetch(workspaces, ref, f"{media_url}/animated.webp")
    assert result.animation_file is None
    (note,) = result.notes
    assert "webp image is animated (60 frames)" in note and "only the first frame" in note
    assert sorted(p.name for p in workspaces.file(ref, ".").iterdir()) == [IMAGE_FILE]
