"""Key frames: the sharpest of a few candidate frames in each scene, saved as JPEG."""

from __future__ import annotations

import contextlib
from pathlib import Path

import cv2
import numpy as np
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heap import HEAP
from activities.progress import cancellation_wins, log, report, resumed
from activities.workspace import Workspaces
from models.errors import ErrorKind
from models.jobs import KeyFrame, Stage
from models.pipeline import (
    ActivityProgress,
    ExtractKeyframesInput,
    ExtractKeyframesResult,
    KeyframeFile,
)

#: Where in a scene candidates are taken, as fractions of its length.
CANDIDATE_POSITIONS = (0.35, 0.5, 0.65)
#: A candidate at most this many seconds ahead is reached by decoding forward; a seek
#: restarts decoding at the previous key frame, which costs more than a short skip.
SKIP_AHEAD_S = 3.0


class FrameReader:
    """Reads frames by number from a capture, in increasing order where possible."""

    def __init__(self, capture: cv2.VideoCapture, fps: float) -> None:
        self.capture = capture
        self.skip_limit = max(1, round(SKIP_AHEAD_S * fps))

    def read(self, frame_no: int) -> np.ndarray | None:
        position = int(self.capture.get(cv2.CAP_PROP_POS_FRAMES))
        if not 0 <= frame_no - position <= self.skip_limit:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, frame_no)
        else:
            # The position can advance by more than one per grab on variable frame
            # rate video (OpenCV counts time at the average rate), hence the check.
            while position < frame_no:
                if not self.capture.grab():
                    return None
                position = int(self.capture.get(cv2.CAP_PROP_POS_FRAMES))
        ok, image = self.capture.read()
        return image if ok else None


def candidate_frames(start_frame: int, end_frame: int) -> list[int]:
    """The frames of scene [start_frame, end_frame) that are key-frame candidates."""
    length = end_frame - start_frame
    frames = {start_frame + int(length * p) for p in CANDIDATE_POSITIONS}
    return sorted(f for f in frames if start_frame <= f < end_frame)


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian: higher for crisp frames, lower for blur and fades."""
    return grey_sharpness(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))


def grey_sharpness(grey: np.ndarray) -> float:
    """``sharpness`` of a one-channel image (a grey frame, or a frame's luma plane)."""
    # 16-bit holds a 3x3 Laplacian of 8-bit pixels exactly, and is far cheaper than float.
    # Its sum and sum of squares are whole numbers well below 2**53, so OpenCV's doubles
    # hold them exactly; from them the variance costs a third of ``cv2.meanStdDev`` on
    # 16-bit (1.1 against 3.3 ms for a 1080p frame) and agrees with it to 1e-15.
    laplacian = cv2.Laplacian(grey, cv2.CV_16S)
    pixels = laplacian.size
    mean = cv2.sumElems(laplacian)[0] / pixels
    return float(cv2.norm(laplacian, cv2.NORM_L2SQR) / pixels - mean * mean)


def write_jpeg(path: Path, image: np.ndarray, quality: int = 92) -> None:
    """Writes ``image`` to ``path`` as a JPEG (side effect: the file). A failed write
    raises, a full disk's ``OSError`` among them, where ``cv2.imwrite`` only returns
    False; it leaves no partial file behind."""
    encoded, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not encoded:
        raise ValueError(f"a {image.shape} picture could not be encoded as a JPEG")
    try:
        path.write_bytes(data.tobytes())
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


class FrameActivities:
    def __init__(self, workspaces: Workspaces) -> None:
        self._workspaces = workspaces

    @activity.defn(name="extract_keyframes")
    def extract_keyframes(self, input: ExtractKeyframesInput) -> ExtractKeyframesResult:
        """See ``_extract_keyframes``; a cancel always ends it as a cancellation."""
        with HEAP.stage(), cancellation_wins():
            return self._extract_keyframes(input)

    def _extract_keyframes(self, input: ExtractKeyframesInput) -> ExtractKeyframesResult:
        """One key frame per scene, written as ``keyframes/scene-NNNN.jpg`` in the
        workspace. A retry keeps the frames an earlier attempt reported."""
        path = self._workspaces.file(input.workspace, input.media_file)
        out_dir = self._workspaces.file(input.workspace, "keyframes")
        out_dir.mkdir(exist_ok=True)
        done: list[KeyframeFile] = []
        previous = resumed(Stage.KEYFRAMES)
        if previous:
            for raw in previous.resume.get("keyframes", []):
                kf = KeyframeFile.model_validate(raw)
                if self._workspaces.file(input.workspace, kf.image_file).is_file():
                    done.append(kf)
        finished = {kf.scene_index for kf in done}

        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise ApplicationError(
                "keyframes: the video cannot be opened for decoding",
                type=ErrorKind.CORRUPT_MEDIA,
                non_retryable=True,
            )
        reader = FrameReader(capture, input.fps)
        try:
            for index, scene in enumerate(input.scenes):
                if index in finished:
                    continue
                best: tuple[float, int, np.ndarray] | None = None
                for frame_no in candidate_frames(scene.start_frame, scene.end_frame):
                    image = reader.read(frame_no)
                    if image is None:
                        continue
                    score = sharpness(image)
                    if best is None or score > best[0]:
                        best = (score, frame_no, image)
                if best is not None:
                    name = f"keyframes/scene-{index:04d}.jpg"
                    write_jpeg(self._workspaces.file(input.workspace, name), best[2])
                    done.append(
                        KeyframeFile(
                            scene_index=index,
                            keyframe=KeyFrame(time_s=round(best[1] / input.fps, 3), frame=best[1]),
                            image_file=name,
                        )
                    )
                report(
                    ActivityProgress(
                        stage=Stage.KEYFRAMES,
                        fraction=(index + 1) / len(input.scenes),
                        done=index + 1,
                        total=len(input.scenes),
                        unit="scenes",
                        resume={"keyframes": [kf.model_dump() for kf in done]},
                    )
                )
        finally:
            capture.release()
        done.sort(key=lambda kf: kf.scene_index)
        log().info("keyframes.extracted", count=len(done), scenes=len(input.scenes))
        return ExtractKeyframesResult(keyframes=done)
