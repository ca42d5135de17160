"""Scene cuts with PySceneDetect, in chunks, heartbeating between chunks."""

from __future__ import annotations

from itertools import pairwise

from scenedetect import ContentDetector, SceneManager, open_video
from scenedetect.backends.opencv import VideoOpenFailure
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.progress import cancellation_wins, log, report, resumed
from activities.workspace import Workspaces
from models.errors import ErrorKind
from models.jobs import Stage
from models.pipeline import ActivityProgress, DetectScenesInput, DetectScenesResult, SceneSpan

#: Seconds of video between heartbeats.
CHUNK_SECONDS = 10.0


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


class SceneActivities:
    def __init__(self, workspaces: Workspaces, threshold: float, min_scene_len_frames: int) -> None:
        self._workspaces = workspaces
        self._threshold = threshold
        self._min_scene_len_frames = min_scene_len_frames

    @activity.defn(name="detect_scenes")
    def detect_scenes(self, input: DetectScenesInput) -> DetectScenesResult:
        """See ``_detect_scenes``; a cancel always ends it as a cancellation."""
        with cancellation_wins():
            return self._detect_scenes(input)

    def _detect_scenes(self, input: DetectScenesInput) -> DetectScenesResult:
        """Hard cuts by ContentDetector with auto-downscale. A retry seeks to the frame
        the last attempt heartbeated and keeps the cuts found before it."""
        path = self._workspaces.file(input.workspace, input.media_file)
        try:
            video = open_video(str(path), backend="opencv")
        except (VideoOpenFailure, OSError) as exc:
            raise ApplicationError(
                f"scenes: the video cannot be opened for decoding ({exc})",
                type=ErrorKind.CORRUPT_MEDIA,
                non_retryable=True,
            ) from None
        fps = float(video.frame_rate)
        total = video.duration.frame_num if video.duration is not None else None
        min_scene_len = input.min_scene_len_frames or self._min_scene_len_frames
        cuts: list[int] = []
        previous = resumed(Stage.SCENES)
        if previous and previous.done > 0:
            cuts = [int(c) for c in previous.resume.get("cuts", [])]
            # Start before the heartbeated frame: the detector needs the frame before a
            # cut, and ignores cuts within min_scene_len of where it starts. Cuts found
            # again in the overlap are merged below.
            video.seek(max(0, previous.done - min_scene_len - 1))
            log().info("scenes.resumed", from_frame=previous.done, cuts=len(cuts))

        manager = SceneManager()
        manager.auto_downscale = True
        manager.add_detector(
            ContentDetector(
                threshold=input.threshold or self._threshold,
                min_scene_len=min_scene_len,
            )
        )

        def cuts_so_far() -> list[int]:
            found = cuts + [start.frame_num for start, _ in manager.get_scene_list()[1:]]
            return sorted(set(found))

        chunk = max(1, round(CHUNK_SECONDS * fps))
        while True:
            processed = manager.detect_scenes(video=video, duration=chunk)
            position = video.frame_number
            found = cuts_so_far()
            report(
                ActivityProgress(
                    stage=Stage.SCENES,
                    fraction=min(position / total, 1.0) if total else 0.0,
                    done=position,
                    total=total,
                    unit="frames",
                    resume={"cuts": found},
                )
            )
            if processed < chunk:
                break
        all_cuts = cuts_so_far()
        # Scenes end where decoding really ended: a truncated file claims more.
        end_frame = video.frame_number
        if end_frame <= 0:
            raise ApplicationError(
                "scenes: no frame could be decoded",
                type=ErrorKind.CORRUPT_MEDIA,
                non_retryable=True,
            )
        scenes = spans_from_cuts(all_cuts, end_frame, fps)
        log().info("scenes.detected", count=len(scenes), frames=end_frame, fps=fps)
        return DetectScenesResult(
            fps=fps, scenes=scenes, decoded_frames=end_frame, expected_frames=total
        )
