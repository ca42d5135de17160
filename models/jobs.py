"""The public v1 contract: requests, status and results. Fields are only ever added."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from models.errors import ErrorInfo
from models.links import Shown


class JobState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIALLY_SUCCEEDED = "partially_succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ItemState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Stage(StrEnum):
    """Pipeline stages, in the order an item meets them (transcribe runs beside the
    vision stages scenes → keyframes → ocr)."""

    QUEUED = "queued"
    RESOLVE = "resolve"
    DOWNLOAD = "download"
    PROBE = "probe"
    SCENES = "scenes"
    KEYFRAMES = "keyframes"
    OCR = "ocr"
    TRANSCRIBE = "transcribe"
    CLEANUP = "cleanup"
    DONE = "done"


class StageSwitches(BaseModel):
    """Which optional stages run. Download and probe always run."""

    model_config = ConfigDict(extra="forbid")

    scenes: bool = True
    ocr: bool = Field(True, description="Needs scenes: OCR reads each scene's key frames.")
    transcript: bool = True


class JobOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stages: StageSwitches = Field(default_factory=StageSwitches)
    ocr_engine: Literal["paddleocr", "rapidocr"] | None = Field(
        None,
        description="`paddleocr` or `rapidocr`; default from the worker's settings.",
        examples=["paddleocr"],
    )
    whisper_model: str | None = Field(
        None,
        description="A Whisper model name the worker knows; default from its settings.",
        examples=["tiny.en"],
    )
    language: str | None = Field(
        None,
        description="Spoken language code; None lets a multilingual model detect it.",
        examples=["en"],
    )
    refresh: bool = Field(
        False, description="Process again even if a cached result for this media exists."
    )


class JobRequest(BaseModel):
    """`POST /v1/jobs` body: one link in `url`, or several in `urls` (a batch)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "https://example.com/clip.mp4"},
                {
                    "urls": ["https://example.com/a.mp4", "https://example.com/post/123"],
                    "options": {"stages": {"transcript": False}},
                },
            ]
        },
    )

    url: HttpUrl | None = Field(
        None, description="A video link: a direct file, a post, or any page yt-dlp supports."
    )
    urls: list[HttpUrl] | None = Field(
        None, description="Several links, processed as one job.", min_length=1
    )
    options: JobOptions = Field(default_factory=JobOptions)

    @model_validator(mode="after")
    def _one_of_url_or_urls(self) -> JobRequest:
        if (self.url is None) == (self.urls is None):
            raise ValueError("give exactly one of `url` (one link) or `urls` (a batch)")
        return self

    @property
    def links(self) -> list[str]:
        return [str(self.url)] if self.url is not None else [str(u) for u in self.urls or []]


class JobAccepted(BaseModel):
    job_id: str = Field(examples=["job-3f9c2a1b7d8e4f60"])
    status_url: str = Field(examples=["/v1/jobs/job-3f9c2a1b7d8e4f60"])
    result_url: str = Field(examples=["/v1/jobs/job-3f9c2a1b7d8e4f60/result"])


class StageProgress(BaseModel):
    stage: Stage
    state: ItemState
    progress: float = Field(0.0, ge=0.0, le=1.0)
    detail: str | None = Field(None, description="What is done, e.g. '120/480 frames'.")
    attempt: int | None = Field(None, description="Activity attempt, when running.")
    last_failure: Shown | None = Field(None, description="Why the previous attempt failed.")


class ItemStatus(BaseModel):
    index: int
    source_url: Shown
    kind: str | None = Field(None, description="`video` or `image`, once the link is resolved.")
    media_url: Shown | None = Field(None, description="What is downloaded for this item.")
    cached: bool = False
    workflow_id: str | None = Field(None, description="The item's own workflow, for the UI.")
    state: ItemState = ItemState.PENDING
    stage: Stage = Stage.QUEUED
    progress: float = Field(0.0, ge=0.0, le=1.0)
    error: ErrorInfo | None = None
    stages: list[StageProgress] = Field(default_factory=list)


class JobStatus(BaseModel):
    """`GET /v1/jobs/{job_id}` body, and the `progress` workflow query's result."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "job-3f9c2a1b7d8e4f60",
                    "state": "running",
                    "progress": 0.42,
                    "items": [
                        {
                            "index": 0,
                            "source_url": "https://example.com/clip.mp4",
                            "kind": "video",
                            "media_url": "https://example.com/clip.mp4",
                            "cached": False,
                            "workflow_id": "job-3f9c2a1b7d8e4f60.0",
                            "state": "running",
                            "stage": "ocr",
                            "progress": 0.42,
                            "error": None,
                            "stages": [
                                {
                                    "stage": "ocr",
                                    "state": "running",
                                    "progress": 0.25,
                                    "detail": "1/4 frames",
                                    "attempt": 1,
                                    "last_failure": None,
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )

    job_id: str
    state: JobState = JobState.RUNNING
    progress: float = Field(0.0, ge=0.0, le=1.0)
    items: list[ItemStatus] = Field(default_factory=list)


class MediaMetadata(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "clip",
                    "duration_s": 16.0,
                    "width": 854,
                    "height": 480,
                    "fps": 30.0,
                    "has_audio": True,
                    "video_codec": "h264",
                    "audio_codec": "aac",
                    "size_bytes": 258773,
                }
            ]
        }
    )

    title: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    has_audio: bool = False
    video_codec: str | None = None
    audio_codec: str | None = None
    size_bytes: int | None = None


class KeyFrame(BaseModel):
    time_s: float
    frame: int
    url: str | None = Field(
        None, description="The JPEG, e.g. /v1/jobs/{job_id}/items/0/keyframes/1.jpg."
    )


class TextLine(BaseModel):
    """One line of on-screen text read by OCR."""

    text: str
    confidence: float
    box: list[list[float]] = Field(description="Polygon in pixels, clockwise from top-left.")
    time_s: float = Field(description="Time of the key frame the line was read from.")


class Scene(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "index": 1,
                    "start_s": 4.0,
                    "end_s": 8.0,
                    "start_frame": 120,
                    "end_frame": 240,
                    "keyframes": [
                        {
                            "time_s": 5.4,
                            "frame": 162,
                            "url": "/v1/jobs/job-3f9c2a1b7d8e4f60/items/0/keyframes/1.jpg",
                        }
                    ],
                    "text": [
                        {
                            "text": "OPEN SOURCE VIDEO",
                            "confidence": 0.997,
                            "box": [[206, 304], [643, 304], [643, 344], [206, 344]],
                            "time_s": 5.4,
                        }
                    ],
                }
            ]
        }
    )

    index: int
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int = Field(description="Exclusive: the first frame of the next scene.")
    keyframes: list[KeyFrame] = Field(default_factory=list)
    text: list[TextLine] = Field(default_factory=list)


class TranscriptWord(BaseModel):
    start_s: float
    end_s: float
    word: str
    probability: float


class TranscriptSegment(BaseModel):
    start_s: float
    end_s: float
    text: str
    words: list[TranscriptWord] = Field(default_factory=list)


class Transcript(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "language": "en",
                    "text": "Welcome to the sample video.",
                    "note": None,
                    "segments": [
                        {
                            "start_s": 0.0,
                            "end_s": 1.9,
                            "text": "Welcome to the sample video.",
                            "words": [
                                {
                                    "start_s": 0.0,
                                    "end_s": 0.52,
                                    "word": "Welcome",
                                    "probability": 0.64,
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )

    language: str | None = None
    text: str = ""
    segments: list[TranscriptSegment] = Field(default_factory=list)
    note: str | None = Field(
        None, description="Why the transcript is empty, when it is; audio it leaves out."
    )


class ItemResult(BaseModel):
    index: int
    source_url: Shown
    media_url: Shown | None = None
    cached: bool = Field(False, description="Served from the result cache; nothing ran.")
    kind: str = Field("video", description="`video` or `image`.")
    state: ItemState
    error: ErrorInfo | None = None
    metadata: MediaMetadata | None = None
    scenes: list[Scene] = Field(default_factory=list)
    transcript: Transcript | None = None
    text: list[TextLine] = Field(
        default_factory=list,
        description="Text read on an image item (videos: per scene; an animated image: per "
        "scene, and every distinct line here too).",
    )
    notes: list[str] = Field(default_factory=list, description="Stages skipped, and why.")


class JobResult(BaseModel):
    """`GET /v1/jobs/{job_id}/result` body, and the workflow's return value."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "job-3f9c2a1b7d8e4f60",
                    "state": "partially_succeeded",
                    "items": [
                        {
                            "index": 0,
                            "source_url": "https://example.com/clip.mp4",
                            "kind": "video",
                            "state": "succeeded",
                            "cached": False,
                            "error": None,
                            "scenes": [],
                            "transcript": None,
                            "notes": [],
                        },
                        {
                            "index": 1,
                            "source_url": "https://example.com/gone.mp4",
                            "kind": "video",
                            "state": "failed",
                            "cached": False,
                            "error": {
                                "type": "NotFound",
                                "message": "resolve: the server answered 404 for "
                                "https://example.com/gone.mp4; check that the link is correct",
                            },
                        },
                    ],
                }
            ]
        }
    )

    job_id: str
    state: JobState
    items: list[ItemResult]


#: How much of an item's work each stage is, for the 0..1 progress figure.
STAGE_WEIGHTS: dict[Stage, float] = {
    Stage.DOWNLOAD: 0.15,
    Stage.PROBE: 0.05,
    Stage.SCENES: 0.2,
    Stage.KEYFRAMES: 0.1,
    Stage.OCR: 0.2,
    Stage.TRANSCRIBE: 0.3,
}


def item_progress(stages: list[StageProgress]) -> float:
    """Weighted share of an item's stages done; skipped stages count as done."""
    total = sum(STAGE_WEIGHTS.get(s.stage, 0.0) for s in stages)
    if total == 0:
        return 0.0
    done = 0.0
    for s in stages:
        weight = STAGE_WEIGHTS.get(s.stage, 0.0)
        if s.state in (ItemState.SUCCEEDED, ItemState.FAILED, ItemState.CANCELLED):
            done += weight
        elif s.state == ItemState.RUNNING:
            done += weight * s.progress
    return round(min(done / total, 1.0), 4)


def job_progress(items: list[ItemStatus]) -> float:
    if not items:
        return 0.0
    return round(sum(i.progress for i in items) / len(items), 4)
