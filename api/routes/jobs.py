"""`/v1/jobs`: submit a link, poll its status, fetch its result."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import JSONResponse
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from api.deps import ClientDep, SettingsDep
from api.status import describe, status_from_description
from models.errors import ErrorInfo
from models.jobs import (
    ItemResult,
    ItemStatus,
    JobAccepted,
    JobRequest,
    JobResult,
    JobState,
    JobStatus,
    StageProgress,
)
from models.pipeline import JobInput
from workflows import STATUS_MEMO_KEY, WORKFLOW_NAME

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorInfo, "description": "No job with this id."}
}


def _not_found(job_id: str) -> HTTPException:
    return HTTPException(
        404, detail=ErrorInfo(type="NotFound", message=f"no job {job_id!r}").model_dump()
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    summary="Submit a link for processing",
)
async def submit_job(
    body: JobRequest, client: ClientDep, settings: SettingsDep, response: Response
) -> JobAccepted:
    job_id = f"job-{uuid.uuid4().hex[:16]}"
    url = str(body.url)
    job_input = JobInput(
        urls=[url], options=body.options, max_parallel_items=settings.max_parallel_items
    )
    # The memo starts with the planned status, so GET answers before any worker ran.
    initial = JobStatus(
        job_id=job_id,
        items=[
            ItemStatus(
                index=i,
                source_url=u,
                stages=[StageProgress.model_validate(s) for s in _planned(job_input)],
            )
            for i, u in enumerate(job_input.urls)
        ],
    )
    await client.start_workflow(
        WORKFLOW_NAME,
        job_input,
        id=job_id,
        task_queue=settings.task_queue,
        memo={STATUS_MEMO_KEY: initial.model_dump(mode="json")},
        static_summary=f"Reelscope job: {url}",
        static_details=f"**Link:** {url}\n\n**Options:** `{body.options.model_dump_json()}`",
    )
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return JobAccepted(
        job_id=job_id, status_url=f"/v1/jobs/{job_id}", result_url=f"/v1/jobs/{job_id}/result"
    )


def _planned(job_input: JobInput) -> list[dict[str, str]]:
    from workflows.media_job import MediaJobWorkflow

    return [s.model_dump(mode="json") for s in MediaJobWorkflow._planned_stages(job_input)]


@router.get(
    "/{job_id}",
    response_model=JobStatus,
    responses=_NOT_FOUND,
    summary="Status and progress of a job (answers with no worker running)",
)
async def get_job(job_id: str, client: ClientDep) -> JobStatus:
    desc = await describe(client, job_id)
    if desc is None:
        raise _not_found(job_id)
    return await status_from_description(client, job_id, desc)


@router.get(
    "/{job_id}/result",
    response_model=JobResult,
    responses={**_NOT_FOUND, 409: {"model": JobStatus, "description": "Still running."}},
    summary="The result of a finished job",
)
async def get_result(job_id: str, client: ClientDep) -> JobResult | JSONResponse:
    desc = await describe(client, job_id)
    if desc is None:
        raise _not_found(job_id)
    if desc.status == WorkflowExecutionStatus.RUNNING:
        running = await status_from_description(client, job_id, desc)
        return JSONResponse(status_code=409, content=running.model_dump(mode="json"))
    try:
        handle = client.get_workflow_handle(job_id, result_type=JobResult)
        result: JobResult = await handle.result()
        return result
    except WorkflowFailureError:
        # The workflow itself ended (cancelled, terminated): report what is known.
        final = await status_from_description(client, job_id, desc)
        return JobResult(
            job_id=job_id,
            state=final.state if final.state != JobState.RUNNING else JobState.FAILED,
            items=[
                ItemResult(index=i.index, source_url=i.source_url, state=i.state, error=i.error)
                for i in final.items
            ],
        )
