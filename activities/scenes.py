"""Scene cuts with PySceneDetect, in chunks, heartbeating between chunks.

The default detector is PySceneDetect's AdaptiveDetector (a frame's change against
the average change of its neighbours), which keeps cuts between similar-looking shots
that a fixed ContentDetector threshold misses, and ignores camera motion. A transient
filter then drops "cuts" where the picture comes back a few frames later: flashes and
one-frame glitches. See docs/quality.md for the numbers behind these choices.
"""

from __future__ import annotations

from collections import deque
from itertools import pairwise

import cv2
import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode, SceneManager, open_video
from scenedetect.backends.opencv import VideoOpenFailure
from scenedetect.detector import SceneDetector
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.progress import cancellation_wins, log, report, resumed
from activities.workspace import Workspaces
from models.errors import ErrorKind
from models.jobs import Stage
from models.pipeline import ActivityProgress, DetectScenesInput, DetectScenesResult, SceneSpan

#: Seconds of video between heartbeats.
CHUNK_SECONDS = 10.0
#: How long after a cut the picture is compared with the one before it.
SETTLE_SECONDS = 0.12
#: At most this much change (the detectors' HSV score, 0-255) between the frame before
#: a cut and the one after it settles means the picture came back: not a cut.
RETURN_SCORE = 15.0


def _hsv(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)


def hsv_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two HSV frames over their three channels."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


class TransientFilter(SceneDetector):
    """Wraps a detector. A cut it reports at frame c is kept only if frame c + settle
    still differs from frame c - 1; confirmed cuts collect in ``cuts``."""

    def __init__(self, inner: SceneDetector, settle_frames: int) -> None:
        super().__init__()
        self.inner = inner
        self.settle = settle_frames
        self.recent: deque[tuple[int, np.ndarray]] = deque(
            maxlen=settle_frames + inner.event_buffer_length + 2
        )
        self.pending: list[tuple[int, np.ndarray | None]] = []
        self.cuts: list[int] = []
        self.dropped = 0

    def process_frame(self, timecode: FrameTimecode, frame_img: np.ndarray) -> list[FrameTimecode]:
        number = timecode.frame_num
        # Frames are kept as they come (already downscaled); only the two frames of a
        # candidate cut are converted, so the filter costs nothing between cuts.
        self.recent.append((number, frame_img))
        for cut in self.inner.process_frame(timecode, frame_img):
            before = next((img for n, img in self.recent if n == cut.frame_num - 1), None)
            self.pending.append((cut.frame_num, before))
        waiting = []
        for cut, before in self.pending:
            if number < cut + self.settle:
                waiting.append((cut, before))
            elif before is not None and hsv_change(_hsv(before), _hsv(frame_img)) <= RETURN_SCORE:
                self.dropped += 1
            else:
                self.cuts.append(cut)
        self.pending = waiting
        return []

    def finish(self) -> None:
        """At the end of the video: cuts too close to the end to check are kept."""
        self.cuts += [cut for cut, _ in self.pending]
        self.pending = []

    @property
    def event_buffer_length(self) -> int:
        return self.inner.event_buffer_length

    def get_metrics(self) -> list[str]:
        return self.inner.get_metrics()


def make_detector(kind: str, threshold: float, min_scene_len: int) -> SceneDetector:
    if kind == "content":
        return ContentDetector(threshold=threshold, min_scene_len=min_scene_len)
    return AdaptiveDetector(min_scene_len=min_scene_len)


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
    def __init__(
        self,
        workspaces: Workspaces,
        threshold: float,
        min_scene_len_frames: int,
        detector: str = "adaptive",
    ) -> None:
        self._workspaces = workspaces
        self._threshold = threshold
        self._min_scene_len_frames = min_scene_len_frames
        self._detector = detector

    @activity.defn(name="detect_scenes")
    def detect_scenes(self, input: DetectScenesInput) -> DetectScenesResult:
        """See ``_detect_scenes``; a cancel always ends it as a cancellation."""
        with cancellation_wins():
            return self._detect_scenes(input)

    def _detect_scenes(self, input: DetectScenesInput) -> DetectScenesResult:
        """Hard cuts (see the module) with auto-downscale. A retry seeks to the frame
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
        detector = TransientFilter(
            make_detector(self._detector, input.threshold or self._threshold, min_scene_len),
            settle_frames=max(2, round(SETTLE_SECONDS * fps)),
        )
        manager.add_detector(detector)

        def cuts_so_far() -> list[int]:
            return sorted(set(cuts + detector.cuts))

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
        detector.finish()
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
        log().info(
            "scenes.detected",
            count=len(scenes),
            frames=end_frame,
            fps=fps,
            transients_dropped=detector.dropped,
        )
        return DetectScenesResult(
            fps=fps, scenes=scenes, decoded_frames=end_frame, expected_frames=total
        )
