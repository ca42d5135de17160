"""A job's status and result from Temporal's describe calls and the artifact store.

Nothing here needs a worker: the job and item workflows keep their status in their
memo, and running activities' heartbeat details (progress, attempt, last failure) come
with the item workflow's description. So status answers while workers are down or busy.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from models.errors import ErrorInfo, ErrorKind
from models.jobs import (
    ItemResult,
    ItemState,
    ItemStatus,
    JobResult,
    JobState,
    JobStatus,
    Stage,
    StageProgress,
    item_progress,
    job_progress,
)
from models.links import hide_passwords
from models.pipeline import ActivityProgress
from reelscope.artifacts import ArtifactStore, result_key
from workflows import STATUS_MEMO_KEY
from workflows.media_item import item_workflow_id
from workflows.media_job import RESOLVE_ACTIVITY_PREFIX

_CLOSED_STATES = {
    WorkflowExecutionStatus.CANCELED: JobState.CANCELLED,
    WorkflowExecutionStatus.FAILED: JobState.FAILED,
    WorkflowExecutionStatus.TERMINATED: JobState.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: JobState.FAILED,
}
_ENDED = (ItemState.SUCCEEDED, ItemState.FAILED, ItemState.CANCELLED)


class OpenRuns:
    """Run IDs of workflows last seen running, per namespace and workflow ID, so that a
    describe can name its run.

    A describe that names no run makes Temporal's history service read the workflow's
    current run from its database first. On the embedded server that read queues on the
    one SQLite connection behind a busy worker's writes: with a worker busy, describes
    that named their run took p99 24-37 ms against 39-61 ms (docs/benchmarks.md). A
    workflow ID has at most one open run, so a run described as running is the current
    one; any other answer drops the entry and the workflow is described by ID again."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._runs: OrderedDict[tuple[str, str], str] = OrderedDict()

    def get(self, namespace: str, workflow_id: str) -> str | None:
        return self._runs.get((namespace, workflow_id))

    def remember(self, namespace: str, workflow_id: str, run_id: str) -> None:
        self._runs[(namespace, workflow_id)] = run_id
        self._runs.move_to_end((namespace, workflow_id))
        while len(self._runs) > self._limit:
            self._runs.popitem(last=False)

    def forget(self, namespace: str, workflow_id: str) -> None:
        self._runs.pop((namespace, workflow_id), None)


#: This process's open runs; status calls are its only users.
OPEN_RUNS = OpenRuns()


async def _describe_run(
    client: Client, workflow_id: str, run_id: str | None
) -> WorkflowExecutionDescription | None:
    try:
        return await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            return None
        raise


async def describe(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    """The current run's description, or None when there is no such workflow. A run
    this process saw running is described by its run ID (``OpenRuns``)."""
    namespace = client.namespace
    run_id = OPEN_RUNS.get(namespace, workflow_id)
    if run_id is not None:
        desc = await _describe_run(client, workflow_id, run_id)
        if desc is not None and desc.status == WorkflowExecutionStatus.RUNNING:
            return desc
        OPEN_RUNS.forget(namespace, workflow_id)
    desc = await _describe_run(client, workflow_id, None)
    if desc is not None and desc.status == WorkflowExecutionStatus.RUNNING:
        OPEN_RUNS.remember(namespace, workflow_id, desc.run_id)
    return desc


async def job_status(
    client: Client, job_id: str, desc: WorkflowExecutionDescription | None = None
) -> JobStatus | None:
    """The job's status; ``desc`` saves a describe call when the caller has one.

    Without ``desc``, the job's first item is described beside the job: most jobs hold
    one item, and its progress then costs no second round trip after the job's."""
    first: WorkflowExecutionDescription | None = None
    if desc is None:
        desc, first = await asyncio.gather(describe(client, job_id), _first_item(client, job_id))
    if desc is None:
        return None
    memo = await desc.memo()
    raw = memo.get(STATUS_MEMO_KEY)
    status = JobStatus.model_validate(raw) if raw else JobStatus(job_id=job_id)
    status.job_id = job_id
    if desc.status == WorkflowExecutionStatus.RUNNING:
        status.state = JobState.RUNNING
        await _merge_resolving(status, desc)
        running = [i for i in status.items if i.state == ItemState.RUNNING and i.workflow_id]
        first_id = first.id if first is not None else None
        details = await asyncio.gather(
            *(
                _item_detail(client, i, first if i.workflow_id == first_id else None)
                for i in running
            )
        )
        for item, detail in zip(running, details, strict=True):
            if detail is not None:
                status.items[item.index] = detail
    elif desc.status in _CLOSED_STATES:
        status.state = _CLOSED_STATES[desc.status]
        for item in status.items:
            if item.state not in _ENDED:
                if status.state == JobState.CANCELLED:
                    item.state = ItemState.CANCELLED
                else:
                    item.state = ItemState.FAILED
                    item.error = item.error or ErrorInfo(
                        type=ErrorKind.INTERNAL,
                        message=f"the job ended ({desc.status.name.lower()}) before this item "
                        "finished; resubmit it",
                    )
    for item in status.items:
        item.progress = 1.0 if item.state in _ENDED else item_progress(item.stages)
    status.progress = 1.0 if status.state != JobState.RUNNING else job_progress(status.items)
    return status


async def _first_item(client: Client, job_id: str) -> WorkflowExecutionDescription | None:
    """The first item's description if it can be had at once; an error here only means
    it is described again, if it is running, after the job's."""
    try:
        return await describe(client, item_workflow_id(job_id, 0))
    except RPCError:
        return None


async def _merge_resolving(status: JobStatus, desc: WorkflowExecutionDescription) -> None:
    """Attempts and last failures of links still being resolved (before items exist)."""
    for pending in desc.raw_description.pending_activities:
        if not pending.activity_id.startswith(RESOLVE_ACTIVITY_PREFIX):
            continue
        index = pending.activity_id.removeprefix(RESOLVE_ACTIVITY_PREFIX)
        if not index.isdigit() or int(index) >= len(status.items):
            continue
        item = status.items[int(index)]
        if item.stage == Stage.RESOLVE and item.stages:
            _apply_pending(item.stages[0], pending, None)


def _apply_pending(stage: StageProgress, pending: Any, progress: ActivityProgress | None) -> None:
    stage.state = ItemState.RUNNING
    if progress is not None:
        stage.progress = progress.fraction
        stage.detail = progress.describe()
    stage.attempt = pending.attempt
    if pending.HasField("last_failure") and pending.last_failure.message:
        stage.last_failure = hide_passwords(pending.last_failure.message)
    if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED:
        stage.detail = (
            f"waiting to retry (attempt {pending.attempt})"
            if pending.attempt > 1
            else "waiting for a worker"
        )


async def _item_detail(
    client: Client, item: ItemStatus, desc: WorkflowExecutionDescription | None = None
) -> ItemStatus | None:
    """A running item's own status, with progress from its activities' heartbeats;
    ``desc`` is its description when the caller has it already."""
    assert item.workflow_id is not None
    desc = desc or await describe(client, item.workflow_id)
    if desc is None:  # not started yet
        return None
    raw = (await desc.memo()).get(STATUS_MEMO_KEY)
    if not raw:
        return None
    detail = ItemStatus.model_validate(raw)
    detail.index = item.index
    for pending in desc.raw_description.pending_activities:
        stage = next((s for s in detail.stages if s.stage.value == pending.activity_id), None)
        if stage is None:
            continue
        progress: ActivityProgress | None = None
        if pending.heartbeat_details.payloads:
            decoded = await client.data_converter.decode(pending.heartbeat_details.payloads)
            try:
                progress = ActivityProgress.model_validate(decoded[0]) if decoded else None
            except ValueError:
                progress = None
        _apply_pending(stage, pending, progress)
        if detail.stage in (Stage.QUEUED, Stage.RESOLVE):
            detail.stage = stage.stage
    return detail


def job_result(status: JobStatus, store: ArtifactStore) -> JobResult:
    """Full results of the items that have one in the store; the status otherwise."""
    items = []
    for item in status.items:
        raw = store.read_bytes(result_key(status.job_id, item.index))
        if raw is not None:
            items.append(ItemResult.model_validate_json(raw))
        else:
            items.append(
                ItemResult(
                    index=item.index,
                    source_url=item.source_url,
                    media_url=item.media_url,
                    kind=item.kind or "video",
                    state=item.state,
                    error=item.error,
                    cached=item.cached,
                )
            )
    return JobResult(job_id=status.job_id, state=status.state, items=items)
