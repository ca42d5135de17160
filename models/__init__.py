"""Pydantic contracts shared by every layer. No I/O here."""

from __future__ import annotations

from models.errors import FINAL_ERROR_KINDS, ErrorInfo, ErrorKind
from models.jobs import (
    ItemResult,
    ItemState,
    ItemStatus,
    JobAccepted,
    JobOptions,
    JobRequest,
    JobResult,
    JobState,
    JobStatus,
    KeyFrame,
    MediaMetadata,
    Scene,
    Stage,
    StageProgress,
    StageSwitches,
    TextLine,
    Transcript,
    TranscriptSegment,
    TranscriptWord,
)

__all__ = [
    "FINAL_ERROR_KINDS",
    "ErrorInfo",
    "ErrorKind",
    "ItemResult",
    "ItemState",
    "ItemStatus",
    "JobAccepted",
    "JobOptions",
    "JobRequest",
    "JobResult",
    "JobState",
    "JobStatus",
    "KeyFrame",
    "MediaMetadata",
    "Scene",
    "Stage",
    "StageProgress",
    "StageSwitches",
    "TextLine",
    "Transcript",
    "TranscriptSegment",
    "TranscriptWord",
]
