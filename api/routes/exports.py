"""Subtitles and key-frame images of a finished item."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Response
from fastapi.responses import PlainTextResponse

from api.deps import StoreDep
from api.exports import to_srt, to_vtt
from models.errors import ErrorInfo
from models.jobs import ItemResult
from reelscope.artifacts import keyframe_key, result_key

router = APIRouter(prefix="/v1/jobs/{job_id}/items/{index}", tags=["exports"])

JobId = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _missing(message: str) -> HTTPException:
    return HTTPException(404, detail=ErrorInfo(type="NotFound", message=message).model_dump())


def _item(store: StoreDep, job_id: str, index: int) -> ItemResult:
    raw = store.read_bytes(result_key(job_id, index))
    if raw is None:
        raise _missing(
            f"no finished item {index} in job {job_id!r} (still running, failed "
            "before a result, expired, or never existed)"
        )
    return ItemResult.model_validate_json(raw)


def _transcript_of(item: ItemResult, job_id: str):  # -> Transcript
    if item.transcript is None or not item.transcript.segments:
        why = item.transcript.note if item.transcript else "transcription did not run"
        raise _missing(f"item {item.index} of {job_id} has no transcript: {why}")
    return item.transcript


@router.get(
    "/transcript.srt",
    response_class=PlainTextResponse,
    summary="The transcript as SubRip subtitles",
)
async def transcript_srt(store: StoreDep, index: int, job_id: str = JobId) -> PlainTextResponse:
    transcript = _transcript_of(_item(store, job_id, index), job_id)
    return PlainTextResponse(to_srt(transcript), media_type="application/x-subrip")


@router.get(
    "/transcript.vtt",
    response_class=PlainTextResponse,
    summary="The transcript as WebVTT subtitles",
)
async def transcript_vtt(store: StoreDep, index: int, job_id: str = JobId) -> PlainTextResponse:
    transcript = _transcript_of(_item(store, job_id, index), job_id)
    return PlainTextResponse(to_vtt(transcript), media_type="text/vtt")


@router.get(
    "/keyframes/{number}.jpg",
    summary="A key frame, as listed in the result",
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def keyframe(store: StoreDep, index: int, number: int, job_id: str = JobId) -> Response:
    if index < 0 or number < 0:
        raise _missing("no such key frame")
    data = store.read_bytes(keyframe_key(job_id, index, number))
    if data is None:
        raise _missing(f"no key frame {number} for item {index} of {job_id} (or it expired)")
    return Response(data, media_type="image/jpeg")
