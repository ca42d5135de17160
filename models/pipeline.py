"""Inputs and results of the workflow and its activities. Only paths relative to an
item's workspace and small JSON travel through Temporal, never media bytes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from models.errors import ErrorInfo
from models.jobs import (
    ItemResult,
    ItemState,
    JobOptions,
    KeyFrame,
    MediaMetadata,
    Stage,
    StageProgress,
    TextLine,
    Transcript,
)


class JobInput(BaseModel):
    """Input of ``MediaJobWorkflow``: the submitted links, resolved into items."""

    urls: list[str]
    options: JobOptions = Field(default_factory=JobOptions)
    max_parallel_items: int = 4
    max_items_per_link: int = 20
    heartbeat_timeout_s: float = Field(
        30.0, description="How soon a compute stage of a dead worker is retried."
    )
    pinned_schedule_to_start_s: float | None = Field(
        None,
        description="How long a pinned stage waits for the worker holding the item's files "
        "before the item is placed on another worker; None: the stage policy's limit.",
    )


class MediaRef(BaseModel):
    """One media item a link resolved to."""

    source_url: str = Field(description="The link as submitted.")
    url: str = Field(description="What to download: the link itself, or an entry's media URL.")
    kind: Literal["video", "image"] = "video"
    title: str | None = None
    title_is_file_name: bool = Field(
        False,
        description="The title is only the link's file name (a direct link to a file); "
        "a title the file's own tags give is used instead.",
    )


class ResolveInput(BaseModel):
    url: str
    max_items: int = 20


class ResolveResult(BaseModel):
    items: list[MediaRef]
    extractor: str | None = None
    dropped: int = Field(0, description="Entries over the per-link cap, not processed.")


class ItemInput(BaseModel):
    """Input of ``MediaItemWorkflow``: one item of a job."""

    job_id: str
    index: int
    media: MediaRef
    options: JobOptions = Field(default_factory=JobOptions)
    notes: list[str] = Field(default_factory=list)
    heartbeat_timeout_s: float = 30.0
    pinned_schedule_to_start_s: float | None = None


class ItemOutcome(BaseModel):
    """What ``MediaItemWorkflow`` returns: small on purpose. The full ``ItemResult`` is in
    the artifact store, so a job of many items stays far below Temporal's limits."""

    index: int
    state: ItemState
    kind: str
    cached: bool = False
    error: ErrorInfo | None = None
    stages: list[Stage] | None = Field(
        None,
        description="The stages the item ran, where they differ from those planned for its "
        "kind (an animated image runs the video stages).",
    )
    stage: Stage | None = Field(
        None, description="The stage the item ended in: the one that failed, or done."
    )
    stages_ended: list[StageProgress] | None = Field(
        None,
        description="Each stage as the item ended (which succeeded, which failed, and why "
        "the last try before failed), for the job's status. None from items started by "
        "versions before it.",
    )


class CacheLookupInput(BaseModel):
    cache_key: str
    job_id: str
    index: int
    source_url: str
    title: str | None = Field(
        None,
        description="The title this link gives the media (a post's); it replaces the "
        "cached result's, which another link to the same file may have given.",
    )


class CacheLookupResult(BaseModel):
    hit: bool
    kind: str | None = None


class StoreResultInput(BaseModel):
    workspace: WorkspaceRef
    result: ItemResult
    keyframe_files: list[str] = Field(
        default_factory=list, description="Workspace JPEGs, in the order of the result's URLs."
    )
    cache_key: str | None = None
    remove_workspace: bool = Field(
        False,
        description="Remove the item's workspace once its result is stored: the item's last "
        "step on its files, so no separate clean-up step follows.",
    )
    transcript_file: str | None = Field(
        None,
        description="Workspace file holding the item's whole transcript (``TranscribeResult."
        "transcript_file``): the store puts it in the result in place of ``result.transcript``.",
    )


class StoreResult(BaseModel):
    workspace_removed: bool = False


class FetchImageInput(BaseModel):
    workspace: WorkspaceRef
    url: str


class FetchImageResult(BaseModel):
    image_file: str
    metadata: MediaMetadata
    animation_file: str | None = Field(
        None,
        description="Set when the image moves: the file the video stages read, as fetched "
        "(GIF, APNG) or its frames as H.264 (WebP, which FFmpeg cannot decode). None for "
        "a still.",
    )
    notes: list[str] = Field(default_factory=list, description="What the item's result should say.")


class WorkspaceRef(BaseModel):
    """Names an item's workspace; the worker resolves it under its own data dir."""

    job_id: str
    item_index: int


class RouteResult(BaseModel):
    """Which task queue holds the disk an item's files will live on."""

    task_queue: str


class DownloadInput(BaseModel):
    workspace: WorkspaceRef
    url: str


class DownloadResult(BaseModel):
    media_file: str = Field(description="File name inside the workspace.")
    title: str | None = None
    extractor: str | None = None
    size_bytes: int


class ProbeInput(BaseModel):
    workspace: WorkspaceRef
    media_file: str
    title: str | None = None
    title_is_file_name: bool = Field(
        False, description="``title`` is a file name: the file's own title tag wins."
    )


class ProbeResult(BaseModel):
    metadata: MediaMetadata
    has_video: bool
    frame_count: int | None = None
    cover_picture: bool = Field(
        False, description="The file holds a cover picture (an audio file's cover art)."
    )
    audio_tracks: int = Field(
        1, description="Audio streams in the file; the first is the one transcribed."
    )


class DetectScenesInput(BaseModel):
    workspace: WorkspaceRef
    media_file: str
    threshold: float | None = Field(None, description="None: the worker's setting.")
    min_scene_len_frames: int | None = Field(None, description="None: the worker's setting.")
    keyframes: bool = Field(
        False,
        description="Also pick and write each scene's key frame in the same decode "
        "(``extract_keyframes`` then has nothing left to do).",
    )
    transcription_beside: bool = Field(
        True,
        description="Whether the item's transcription runs at the same time; the worker "
        "sizes its decoding threads by it.",
    )
    duration_s: float | None = Field(
        None,
        description="The media's length as probed, for progress where the video stream "
        "does not give its own (a browser's WebM recording).",
    )
    text_read_after: bool = Field(
        False,
        description="Whether OCR reads the key frames after the pass: the worker may read "
        "them as they are written, on CPU the pass leaves (``activities.ocr.ReadAhead``).",
    )
    ocr_engine: str | None = Field(
        None, description="The engine OCR reads them with; None: the worker's default."
    )


class SceneSpan(BaseModel):
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float


class KeyframeFile(BaseModel):
    scene_index: int
    keyframe: KeyFrame
    image_file: str = Field(description="JPEG file name inside the workspace.")


class DetectScenesResult(BaseModel):
    fps: float
    scenes: list[SceneSpan]
    decoded_frames: int = 0
    expected_frames: int | None = Field(None, description="What the container claims.")
    keyframes: list[KeyframeFile] | None = Field(
        None, description="Set when the input asked for key frames; None otherwise."
    )


class ExtractKeyframesInput(BaseModel):
    workspace: WorkspaceRef
    media_file: str
    fps: float
    scenes: list[SceneSpan]


class ExtractKeyframesResult(BaseModel):
    keyframes: list[KeyframeFile]


class OcrInput(BaseModel):
    workspace: WorkspaceRef
    keyframes: list[KeyframeFile]
    engine: str | None = None


class FrameText(BaseModel):
    scene_index: int
    lines: list[TextLine]
    frame: int | None = Field(
        None, description="The key frame's frame number; None from older workers."
    )


class OcrResult(BaseModel):
    engine: str
    frames: list[FrameText]


class TranscribeInput(BaseModel):
    workspace: WorkspaceRef
    media_file: str
    duration_s: float | None = None
    has_audio: bool = True
    model: str | None = None
    language: str | None = None
    transcript_file: str | None = Field(
        None,
        description="Write the whole transcript to this workspace file, and return it "
        "without its text and segments: a long talk's words outgrow a Temporal payload.",
    )


class TranscribeResult(BaseModel):
    transcript: Transcript = Field(
        description="The transcript; with ``transcript_file`` set, only its language and note."
    )
    model: str
    transcript_file: str | None = Field(
        None, description="Workspace file holding the whole transcript, where one was asked for."
    )


class CleanupResult(BaseModel):
    removed: bool


class ActivityProgress(BaseModel):
    """Heartbeat details of every long activity: what a status reader shows, plus
    ``resume``, the activity's own state for picking up where a failed attempt stopped."""

    stage: Stage
    fraction: float = Field(0.0, ge=0.0, le=1.0)
    done: int = 0
    total: int | None = None
    unit: str = ""
    resume: dict[str, Any] = Field(default_factory=dict)
    waiting_s: int | None = Field(
        None,
        description="Seconds since ``done`` last changed, once that is a while: a download "
        "from a server that stopped sending. Set by the step's keep-alive heartbeats.",
    )

    def describe(self) -> str:
        """What a status reader shows: '1.5 MiB of 20 MiB', '120/480 frames', and how
        long nothing has moved, where that is a while."""
        if self.unit == "bytes":
            text = size_in_words(self.done)
            if self.total:
                text += f" of {size_in_words(self.total)}"
        elif self.total:
            text = f"{self.done}/{self.total} {self.unit}".strip()
        else:
            text = f"{self.done} {self.unit}".strip()
        if self.waiting_s:
            text += f"; no progress for {self.waiting_s} s"
        return text


def size_in_words(count: int) -> str:
    """A byte count as a person reads it: '2 GiB', '300 MiB', '4,096 bytes'."""
    for unit, size in (("PiB", 1024**5), ("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count:,} bytes"
