"""`/v1/jobs`: submit links, poll status, fetch results, cancel."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Response, status
from fastapi.responses import JSONResponse
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.deps import ClientDep, SettingsDep, StoreDep
from models.errors import ErrorInfo
from models.jobs import JobAccepted, JobRequest, JobResult, JobState, JobStatus
from models.links import hide_passwords
from models.pipeline import JobInput
from reelscope.status import describe, job_result, job_status
from workflows import STATUS_MEMO_KEY, WORKFLOW_NAME
from workflows.media_job import initial_status

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

#: Memo key holding a hash of the request body, to tell an idempotent retry from a
#: different request that reuses a key.
REQUEST_MEMO_KEY = "request"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorInfo, "description": "No job with this id."}
}


def problem(code: int, kind: str, message: str) -> HTTPException:
    return HTTPException(code, detail=ErrorInfo(type=kind, message=message).model_dump())


def _accepted(job_id: str) -> JobAccepted:
    return JobAccepted(
        job_id=job_id, status_url=f"/v1/jobs/{job_id}", result_url=f"/v1/jobs/{job_id}/result"
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    summary="Submit one link or a batch",
    responses={422: {"description": "Malformed body, batch over the cap, or a reused key."}},
)
async def submit_job(
    body: JobRequest,
    client: ClientDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(description="Retries with the same key return the same job, starting nothing."),
    ] = None,
) -> JobAccepted:
    links = body.links
    if len(links) > settings.max_batch_urls:
        raise problem(
            422,
            "BatchTooLarge",
            f"{len(links)} links in one request; the limit is "
            f"{settings.max_batch_urls}. Split the batch into several jobs.",
        )
    request_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    if idempotency_key is not None:
        if not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise problem(
                422,
                "InvalidIdempotencyKey",
                "Idempotency-Key must be 1-200 visible ASCII characters",
            )
        job_id = "job-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
    else:
        job_id = f"job-{uuid.uuid4().hex[:16]}"
    job_input = JobInput(
        urls=links,
        options=body.options,
        max_parallel_items=settings.max_parallel_items,
        max_items_per_link=settings.max_items_per_link,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
        pinned_schedule_to_start_s=settings.pinned_schedule_to_start_s,
    )
    shown = [hide_passwords(link) for link in links]
    summary = shown[0] if len(shown) == 1 else f"{len(shown)} links: {shown[0]}, …"
    try:
        await client.start_workflow(
            WORKFLOW_NAME,
            job_input,
            id=job_id,
            task_queue=settings.task_queue,
            # A key maps to one job for as long as Temporal remembers it, even once done.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            memo={
                STATUS_MEMO_KEY: initial_status(job_id, job_input).model_dump(mode="json"),
                REQUEST_MEMO_KEY: request_hash,
            },
            static_summary=f"Reelscope job: {summary}",
            static_details="**Links:**\n\n"
            + "\n".join(f"- {u}" for u in shown)
            + f"\n\n**Options:** `{body.options.model_dump_json()}`",
        )
    except WorkflowAlreadyStartedError:
        if idempotency_key is None:
            raise
        existing = await describe(client, job_id)
        earlier = (await existing.memo()).get(REQUEST_MEMO_KEY) if existing else None
        if earlier != request_hash:
            raise problem(
                422,
                "IdempotencyKeyReused",
                "this Idempotency-Key was used for a different request; "
                "use a new key for a new request",
            ) from None
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return _accepted(job_id)


@router.get(
    "/{job_id}",
    response_model=JobStatus,
    responses=_NOT_FOUND,
    summary="Status and progress of a job (answers with no worker running)",
)
async def get_job(job_id: str, client: ClientDep) -> JobStatus:
    found = await job_status(client, job_id)
    if found is None:
        raise problem(404, "NotFound", f"no job {job_id!r}")
    return found


@router.get(
    "/{job_id}/result",
    response_model=JobResult,
    responses={**_NOT_FOUND, 409: {"model": JobStatus, "description": "Still running."}},
    summary="The result of a finished job, including its cancelled or failed items",
)
async def get_result(job_id: str, client: ClientDep, store: StoreDep) -> JobResult | JSONResponse:
    found = await job_status(client, job_id)
    if found is None:
        raise problem(404, "NotFound", f"no job {job_id!r}")
    if found.state == JobState.RUNNING:
        return JSONResponse(status_code=409, content=found.model_dump(mode="json"))
    return job_result(found, store)


async def _cancel(job_id: str, client: ClientDep) -> JSONResponse:
    desc = await describe(client, job_id)
    if desc is None:
        raise problem(404, "NotFound", f"no job {job_id!r}")
    if desc.status != WorkflowExecutionStatus.RUNNING:
        found = await job_status(client, job_id, desc)
        assert found is not None
        return JSONResponse(status_code=409, content=found.model_dump(mode="json"))
    await client.get_workflow_handle(job_id).cancel()
    found = await job_status(client, job_id)
    assert found is not None
    return JSONResponse(status_code=202, content=found.model_dump(mode="json"))


_CANCEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    202: {"model": JobStatus, "description": "Cancellation requested."},
    409: {"model": JobStatus, "description": "The job had already ended."},
}


@router.delete(
    "/{job_id}",
    status_code=202,
    response_model=JobStatus,
    responses=_CANCEL_RESPONSES,
    summary="Cancel a job",
)
async def cancel_job(job_id: str, client: ClientDep) -> JSONResponse:
    return await _cancel(job_id, client)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobStatus,
    responses=_CANCEL_RESPONSES,
    summary="Cancel a job (same as DELETE)",
)
async def cancel_job_post(job_id: str, client: ClientDep) -> JSONResponse:
    return await _cancel(job_id, client)
