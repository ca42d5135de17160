"""Error kinds a user can act on. Activities raise ``ApplicationError(type=kind)``
with these names; the API reports them as ``{"type", "message"}``."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from models.links import Shown


class ErrorKind(StrEnum):
    """Why an item failed. Every kind but ``Internal``, ``Timeout``, ``DiskFull`` and
    (when the cause is transient) ``DownloadFailed`` is final."""

    UNSUPPORTED_URL = "UnsupportedUrl"
    URL_NOT_ALLOWED = "UrlNotAllowed"
    NOT_FOUND = "NotFound"
    DOWNLOAD_FAILED = "DownloadFailed"
    MEDIA_TOO_LARGE = "MediaTooLarge"
    MEDIA_TOO_LONG = "MediaTooLong"
    DISK_QUOTA_EXCEEDED = "DiskQuotaExceeded"
    #: The worker's own disk, not the link: retried, since other items' files go.
    DISK_FULL = "DiskFull"
    CORRUPT_MEDIA = "CorruptMedia"
    NO_MEDIA = "NoMedia"
    NO_VIDEO_STREAM = "NoVideoStream"
    MODEL_UNAVAILABLE = "ModelUnavailable"
    TIMEOUT = "Timeout"
    CANCELLED = "Cancelled"
    INTERNAL = "Internal"


#: Kinds that no retry can fix: activity retry policies list them as non-retryable.
#: ``DownloadFailed`` is not among them: it covers both a refused link (raised with
#: ``non_retryable=True``) and a server that hiccuped (retried).
FINAL_ERROR_KINDS: list[str] = [
    k.value
    for k in ErrorKind
    if k
    not in (ErrorKind.INTERNAL, ErrorKind.TIMEOUT, ErrorKind.DOWNLOAD_FAILED, ErrorKind.DISK_FULL)
]


class ErrorInfo(BaseModel):
    """What failed and what to do about it."""

    type: str = Field(examples=["NotFound"])
    message: Shown = Field(
        examples=["download: the server answered 404 for http://example.com/a.mp4; check the link"]
    )
