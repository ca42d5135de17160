from __future__ import annotations

import errno
import gc
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import av
import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode
from scenedetect.detector import SceneDetector
from scenedetect.video_stream import VideoOpenFailure
from temporalio.testing import ActivityEnvironment

import activities.scenes as scenes_module
from activities.frames import grey_sharpness
from activities.probe import ProbeActivities
from activities.scenes import (
    DECODE_AHEAD_FRAMES,
    AdaptiveCutDetector,
    ContentCutDetector,
    DecodeAhead,
    KeyframeCollector,
    Picture,
    PlanarStream,
    SceneActivities,
    decode_threads,
    min_scene_frames,
    orientation,
    scaled_plane,
    shown_upright,
    spans_from_cuts,
    split_frame,
)
from activities.workspace import Workspaces
from models.jobs import Stage
from models.pipeline import ActivityProgress, DetectScenesInput, ProbeInput, WorkspaceRef
from reelscope.sample import SampleSpec
from tests.activities.conftest import RecordingEnvironment
from tests.conftest import (
    SAMPLE_NAME,
    SUBTITLE_SECONDS,
    SUBTITLES,
    make_browser_recording,
    run_ffmpeg,
)


def test_spans_from_cuts() -> None:
    spans = spans_from_cuts([30, 0, 30, 60, 90], total_frames=90, fps=30.0)
    assert [(s.start_frame, s.end_frame) for s in spans] == [(0, 30), (30, 60), (60, 90)]
    assert spans[1].start_s == 1.0 and spans[1].end_s == 2.0
    assert [(s.start_frame, s.end_frame) for s in spans_from_cuts([], 10, 25.0)] == [(0, 10)]


def test_detect_scenes_heartbeats_frames_and_finds_the_cuts(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, sample_spec: SampleSpec
) -> None:
    env = RecordingEnvironment()
    result = env.run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file=sample_in_workspace),
    )
    cuts = [s.start_frame for s in result.scenes[1:]]
    assert all(abs(a - b) <= 1 for a, b in zip(cuts, sample_spec.cut_frames, strict=True))
    assert result.scenes[-1].end_frame == sample_spec.total_frames
    beats = [b for b in env.heartbeats if b.stage == Stage.SCENES]
    assert len(beats) >= 2, "one heartbeat per 10 s chunk"
    assert [b.done for b in beats] == sorted(b.done for b in beats)
    assert beats[-1].fraction == 1.0 and beats[-1].total == sample_spec.total_frames
    assert beats[-1].resume["cuts"] == cuts


def test_a_stream_of_no_stated_length_shows_progress_by_the_probed_one(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, sample_spec: SampleSpec
) -> None:
    """A browser's WebM recording (FFmpeg's live WebM here) states no length: the pass
    counts its progress against the length the probe read from its packets."""
    source = workspaces.file(ref, sample_in_workspace)
    make_browser_recording(source, workspaces.file(ref, "r.webm"))
    seconds = sample_spec.total_frames / sample_spec.fps
    for duration_s, total in [(None, None), (seconds, sample_spec.total_frames)]:
        env = RecordingEnvironment()
        result = env.run(
            SceneActivities(workspaces, 27.0, 15).detect_scenes,
            DetectScenesInput(workspace=ref, media_file="r.webm", duration_s=duration_s),
        )
        assert len(result.scenes) == len(sample_spec.cut_frames) + 1
        beats = [b for b in env.heartbeats if b.stage == Stage.SCENES]
        assert beats[-1].total == total
        fractions = [b.fraction for b in beats]
        assert fractions[-1] == (1.0 if total else 0.0) and fractions == sorted(fractions)


def test_the_shortest_scene_is_never_longer_than_a_second() -> None:
    assert min_scene_frames(15, 30.0) == 15
    assert min_scene_frames(15, 60.0) == 15
    assert min_scene_frames(15, 10.0) == 10
    assert min_scene_frames(15, 2.0) == 2
    assert min_scene_frames(15, 0.5) == 1
    assert min_scene_frames(15, float("nan")) == 15


def test_a_low_frame_rate_video_keeps_cuts_closer_than_its_minimum_in_frames(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, sample_spec: SampleSpec
) -> None:
    """The sample at 2 frames a second, as a slideshow or a time-lapse plays: 15 frames
    would be 7.5 s there, longer than its 4 s shots, and hide two of its three cuts."""
    folder = workspaces.file(ref, ".")
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-v", "error", "-i", str(folder / sample_in_workspace)),
            *("-vf", "fps=2", "-c:v", "libx264", "-an", str(folder / "slow.mp4")),
        ],
        check=True,
    )
    result = ActivityEnvironment().run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file="slow.mp4"),
    )
    expected = [round(cut / sample_spec.fps * 2) for cut in sample_spec.cut_frames]
    cuts = [s.start_frame for s in result.scenes[1:]]
    assert len(cuts) == len(expected) == 3
    assert all(abs(a - b) <= 1 for a, b in zip(cuts, expected, strict=True))


def test_detect_scenes_resumes_from_the_last_heartbeat(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, sample_spec: SampleSpec
) -> None:
    """A retry starts at the heartbeated frame and keeps the cuts found before it. The
    'previous attempt' claims a cut at frame 60 that is not in the video: it must be
    kept, which proves the first frames were not decoded again. It stopped exactly on
    the cut at frame 240, which must still be found."""
    previous = ActivityProgress(
        stage=Stage.SCENES, done=240, total=480, unit="frames", resume={"cuts": [60, 120]}
    )
    env = RecordingEnvironment(resume_from=previous)
    result = env.run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file=sample_in_workspace),
    )
    cuts = [s.start_frame for s in result.scenes[1:]]
    assert cuts[:2] == [60, 120]
    assert all(abs(a - b) <= 1 for a, b in zip(cuts[2:], sample_spec.cut_frames[1:], strict=True))
    assert cuts[2] == 240, cuts
    assert env.heartbeats[0].done > 240


def test_the_scene_pass_writes_one_keyframe_per_scene_from_that_scene(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, sample_spec: SampleSpec
) -> None:
    env = RecordingEnvironment()
    result = env.run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file=sample_in_workspace, keyframes=True),
    )
    assert result.keyframes is not None
    assert [kf.scene_index for kf in result.keyframes] == list(range(len(result.scenes)))
    for kf, scene, shot in zip(result.keyframes, result.scenes, sample_spec.shots, strict=True):
        length = scene.end_frame - scene.start_frame
        # Near the candidate positions (35-65 % in), within the first sample spacing.
        assert (
            scene.start_frame + 0.3 * length
            <= kf.keyframe.frame
            <= (scene.start_frame + 0.7 * length)
        )
        assert kf.keyframe.time_s == round(kf.keyframe.frame / result.fps, 3)
        image = cv2.imread(str(workspaces.file(ref, kf.image_file)))
        assert image.shape[:2] == (sample_spec.height, sample_spec.width)
        # The picture is that scene's (the shots are flat colours, RGB in the spec).
        median_rgb = np.median(image.reshape(-1, 3), axis=0)[::-1]
        assert np.abs(median_rgb - np.asarray(shot.color)).max() < 40, (kf, median_rgb)
    assert env.heartbeats[-1].resume["keyframes"][0]["image_file"] == result.keyframes[0].image_file


def test_a_key_frame_that_cannot_be_written_fails_the_pass(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str
) -> None:
    """The first scene's key frame goes to the kernel's ``/dev/full``, where every write
    fails as on a full disk. The pass fails with the disk's error, which the worker
    reports as ``DiskFull``; it does not end as if the key frame were there."""
    keyframes = workspaces.file(ref, "keyframes")
    keyframes.mkdir()
    (keyframes / "at-0000000.jpg").symlink_to("/dev/full")
    with pytest.raises(OSError) as failed:
        RecordingEnvironment().run(
            SceneActivities(workspaces, 27.0, 15).detect_scenes,
            DetectScenesInput(workspace=ref, media_file=sample_in_workspace, keyframes=True),
        )
    assert failed.value.errno == errno.ENOSPC
    assert not (keyframes / "at-0000000.jpg").exists()


def test_decoding_threads_grow_with_the_picture_and_its_bits_beside_transcription() -> None:
    # The bench's flat clips and slides: few bits, so the picture size decides, and
    # 1080p at 30 fps fits one thread.
    assert decode_threads(8, 1280, 720, 30.0, 28_000, transcription_beside=True) == 1
    assert decode_threads(8, 1920, 1080, 30.0, 37_000, transcription_beside=True) == 1
    assert decode_threads(8, 1920, 1080, 30.0, 122_000, transcription_beside=True) == 1
    assert decode_threads(8, 1920, 1080, 60.0, 37_000, transcription_beside=True) == 2
    assert decode_threads(8, 3840, 2160, 60.0, 0, transcription_beside=True) == 7
    # Filmed video: a second thread once the stream's bits make decoding costly.
    assert decode_threads(8, 1280, 720, 30.0, 1_000_000, transcription_beside=True) == 1
    assert decode_threads(8, 1280, 720, 30.0, 1_400_000, transcription_beside=True) == 1
    assert decode_threads(8, 1280, 720, 30.0, 1_600_000, transcription_beside=True) == 2
    assert decode_threads(8, 1920, 1080, 30.0, 1_660_000, transcription_beside=True) == 2
    assert decode_threads(8, 1920, 1080, 30.0, 8_000_000, transcription_beside=True) == 5
    assert decode_threads(8, 854, 480, 30.0, 200_000, transcription_beside=True) == 1
    assert decode_threads(1, 1920, 1080, 30.0, 8_000_000, transcription_beside=True) == 1
    assert decode_threads(0, 1920, 1080, 30.0, 0, transcription_beside=True) == 0
    # On more CPUs, at least those transcription leaves, up to the most allowed.
    assert decode_threads(8, 1280, 720, 30.0, 28_000, transcription_beside=True, spare=4) == 4
    assert decode_threads(2, 1280, 720, 30.0, 28_000, transcription_beside=True, spare=4) == 2


def test_decoding_threads_alone_follow_the_bits_first() -> None:
    # No transcription beside the pass: flat video stays on one thread, as measured.
    alone = {"transcription_beside": False}
    assert decode_threads(8, 1280, 720, 30.0, 28_000, **alone) == 1
    assert decode_threads(8, 1920, 1080, 30.0, 37_000, **alone) == 1
    assert decode_threads(8, 1920, 1080, 30.0, 122_000, **alone) == 1
    # Filmed video takes a second thread from 0.3 Mbit/s, and more with more bits.
    assert decode_threads(8, 1920, 1080, 30.0, 337_000, **alone) == 2
    assert decode_threads(8, 1280, 720, 30.0, 841_000, **alone) == 3
    assert decode_threads(2, 1280, 720, 30.0, 841_000, **alone) == 2
    assert decode_threads(8, 1920, 1080, 30.0, 4_000_000, **alone) == 8
    # Many pixels ask for threads however few the bits; unknown bits get them all.
    assert decode_threads(8, 3840, 2160, 30.0, 100_000, **alone) == 4
    assert decode_threads(4, 640, 360, 30.0, 0, **alone) == 4
    assert decode_threads(0, 1280, 720, 30.0, 841_000, **alone) == 0


def test_the_scene_pass_reads_the_stream_bit_rate(media_dir: Path) -> None:
    sample = media_dir / SAMPLE_NAME
    video = PlanarStream(str(sample))
    size = sample.stat().st_size
    assert video.duration is not None
    seconds = video.duration.seconds
    # The video stream's own rate: under the whole file's, which holds the audio too.
    assert 0 < video.bit_rate < size * 8 / seconds


@pytest.mark.parametrize("many", [0, 3])
def test_decoding_threads_change_nothing_but_the_cpu_spent(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, many: int
) -> None:
    """One decoding thread (the default on small machines) and frame threads (FFmpeg's
    own count, or a set one) find the same cuts and write the same key frames, pixel
    for pixel: no frame is lost at the end of the file or reordered."""

    def scene_pass(threads: int) -> tuple[list[tuple[int, int]], list[np.ndarray]]:
        result = RecordingEnvironment().run(
            SceneActivities(workspaces, 27.0, 15, decode_threads=threads).detect_scenes,
            # Alone, the scene pass decodes on all the threads it may use.
            DetectScenesInput(
                workspace=ref,
                media_file=sample_in_workspace,
                keyframes=True,
                transcription_beside=False,
            ),
        )
        assert result.keyframes is not None
        images = [cv2.imread(str(workspaces.file(ref, k.image_file))) for k in result.keyframes]
        return [(s.start_frame, s.end_frame) for s in result.scenes], images

    one_scenes, one_images = scene_pass(1)
    many_scenes, many_images = scene_pass(many)
    assert many_scenes == one_scenes
    assert len(one_images) == len(one_scenes)
    for one, many in zip(one_images, many_images, strict=True):
        assert np.array_equal(one, many)


def decode_threads_running() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "scene-decode"]


def test_decoding_ahead_hands_over_every_frame_in_order_and_stops_with_its_reader(
    media_dir: Path, sample_spec: SampleSpec
) -> None:
    path = str(media_dir / SAMPLE_NAME)
    with DecodeAhead(PlanarStream(path), ahead=2) as frames:
        numbers = [position.frame_num for position, _ in frames]
    assert numbers == list(range(sample_spec.total_frames))
    assert not decode_threads_running()

    # A reader that stops early (a cancel, a failed detector) stops the thread too,
    # though it is blocked on a full queue.
    with DecodeAhead(PlanarStream(path), ahead=2) as frames:
        for position, _ in frames:
            if position.frame_num == 3:
                break
    assert not decode_threads_running()


def test_kept_pictures_stay_as_decoded_while_the_decoder_goes_on(media_dir: Path) -> None:
    """Kept pictures are views of the decoder's frames, not copies: decoding every later
    frame, on two frame threads, leaves each one as it was when it was kept."""
    stream = PlanarStream(str(media_dir / SAMPLE_NAME))
    stream.decode_on(2)
    kept: list[tuple[Picture, list[np.ndarray]]] = []
    with DecodeAhead(stream) as frames:
        for position, frame in frames:
            _, picture = split_frame(
                frame, keep=position.frame_num % 10 == 0, upright=stream.upright(frame)
            )
            if picture is not None:
                kept.append((picture, [plane.copy() for plane in picture.planes]))
    assert len(kept) >= 10
    for picture, as_kept in kept:
        assert all(np.array_equal(a, b) for a, b in zip(picture.planes, as_kept, strict=True))
    # The sample changes shot, so the kept pictures are not all one picture.
    assert not all(np.array_equal(kept[0][1][0], planes[0]) for _, planes in kept)


def test_a_decoding_failure_reaches_the_reader(media_dir: Path) -> None:
    class FailingStream(PlanarStream):
        def read(self, decode: bool = True) -> np.ndarray | bool:
            if self.frame_number >= 5:
                raise MemoryError("no room for the next frame")
            return super().read(decode)

    seen = 0
    with (
        pytest.raises(MemoryError, match="no room"),
        DecodeAhead(FailingStream(str(media_dir / SAMPLE_NAME))) as frames,
    ):
        for _ in frames:
            seen += 1
    assert seen == 5
    assert not decode_threads_running()


def test_the_scene_pass_keeps_the_keyframes_of_an_earlier_attempt(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, sample_spec: SampleSpec
) -> None:
    """The earlier attempt wrote scene 0's key frame (a file this test makes, unlike
    anything the video holds) and heartbeated at frame 240; the retry keeps that file and
    picks the later scenes' key frames itself."""
    earlier = workspaces.file(ref, "keyframes")
    earlier.mkdir()
    cv2.imwrite(str(earlier / "earlier.jpg"), np.zeros((8, 8, 3), np.uint8))
    first = {"scene_start": 0, "frame": 50, "image_file": "keyframes/earlier.jpg"}
    previous = ActivityProgress(
        stage=Stage.SCENES,
        done=240,
        total=480,
        unit="frames",
        resume={"cuts": [120], "keyframes": [first]},
    )
    env = RecordingEnvironment(resume_from=previous)
    result = env.run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file=sample_in_workspace, keyframes=True),
    )
    assert result.keyframes is not None
    assert result.keyframes[0].image_file == "keyframes/earlier.jpg"
    assert result.keyframes[0].keyframe.frame == 50
    # Scene 1 was open at the resume point: its key frame comes from what was decoded
    # after it. Scenes 2 and 3 are whole.
    assert [kf.scene_index for kf in result.keyframes] == [0, 1, 2, 3]
    for kf, scene in zip(result.keyframes[1:], result.scenes[1:], strict=True):
        assert scene.start_frame <= kf.keyframe.frame < scene.end_frame
        assert workspaces.file(ref, kf.image_file).is_file()


def test_keyframe_samples_thin_out_in_a_long_scene_and_the_sharpest_wins() -> None:
    saved: dict[int, np.ndarray] = {}

    def save(start: int, picture: Picture, frame: int | None) -> str:
        assert frame is None  # no text here: nothing is picked for it
        saved[start] = picture.bgr()
        return f"keyframes/at-{start}.jpg"

    rng = np.random.default_rng(7)
    sharp = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(sharp, (9, 9), 5)
    collector = KeyframeCollector(fps=30.0, open_start=0, save=save)
    collector.capacity = 8  # as if each frame were an eighth of the memory budget
    for number in range(3000):  # 100 s in one scene
        collector.offer(number, Picture.of_bgr(sharp if number == 1536 else blurred))
        assert len(collector.samples) <= 8
    collector.close(3000)
    assert collector.stride == collector.base_stride == 4
    (picked,) = collector.picked
    # 50 % in is frame 1500; the samples are 512 frames apart by then (0, 512, 1024,
    # 1536, ...), so 1536 is the nearest sample, and the sharp one.
    assert picked.frame == 1536 and saved[0] is sharp
    # The next scene starts sampling at its first frame again.
    collector.offer(3001, Picture.of_bgr(blurred))
    assert collector.samples[0][0] == 3001


def opencv_frame(path: Path, number: int) -> np.ndarray:
    """Frame ``number`` as OpenCV's reader shows it (turned upright, BT.601 colour)."""
    capture = cv2.VideoCapture(str(path))
    for _ in range(number):
        capture.grab()
    ok, image = capture.read()
    capture.release()
    assert ok
    return image


@pytest.mark.parametrize(
    ("before_input", "after_input", "name"),
    [
        # A phone video: stored landscape, shown portrait by its display matrix.
        (["-display_rotation", "90"], ["-c", "copy"], "turned.mp4"),
        # 4:4:4 takes the other path, FFmpeg's own conversion at full size.
        ([], ["-c:v", "libx264", "-pix_fmt", "yuv444p"], "yuv444.mp4"),
        # What phones record: full-range 8-bit (in FFmpeg's older format name, and
        # flagged), and 10 bits. These take the plane-by-plane path.
        ([], ["-c:v", "libx264", "-pix_fmt", "yuvj420p"], "full-range.mp4"),
        ([], ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-color_range", "pc"], "flagged.mp4"),
        ([], ["-c:v", "libx264", "-pix_fmt", "yuv420p10le"], "ten-bit.mp4"),
        # A height of 2 more than a multiple of 4, as 4:5 portrait video has (1080x1350).
        ([], ["-c:v", "libx264", "-vf", "scale=480:270"], "4-5.mp4"),
    ],
)
def test_key_frames_look_as_opencv_shows_the_video(
    workspaces: Workspaces,
    ref: WorkspaceRef,
    sample_in_workspace: str,
    before_input: list[str],
    after_input: list[str],
    name: str,
) -> None:
    source, target = workspaces.file(ref, sample_in_workspace), workspaces.file(ref, name)
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y"]
    subprocess.run(
        [*ffmpeg, *before_input, "-i", str(source), "-t", "2", *after_input, str(target)],
        check=True,
    )
    result = RecordingEnvironment().run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file=name, keyframes=True),
    )
    assert result.keyframes
    for kf in result.keyframes:
        written = cv2.imread(str(workspaces.file(ref, kf.image_file)))
        expected = opencv_frame(target, kf.keyframe.frame)
        assert written.shape == expected.shape
        # JPEG and chroma rounding differ a little; a turned or miscoloured frame is off
        # by tens of levels.
        assert np.abs(written.astype(int) - expected.astype(int)).mean() < 4


PHONE_FORMATS = [
    (["-pix_fmt", "yuvj420p"], 8, True),
    (["-pix_fmt", "yuv420p", "-color_range", "pc"], 8, True),
    (["-pix_fmt", "yuv420p10le"], 10, False),
    (["-pix_fmt", "yuv420p", "-vf", "scale=480:270"], 8, False),
]


@pytest.mark.parametrize(
    ("width", "height", "size", "dtype"),
    [
        (1280, 720, (256, 144), np.uint8),  # by 5: taken, not resized
        (640, 360, (128, 72), np.uint8),  # its colour planes
        (3840, 2160, (256, 144), np.uint16),  # by 15, 10-bit samples
        (1920, 1080, (256, 144), np.uint8),  # by 7.5: resized
        (720, 1280, (256, 452), np.uint8),  # portrait: resized
        (1280, 720, (256, 148), np.uint8),  # not by 5 both ways: resized
    ],
)
def test_planes_scale_down_to_the_same_samples_as_opencvs_resize(
    width: int, height: int, size: tuple[int, int], dtype: type[np.unsignedinteger]
) -> None:
    rng = np.random.default_rng(width)
    # A view with the decoder's row padding, as frames hand their planes over.
    padded = rng.integers(0, 1024 if dtype is np.uint16 else 256, (height, width + 32))
    plane = padded.astype(dtype)[:, :width]
    assert np.array_equal(scaled_plane(plane, size), cv2.resize(plane, size))


@pytest.mark.parametrize(("pixel_format", "bits", "full_range"), PHONE_FORMATS)
def test_phone_formats_reach_the_detectors_plane_by_plane_as_ffmpeg_converts_them(
    workspaces: Workspaces,
    ref: WorkspaceRef,
    sample_in_workspace: str,
    pixel_format: list[str],
    bits: int,
    full_range: bool,
) -> None:
    """Full-range and 10-bit 4:2:0, and 4:2:0 whose height is not a multiple of 4 (4:5
    portrait video), are scaled plane by plane like limited 8-bit 16:9 video (the kept
    picture holds planes, not BGR), and the detectors' picture is FFmpeg's own conversion
    to within a level or two; so is the gauge of whether the picture moved."""
    import av

    from activities.scenes import detector_size, split_frame, still_gauge

    source, target = workspaces.file(ref, sample_in_workspace), workspaces.file(ref, "p.mp4")
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(source)]
    subprocess.run([*ffmpeg, "-t", "1", "-c:v", "libx264", *pixel_format, str(target)], check=True)
    with av.open(str(target)) as container:
        frames = [frame for _, frame in zip(range(12), container.decode(video=0), strict=False)]
    assert frames[0].format.name in {"yuvj420p", "yuv420p", "yuv420p10le"}
    for frame in frames:
        image, kept = split_frame(frame, keep=True, upright=orientation(frame))
        assert kept is not None and len(kept.planes) == 3
        assert kept.sampling.bits == bits and kept.sampling.full_range == full_range
        converted = cv2.resize(
            frame.to_ndarray(format="bgr24"), detector_size(frame.width, frame.height, 0)
        )
        assert image.shape == converted.shape
        # Chroma scaled at a quarter of the size rounds differently; a 10-bit sample read
        # as 8 bits, or full range taken for limited, is off by tens of levels.
        assert np.abs(image.astype(int) - converted.astype(int)).mean() < 2.5
        assert np.abs(kept.bgr().astype(int) - frame.to_ndarray(format="bgr24")).mean() < 2.5
        gauge, eight_bit = still_gauge(frame), still_gauge(frame.reformat(format="yuv420p"))
        assert gauge is not None and eight_bit is not None
        assert np.abs(gauge - eight_bit).mean() < 1.0


def test_the_scene_pass_leaves_ffmpegs_messages_off(
    workspaces: Workspaces,
    ref: WorkspaceRef,
    sample_in_workspace: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A full-range 4:2:2 video makes FFmpeg's converter warn on every frame. A worker
    starts with PyAV's handler, which drops FFmpeg's messages; the scene pass keeps it,
    so nothing of FFmpeg's reaches the worker's stderr."""
    import av

    source, target = workspaces.file(ref, sample_in_workspace), workspaces.file(ref, "j.mp4")
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(source)]
    subprocess.run([*ffmpeg, "-t", "2", "-pix_fmt", "yuvj422p", str(target)], check=True)
    av.logging.set_level(None)  # as PyAV sets it up on import
    capfd.readouterr()
    result = RecordingEnvironment().run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file="j.mp4", keyframes=True),
    )
    assert result.keyframes
    err = capfd.readouterr().err
    assert "swscaler" not in err and "deprecated pixel format" not in err


@pytest.mark.parametrize("turned", [False, True], ids=["landscape", "turned"])
def test_a_picture_stored_squeezed_is_shown_and_described_as_a_player_shows_it(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, turned: bool
) -> None:
    """A DVD's 16:9 picture is stored 720x480 with pixels 32:27 as wide as they are
    high; a player shows it 853x480. The key frames are written at that shape and the
    metadata gives it, turned upright where the video says so (then 480x853). Read
    without the ratio, captions come out squeezed by a sixth."""
    source = workspaces.file(ref, sample_in_workspace)
    squeezed, target = workspaces.file(ref, "dvd.mp4"), workspaces.file(ref, "shown.mp4")
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y"]
    subprocess.run(
        [*ffmpeg, "-i", str(source), "-t", "2", "-vf", "scale=720:480,setsar=32/27",
         "-c:v", "libx264", str(squeezed)],
        check=True,
    )  # fmt: skip
    turn = ["-display_rotation", "90"] if turned else []
    subprocess.run([*ffmpeg, *turn, "-i", str(squeezed), "-c", "copy", str(target)], check=True)
    shown = (480, 853) if turned else (853, 480)

    probe = RecordingEnvironment().run(
        ProbeActivities(workspaces).probe_media, ProbeInput(workspace=ref, media_file="shown.mp4")
    )
    assert (probe.metadata.width, probe.metadata.height) == shown
    result = RecordingEnvironment().run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file="shown.mp4", keyframes=True),
    )
    assert result.keyframes
    for kf in result.keyframes:
        written = cv2.imread(str(workspaces.file(ref, kf.image_file)))
        assert (written.shape[1], written.shape[0]) == shown
        # OpenCV's reader turns the picture but leaves its pixels' shape alone.
        expected = cv2.resize(opencv_frame(target, kf.keyframe.frame), shown)
        assert np.abs(written.astype(int) - expected.astype(int)).mean() < 4


def test_a_turned_video_reaches_the_detectors_at_their_width(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str
) -> None:
    """Stored 640x360 and shown portrait: the detectors get the upright picture at
    PySceneDetect's downscale width (256 px here), as they do for a landscape video."""
    source, target = workspaces.file(ref, sample_in_workspace), workspaces.file(ref, "t.mp4")
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-display_rotation", "90"]
    subprocess.run([*ffmpeg, "-i", str(source), "-t", "1", "-c", "copy", str(target)], check=True)
    stream = PlanarStream(str(target))
    assert stream.frame_size  # SceneManager asks before the first frame is decoded
    image = stream.read()
    assert isinstance(image, np.ndarray)
    assert image.shape[1] == 256 and image.shape[0] > image.shape[1]
    assert stream.frame_size == (image.shape[1], image.shape[0])


def detector_frames(path: Path) -> list[np.ndarray]:
    """Every frame of ``path`` at the detectors' width, then frames of noise, which
    differ by far more than any video's."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(image, (256, 144)))
    capture.release()
    noise = np.random.default_rng(7).integers(0, 256, (6, 144, 256, 3), dtype=np.uint8)
    return frames + list(noise)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: AdaptiveCutDetector(min_scene_len=15), lambda: AdaptiveDetector(min_scene_len=15)),
        (lambda: ContentCutDetector(threshold=27.0), lambda: ContentDetector(threshold=27.0)),
    ],
    ids=["adaptive", "content"],
)
def test_the_cut_detectors_score_every_frame_as_pyscenedetect_does(
    media_dir: Path, ours: Callable[[], SceneDetector], theirs: Callable[[], SceneDetector]
) -> None:
    frames = detector_frames(media_dir / SAMPLE_NAME)
    fast, reference = ours(), theirs()
    cuts: tuple[list[int], list[int]] = ([], [])
    for number, frame in enumerate(frames):
        timecode = FrameTimecode(number, 30.0)
        for detector, found in zip((fast, reference), cuts, strict=True):
            found += [c.frame_num for c in detector.process_frame(timecode, frame)]
        assert fast._frame_score == reference._frame_score, f"frame {number}"  # type: ignore[attr-defined]
    assert cuts[0] == cuts[1] and len(cuts[0]) >= 3


def test_sharpness_is_the_variance_of_the_laplacian() -> None:
    rng = np.random.default_rng(3)
    sharp = rng.integers(0, 256, (1080, 1920), dtype=np.uint8)
    for image in (sharp, cv2.GaussianBlur(sharp, (9, 9), 0), np.full((64, 64), 7, np.uint8)):
        _, std = cv2.meanStdDev(cv2.Laplacian(image, cv2.CV_64F))
        assert grey_sharpness(image) == pytest.approx(float(std[0, 0]) ** 2, rel=1e-12, abs=1e-9)
    assert grey_sharpness(cv2.GaussianBlur(sharp, (9, 9), 0)) < grey_sharpness(sharp)


# -- Skipping frames no other frame is predicted from, at 50 fps and more ---------------

#: A 60 fps clip: 4 s of four shots of smooth random colours panning 1 px a frame, and a
#: one-frame white flash (``render_skim_clip`` makes others like it). Cuts on odd frames
#: land on B-frames, which the skimming pass skips; the flash lies on an even frame, a
#: P-frame, which it decodes.
SKIM_CUTS = (61, 143, 187)
SKIM_FLASH = 100
SKIM_FRAMES = 240


#: SVT-AV1 for ``render_skim_clip``: its default structure leaves every other frame
#: unreferenced, as ``EVERY_OTHER_FRAME`` does for H.264. Decoded by dav1d.
AV1 = "av1"


def render_skim_clip(path: Path, x264_params: str, fps: int = 60, pan: int = 1) -> Path:
    """The clip above, at ``fps``, panning ``pan`` px a frame (0: the shots stand still),
    in H.264 with ``x264_params``, or in AV1 if they are ``AV1``."""
    width, height = 640, 360
    rng = np.random.default_rng(11)
    textures = [
        cv2.resize(
            rng.integers(0, 256, (6, 12, 3), dtype=np.uint8),
            (width + pan * SKIM_FRAMES, height),
            interpolation=cv2.INTER_LINEAR,
        )
        for _ in range(len(SKIM_CUTS) + 1)
    ]
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    if x264_params == AV1:
        encode = ["-c:v", "libsvtav1", "-preset", "10", "-crf", "35"]
    else:
        encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"]
        encode += ["-x264-params", x264_params]
    # SVT-AV1 prints its settings unless told to print errors only.
    env = {**os.environ, "SVT_LOG": "1"}
    encoder = subprocess.Popen(
        [
            ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", str(fps),
            "-i", "-",
            *encode, "-pix_fmt", "yuv420p", str(path),
        ],
        stdin=subprocess.PIPE,
        env=env,
    )  # fmt: skip
    assert encoder.stdin is not None
    for number in range(SKIM_FRAMES):
        shot = sum(number >= cut for cut in SKIM_CUTS)
        frame = textures[shot][:, pan * number : pan * number + width]
        if number == SKIM_FLASH:
            frame = np.full_like(frame, 255)
        encoder.stdin.write(np.ascontiguousarray(frame).tobytes())
    encoder.stdin.close()
    assert encoder.wait() == 0
    return path


#: No scene-cut I-frames, a B-frame between every two reference frames, so that every
#: other frame is skipped and cuts on odd frames follow a skipped frame.
EVERY_OTHER_FRAME = "scenecut=0:bframes=1:b-adapt=0:keyint=120"
#: The same with a key frame a second at 30 fps: decoding the frames before a cut
#: again costs less than skipping saved.
EVERY_OTHER_SHORT_GOP = "scenecut=0:bframes=1:b-adapt=0:keyint=30"


def test_skimming_keeps_the_detectors_at_25_frames_a_second_or_more() -> None:
    from activities.scenes import skim_step

    assert [skim_step(fps) for fps in (0.0, 24.0, 29.97, 30.0, 48.0)] == [1, 1, 1, 1, 1]
    assert [skim_step(fps) for fps in (50.0, 59.94, 60.0, 100.0, 120.0)] == [2, 2, 2, 4, 4]


def test_at_60_fps_the_scene_pass_skips_every_other_frame_and_finds_the_same_cuts(
    workspaces: Workspaces, ref: WorkspaceRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cuts follow a skipped frame and are placed on their own frame by decoding
    that stretch again; the flash, seen without the frame before it, is still no cut."""
    render_skim_clip(workspaces.create(ref) / "media.mp4", EVERY_OTHER_FRAME)
    skimmed_count, every_count = same_cuts_with_and_without_skipping(workspaces, ref, monkeypatch)
    # The detectors saw about half the frames (refine_cut's are not counted there: it
    # scales its own frames through the same function, a handful per cut).
    assert skimmed_count < 0.6 * every_count, (skimmed_count, every_count)


def test_skimming_stops_where_a_decoded_frame_would_stand_for_too_many(
    tmp_path: Path,
) -> None:
    """Three B-frames between reference frames at 60 fps: one decoded frame in four,
    15 a second, too few for the detectors. Every frame is decoded from the first such
    step on."""
    clip = render_skim_clip(
        tmp_path / "wide.mp4", "scenecut=0:bframes=3:b-pyramid=none:b-adapt=0:keyint=120"
    )
    video = PlanarStream(str(clip))
    video.skip_nonreference()
    decoding = DecodeAhead(video, widest_step=2)
    with decoding as frames:
        numbers = [position.frame_num for position, _ in frames]
    assert decoding.skipping_stopped_at is not None
    stop = numbers.index(decoding.skipping_stopped_at)
    assert numbers[stop:] == list(range(numbers[stop], SKIM_FRAMES))
    assert stop <= 2


def test_refining_a_cut_finds_the_first_frame_of_the_new_shot(tmp_path: Path) -> None:
    from activities.scenes import refine_cut

    clip = str(render_skim_clip(tmp_path / "skim.mp4", EVERY_OTHER_FRAME))
    # Reported on the frame after the cut, the frame before it having been the last seen.
    assert refine_cut(clip, 60, 62) == 61
    assert refine_cut(clip, 139, 144) == 143
    # A file that cannot be read again leaves the cut where it was reported.
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(Path(clip).read_bytes()[:2000])
    with pytest.raises(VideoOpenFailure):
        refine_cut(str(broken), 60, 62)
    refine = SceneActivities(Workspaces(tmp_path), 27.0, 15)._refine_cut
    assert ActivityEnvironment().run(refine, str(broken), 60, 62) == 62


def test_an_av1_stretch_is_decoded_frame_by_frame_again(tmp_path: Path) -> None:
    """dav1d, FFmpeg's AV1 decoder, reads which frames to skip once, when it opens: a
    second reader that skipped the frames before the stretch would skip them in the
    stretch too. It decodes every frame there, and the cut is placed on its frame."""
    from activities.scenes import refine_cut

    clip = str(render_skim_clip(tmp_path / "skim.mp4", AV1))
    video = PlanarStream(clip)
    assert video.skip_fixed_at_open
    numbers = [position.frame_num for position, _ in video.frames_from(100, 130)]
    video.close()
    assert numbers == list(range(100, 130))
    assert refine_cut(clip, 60, 62) == 61
    assert refine_cut(clip, 139, 144) == 143


def test_at_60_fps_an_av1_video_is_skimmed_too_and_gives_the_same_cuts(
    workspaces: Workspaces, ref: WorkspaceRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dav1d skips the frames no other frame is predicted from when told so before it
    opens, as the scene pass does at 60 fps."""
    render_skim_clip(workspaces.create(ref) / "media.mp4", AV1)
    skimmed_count, every_count = same_cuts_with_and_without_skipping(workspaces, ref, monkeypatch)
    assert skimmed_count < 0.6 * every_count, (skimmed_count, every_count)


def scene_pass_cuts_and_frames_seen(
    workspaces: Workspaces, ref: WorkspaceRef, monkeypatch: pytest.MonkeyPatch, skip: bool
) -> tuple[list[tuple[int, int]], int]:
    """The scenes the pass finds in the workspace's media.mp4, and how many frames the
    detectors were given."""
    import activities.scenes as scenes

    seen: list[int] = []
    split = scenes.split_frame

    def counted(frame, keep, upright):  # type: ignore[no-untyped-def]
        seen.append(frame.pts)
        return split(frame, keep, upright)

    monkeypatch.setattr(scenes, "split_frame", counted)
    result = RecordingEnvironment().run(
        SceneActivities(workspaces, 27.0, 15, skip_nonreference=skip).detect_scenes,
        DetectScenesInput(workspace=ref, media_file="media.mp4", keyframes=True),
    )
    monkeypatch.undo()
    assert result.keyframes is not None and len(result.keyframes) == len(result.scenes)
    return [(s.start_frame, s.end_frame) for s in result.scenes], len(seen)


def same_cuts_with_and_without_skipping(
    workspaces: Workspaces, ref: WorkspaceRef, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, int]:
    """Asserts that the pass finds the skim clip's cuts with every frame decoded, and
    the same with skipping; returns the frames the detectors saw skipping and not."""
    every, every_count = scene_pass_cuts_and_frames_seen(workspaces, ref, monkeypatch, False)
    skimmed, skimmed_count = scene_pass_cuts_and_frames_seen(workspaces, ref, monkeypatch, True)
    assert every == list(pairwise([0, *SKIM_CUTS, SKIM_FRAMES]))
    assert skimmed == every
    return skimmed_count, every_count


def test_below_50_fps_frames_are_skipped_only_while_the_picture_stands_still(
    workspaces: Workspaces, ref: WorkspaceRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shots that stand still, at 30 fps, with every cut on a skipped frame: the frames
    before each cut are decoded again and handed over, so the cuts are the same, on
    fewer frames. The flash in the middle of a shot stays no cut."""
    render_skim_clip(workspaces.create(ref) / "media.mp4", EVERY_OTHER_SHORT_GOP, fps=30, pan=0)
    skimmed_count, every_count = same_cuts_with_and_without_skipping(workspaces, ref, monkeypatch)
    assert skimmed_count < 0.7 * every_count, (skimmed_count, every_count)


def test_every_frame_around_a_change_reaches_the_detectors(tmp_path: Path) -> None:
    clip = render_skim_clip(tmp_path / "still.mp4", EVERY_OTHER_SHORT_GOP, fps=30, pan=0)
    decoding = DecodeAhead(PlanarStream(str(clip)), skip_while_still=True)
    with decoding as frames:
        numbers = [position.frame_num for position, _ in frames]
    assert numbers == sorted(set(numbers))
    assert decoding.skipped > SKIM_FRAMES // 3
    for changed in (*SKIM_CUTS, SKIM_FLASH, SKIM_FLASH + 1):
        assert changed - 1 in numbers and changed in numbers, changed
    # What skipping left out, nothing else: every frame is either handed over or skipped.
    assert len(numbers) + decoding.skipped == SKIM_FRAMES


def test_below_50_fps_a_moving_picture_is_decoded_frame_by_frame(
    workspaces: Workspaces, ref: WorkspaceRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Panning shots at 30 fps with three B-frames between reference frames: seen one
    frame in four, a cut into a moving shot can hide (docs/benchmarks.md). Here the
    picture moves from the first frames on, so (almost) nothing is skipped and the cuts
    are those of the pass that decodes every frame."""
    render_skim_clip(
        workspaces.create(ref) / "media.mp4",
        "scenecut=0:bframes=3:b-pyramid=none:b-adapt=0:keyint=120",
        fps=30,
        pan=3,
    )
    every, every_count = scene_pass_cuts_and_frames_seen(workspaces, ref, monkeypatch, False)
    skimmed, skimmed_count = scene_pass_cuts_and_frames_seen(workspaces, ref, monkeypatch, True)
    assert skimmed == every
    assert skimmed_count >= every_count - 4


def test_when_the_frames_skipped_cannot_be_read_again_skipping_stops(tmp_path: Path) -> None:
    """The second reader fails (here: the file is gone by its name). The pass goes on,
    decoding every frame from the first change on."""
    clip = render_skim_clip(tmp_path / "still.mp4", EVERY_OTHER_SHORT_GOP, fps=30, pan=0)

    class Unreopenable(PlanarStream):
        @property
        def path(self) -> str:
            return str(tmp_path / "gone.mp4")

    decoding = DecodeAhead(Unreopenable(str(clip)), skip_while_still=True)
    with decoding as frames:
        numbers = [position.frame_num for position, _ in frames]
    stop = decoding.skipping_stopped_at
    assert stop is not None and SKIM_CUTS[0] <= stop <= SKIM_CUTS[0] + 1
    assert numbers[numbers.index(stop) :] == list(range(stop, SKIM_FRAMES))
    assert decoding.skipped > 0


#: A B-frame between every two reference frames, none of them referenced.
ONE_B_FRAME = "scenecut=0:bframes=1:b-adapt=0:b-pyramid=none:keyint=120"


def decoded_planes(path: Path, skip_b_deblocking: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Each frame's picture type, luma plane and the picture the detectors get."""
    from av.video.frame import PictureType

    from activities.scenes import split_frame

    video = PlanarStream(str(path), skip_b_deblocking)
    assert video.skips_b_deblocking == skip_b_deblocking
    frames = []
    while video.read(decode=False):
        frame = video.decoded
        assert frame is not None
        luma = frame.to_ndarray(format="gray")
        kind = PictureType(frame.pict_type).name
        frames.append((kind, luma, split_frame(frame, keep=False, upright=video.upright(frame))[0]))
    video.close()
    return frames


def test_b_frames_decoded_without_deblocking_differ_little_and_nothing_else_does(
    tmp_path: Path,
) -> None:
    """Panning shots at 30 fps: the reference frames decode exactly as before; the
    B-frames differ (the option reached FFmpeg), by far less than a cut changes the
    picture the detectors get."""
    clip = render_skim_clip(tmp_path / "b.mp4", ONE_B_FRAME, fps=30, pan=3)
    filtered = decoded_planes(clip, False)
    unfiltered = decoded_planes(clip, True)
    assert len(unfiltered) == len(filtered) == SKIM_FRAMES
    b_frames_changed = 0
    for (kind, luma, small), (kind_again, luma_again, small_again) in zip(
        filtered, unfiltered, strict=True
    ):
        assert kind == kind_again
        if kind != "B":
            assert np.array_equal(luma, luma_again)
            continue
        b_frames_changed += not np.array_equal(luma, luma_again)
        assert np.abs(small.astype(np.int16) - small_again).mean() < 1.0
    assert b_frames_changed > SKIM_FRAMES // 4
    # What a cut does to the detectors' picture, for scale.
    before, after = filtered[SKIM_CUTS[0] - 1][2], filtered[SKIM_CUTS[0]][2]
    assert np.abs(before.astype(np.int16) - after).mean() > 10.0


def test_the_scene_pass_finds_the_same_cuts_and_key_frames_without_b_frame_deblocking(
    workspaces: Workspaces, ref: WorkspaceRef
) -> None:
    render_skim_clip(workspaces.create(ref) / "media.mp4", ONE_B_FRAME, fps=30, pan=3)

    def scene_pass(skip: bool) -> tuple[list[tuple[int, int]], list[int]]:
        result = RecordingEnvironment().run(
            SceneActivities(workspaces, 27.0, 15, skip_b_deblocking=skip).detect_scenes,
            DetectScenesInput(workspace=ref, media_file="media.mp4", keyframes=True),
        )
        assert result.keyframes is not None
        return (
            [(s.start_frame, s.end_frame) for s in result.scenes],
            [k.keyframe.frame for k in result.keyframes],
        )

    every = scene_pass(False)
    assert every[0] == list(pairwise([0, *SKIM_CUTS, SKIM_FRAMES]))
    assert scene_pass(True) == every


def test_other_codecs_keep_deblocking_every_frame(tmp_path: Path) -> None:
    """HEVC encoders predict many frames from B-frames, so only H.264 skips it."""
    clip = tmp_path / "hevc.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error",
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=1",
            "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
            "-pix_fmt", "yuv420p", str(clip),
        ],
        check=True,
    )  # fmt: skip
    video = PlanarStream(str(clip), skip_b_deblocking=True)
    assert not video.skips_b_deblocking
    assert video.read(decode=False)
    video.close()


def test_a_clip_cut_without_re_encoding_is_not_said_to_end_early(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str
) -> None:
    """``ffmpeg -ss 2.5 -c copy`` (and a phone's trim) keeps the frames from the key
    frame before the cut, and an edit list hides them: the track counts 420 samples,
    405 of which play. The count the item compares with the frames decoded (its "ends
    early" note) is the 405."""
    source = workspaces.file(ref, sample_in_workspace)
    trimmed = workspaces.file(ref, "trimmed.mp4")
    run_ffmpeg("-ss", "2.5", "-i", str(source), "-c", "copy", str(trimmed))
    result = RecordingEnvironment().run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file="trimmed.mp4"),
    )
    assert result.decoded_frames == 405
    assert result.expected_frames == 405
    # The sample's cuts at 4, 8 and 12 s, 2.5 s earlier.
    assert [s.start_frame for s in result.scenes[1:]] == [45, 165, 285]


@pytest.mark.parametrize("fps", ["0.5", "0.25"])
def test_a_slideshow_of_a_frame_or_two_a_slide_keeps_every_cut(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str, fps: str
) -> None:
    """The sample's 4 s shots at 0.5 fps (two frames a shot) and 0.25 fps (one): the
    adaptive detector, which weighs a frame against two on either side, kept one cut of
    three and none. Below ``ADAPTIVE_MIN_FPS`` the content detector runs."""
    source = workspaces.file(ref, sample_in_workspace)
    run_ffmpeg("-i", str(source), "-vf", f"fps={fps}", "-an", str(workspaces.file(ref, "s.mp4")))
    result = RecordingEnvironment().run(
        SceneActivities(workspaces, 27.0, 15, "adaptive").detect_scenes,
        DetectScenesInput(workspace=ref, media_file="s.mp4"),
    )
    assert [s.start_s for s in result.scenes] == [0.0, 4.0, 8.0, 12.0]


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
@pytest.mark.parametrize("mirror", [False, True])
def test_a_frame_is_shown_as_ffmpeg_shows_it(tmp_path: Path, turn: int, mirror: bool) -> None:
    """Every display matrix a file may carry (four turns, each also flipped, as a front
    camera's video is), against FFmpeg's own autorotation of the same file."""
    plain = tmp_path / "plain.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x96:rate=1", "-frames:v", "1", str(plain))
    shown = tmp_path / "shown.mp4"
    flip = ["-display_hflip"] if mirror else []
    run_ffmpeg("-display_rotation", str(turn), *flip, "-i", str(plain), "-c", "copy", str(shown))
    played = tmp_path / "played.png"
    run_ffmpeg("-i", str(shown), "-frames:v", "1", str(played))
    with av.open(str(shown)) as container:
        frame = next(container.decode(video=0))
        turns, mirrored = orientation(frame)
        ours = shown_upright(frame.to_ndarray(format="bgr24"), turns, mirrored)
    theirs = cv2.imread(str(played))
    assert ours.shape == theirs.shape
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 3
    # The scene pass's reader gives the same, asked twice (the second time from memory).
    stream = PlanarStream(str(shown))
    assert stream.read(decode=False) and stream.decoded is not None
    assert stream.upright(stream.decoded) == stream.upright(stream.decoded) == (turns, mirrored)
    stream.close()


def live_frames() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, av.VideoFrame))


@pytest.mark.parametrize("turned", [False, True])
def test_each_decoded_frame_is_freed_once_the_scene_pass_is_done_with_it(
    media_dir: Path, tmp_path: Path, turned: bool
) -> None:
    """A frame whose side data is read is tied to PyAV's container of it in a reference
    cycle, which only Python's cyclic collector frees: read for every frame, hundreds of
    decoded frames, and the decoder's buffers, stayed alive between collections. With
    that collector off, frames read as the pass reads them (its reader, a picture kept
    every few frames and let go) are freed by reference counting alone."""
    path = media_dir / SAMPLE_NAME
    if turned:
        path = tmp_path / "turned.mp4"
        run_ffmpeg(
            "-display_rotation", "90", "-i", str(media_dir / SAMPLE_NAME), "-c", "copy", str(path)
        )
    gc.collect()
    gc.disable()
    try:
        stream = PlanarStream(str(path))
        alive = []
        with DecodeAhead(stream) as frames:
            for position, frame in frames:
                image, _ = split_frame(
                    frame, keep=position.frame_num % 4 == 0, upright=stream.upright(frame)
                )
                if position.frame_num % 10 == 0:
                    alive.append(live_frames())
        stream.close()
        del frame
    finally:
        gc.enable()
    assert len(alive) >= 10
    assert image.shape[0] > image.shape[1] if turned else image.shape[0] < image.shape[1]
    # The reader's queue and the frame it is putting in, the frame in hand, PyAV's own
    # last frame and its decoder's, and the first one, whose side data was read.
    assert max(alive) <= DECODE_AHEAD_FRAMES + 5, alive


def test_a_mirrored_videos_key_frames_are_written_as_it_plays(
    workspaces: Workspaces, ref: WorkspaceRef, sample_in_workspace: str
) -> None:
    """A video stored flipped, with a matrix that flips it back (a front camera's): its
    key frames were written upside down (``frame.rotation`` reads such a matrix as a
    half turn), and OCR read no caption in them. Each is compared with the plain
    sample's, written in a workspace of its own."""
    source = workspaces.file(ref, sample_in_workspace)
    other = WorkspaceRef(job_id=ref.job_id, item_index=ref.item_index + 1)
    stored = workspaces.create(other) / "stored.mp4"
    run_ffmpeg("-i", str(source), "-vf", "hflip", "-an", str(stored))
    shown = workspaces.file(other, "m.mp4")
    run_ffmpeg("-display_hflip", "-i", str(stored), "-c", "copy", str(shown))
    scan = SceneActivities(workspaces, 27.0, 15).detect_scenes
    mirrored = RecordingEnvironment().run(
        scan, DetectScenesInput(workspace=other, media_file="m.mp4", keyframes=True)
    )
    plain = RecordingEnvironment().run(
        scan, DetectScenesInput(workspace=ref, media_file=sample_in_workspace, keyframes=True)
    )
    assert len(mirrored.keyframes or []) == len(plain.keyframes or []) == 4
    # The sharpest candidate may be another frame of a moving shot in a re-encoded copy:
    # frames picked in both are compared.
    pairs = [
        (ours, theirs)
        for ours, theirs in zip(mirrored.keyframes or [], plain.keyframes or [], strict=True)
        if ours.keyframe.frame == theirs.keyframe.frame
    ]
    assert len(pairs) >= 2
    for ours, theirs in pairs:
        a = cv2.imread(str(workspaces.file(other, ours.image_file))).astype(int)
        b = cv2.imread(str(workspaces.file(ref, theirs.image_file))).astype(int)
        assert a.shape == b.shape
        # JPEG's error; a picture turned a half turn differs by up to the full range.
        assert np.percentile(np.abs(a - b), 99.5) < 40, ours.image_file


@pytest.fixture
def subtitled_in_workspace(workspaces: Workspaces, ref: WorkspaceRef, media_dir: Path) -> str:
    shutil.copy(media_dir / "subtitled.mp4", workspaces.create(ref) / "media.mp4")
    return "media.mp4"


def caption_shown_at(frame: int, fps: float) -> int:
    return int(frame / fps // SUBTITLE_SECONDS)


def test_a_shot_whose_subtitles_change_gets_a_key_frame_for_each(
    workspaces: Workspaces, ref: WorkspaceRef, subtitled_in_workspace: str
) -> None:
    env = RecordingEnvironment()
    result = env.run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file=subtitled_in_workspace, keyframes=True),
    )
    assert len(result.scenes) == 1 and result.keyframes is not None
    frames = [kf.keyframe.frame for kf in result.keyframes]
    assert frames == sorted(frames) and {kf.scene_index for kf in result.keyframes} == {0}
    shown = {caption_shown_at(frame, result.fps) for frame in frames}
    assert shown == set(range(len(SUBTITLES))), frames
    # One for each caption, and at most the scene's own key frame besides.
    assert len(frames) <= len(SUBTITLES) + 1, frames
    for kf in result.keyframes:
        assert workspaces.file(ref, kf.image_file).is_file()
    # Switched off, the scene has its one key frame.
    off = env.run(
        SceneActivities(workspaces, 27.0, 15, text_changes=False).detect_scenes,
        DetectScenesInput(workspace=ref, media_file=subtitled_in_workspace, keyframes=True),
    )
    assert off.keyframes is not None and len(off.keyframes) == 1


def test_a_retry_keeps_the_open_scenes_key_frames_for_its_text(
    workspaces: Workspaces, ref: WorkspaceRef, subtitled_in_workspace: str
) -> None:
    """The one scene is still open when the first attempt stops; what it picked for the
    first captions stays, and the rest is picked after the resume point."""
    first = RecordingEnvironment()
    whole = first.run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file=subtitled_in_workspace, keyframes=True),
    )
    assert whole.keyframes is not None
    # The heartbeats come every 10 s of video: make one at 5.2 s from what the pass
    # picked for the text by then (at-SSSSSSS-FFFFFFF.jpg), as the first attempt would
    # have sent it.
    stop = round(5.2 * whole.fps)
    before = [
        kf for kf in whole.keyframes if kf.keyframe.frame < stop and kf.image_file.count("-") == 2
    ]
    assert {caption_shown_at(kf.keyframe.frame, whole.fps) for kf in before} == {0, 1, 2}
    previous = ActivityProgress(
        stage=Stage.SCENES,
        done=stop,
        total=200,
        unit="frames",
        resume={
            "cuts": [],
            "keyframes": [
                {"scene_start": 0, "frame": kf.keyframe.frame, "image_file": kf.image_file}
                for kf in before
            ],
        },
    )
    again = RecordingEnvironment(resume_from=previous).run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file=subtitled_in_workspace, keyframes=True),
    )
    assert again.keyframes is not None
    files = [kf.image_file for kf in again.keyframes]
    assert all(kf.image_file in files for kf in before)
    shown = {caption_shown_at(kf.keyframe.frame, again.fps) for kf in again.keyframes}
    assert shown == set(range(len(SUBTITLES)))
    # Nothing before the resume point was decoded again to pick it twice.
    assert len(files) == len(set(files))
    assert all(
        kf.keyframe.frame >= stop - 16
        for kf in again.keyframes
        if kf.image_file not in {b.image_file for b in before}
    )


@pytest.mark.parametrize("after", [1, 2, 3, 4])
def test_a_retry_finds_a_cut_its_last_attempt_had_not_confirmed_when_it_heartbeated(
    workspaces: Workspaces,
    ref: WorkspaceRef,
    sample_in_workspace: str,
    sample_spec: SampleSpec,
    after: int,
) -> None:
    """The last attempt heartbeated ``after`` frames past the cut at frame 240: too soon
    for the detector to have reported it (it weighs each frame against the two after
    it) or for the transient filter to have confirmed it (4 frames later at 30 fps),
    so the heartbeat's cuts lack it. The retry must still find it."""
    previous = ActivityProgress(
        stage=Stage.SCENES, done=240 + after, total=480, unit="frames", resume={"cuts": [120]}
    )
    env = RecordingEnvironment(resume_from=previous)
    result = env.run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file=sample_in_workspace),
    )
    cuts = [s.start_frame for s in result.scenes[1:]]
    assert cuts == [120, 240, 360], cuts


def test_a_pass_that_decodes_slowly_still_heartbeats_every_few_seconds(
    workspaces: Workspaces,
    ref: WorkspaceRef,
    media_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every frame takes at least 20 ms (a starved or 4K pass), so the 75 frames of the
    3 s clip take 1.5 s or more: far short of a 10 s chunk of video, yet heartbeats
    every 0.2 s of work must come meanwhile."""
    shutil.copy(media_dir / "silent.mp4", workspaces.create(ref) / "silent.mp4")
    slow = scenes_module.split_frame

    def split_slowly(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.02)
        return slow(*args, **kwargs)

    monkeypatch.setattr(scenes_module, "split_frame", split_slowly)
    monkeypatch.setattr(scenes_module, "BEAT_SECONDS", 0.2)
    env = RecordingEnvironment()
    result = env.run(
        SceneActivities(workspaces, 27.0, 15).detect_scenes,
        DetectScenesInput(workspace=ref, media_file="silent.mp4"),
    )
    assert result.decoded_frames == 75
    beats = [b.done for b in env.heartbeats if b.stage == Stage.SCENES]
    during = [done for done in beats if 0 < done < 75]
    assert len(during) >= 3, beats
    assert during == sorted(during)
