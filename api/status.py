"""A job's status from Temporal's describe call alone: the memo the workflow keeps
current, plus the heartbeat details of its running activities. It needs no worker,
so it answers while every worker is down or busy."""

from __future__ import annotations

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from models.errors import ErrorInfo, ErrorKind
from models.jobs import ItemState, JobState, JobStatus, Stage, item_progress, job_progress
from models.pipeline import ActivityProgress
from workflows import STATUS_MEMO_KEY

_CLOSED_STATES = {
    WorkflowExecutionStatus.CANCELED: JobState.CANCELLED,
    WorkflowExecutionStatus.FAILED: JobState.FAILED,
    WorkflowExecutionStatus.TERMINATED: JobState.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: JobState.FAILED,
}


async def describe(client: Client, job_id: str) -> WorkflowExecutionDescription | None:
    """The workflow's description, or None when there is no such job."""
    try:
        return await client.get_workflow_handle(job_id).describe()
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            return None
        raise


async def status_from_description(
    client: Client, job_id: str, desc: WorkflowExecutionDescription
) -> JobStatus:
    memo = await desc.memo()
    raw = memo.get(STATUS_MEMO_KEY)
    status = JobStatus.model_validate(raw) if raw else JobStatus(job_id=job_id)
    status.job_id = job_id

    if desc.status == WorkflowExecutionStatus.RUNNING:
        status.state = JobState.RUNNING
        await _merge_running_activities(client, status, desc)
    elif desc.status in _CLOSED_STATES:
        status.state = _CLOSED_STATES[desc.status]
        for item in status.items:
            if item.state in (ItemState.PENDING, ItemState.RUNNING):
                item.state = (
                    ItemState.CANCELLED if status.state == JobState.CANCELLED else ItemState.FAILED
                )
                if item.error is None and status.state != JobState.CANCELLED:
                    item.error = ErrorInfo(
                        type=ErrorKind.INTERNAL,
                        message=f"the job ended ({desc.status.name.lower()}) before this item "
                        "finished; resubmit it",
                    )
    for item in status.items:
        if item.state in (ItemState.PENDING, ItemState.RUNNING):
            item.progress = item_progress(item.stages)
        else:
            item.progress = 1.0
    status.progress = 1.0 if status.state != JobState.RUNNING else job_progress(status.items)
    return status


async def _merge_running_activities(
    client: Client, status: JobStatus, desc: WorkflowExecutionDescription
) -> None:
    """Fill in progress within running activities, their attempts and last failures."""
    for pending in desc.raw_description.pending_activities:
        index_text, _, stage_text = pending.activity_id.partition(".")
        if not index_text.isdigit() or int(index_text) >= len(status.items):
            continue
        item = status.items[int(index_text)]
        stage = next((s for s in item.stages if s.stage.value == stage_text), None)
        if stage is None:
            continue
        progress: ActivityProgress | None = None
        if pending.heartbeat_details.payloads:
            details = await client.data_converter.decode(pending.heartbeat_details.payloads)
            try:
                progress = ActivityProgress.model_validate(details[0]) if details else None
            except ValueError:
                progress = None
        stage.state = ItemState.RUNNING
        if progress is not None:
            stage.progress = progress.fraction
            stage.detail = progress.describe()
        stage.attempt = pending.attempt
        if pending.HasField("last_failure") and pending.last_failure.message:
            stage.last_failure = pending.last_failure.message
        if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED and (
            pending.attempt > 1
        ):
            stage.detail = f"waiting to retry (attempt {pending.attempt})"
        if item.stage in (Stage.QUEUED, Stage.DONE):
            item.stage = stage.stage
