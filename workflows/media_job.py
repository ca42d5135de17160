"""``MediaJobWorkflow``: a job of one or more links.

Each link is resolved into media items (one video, or the entries of a post or
carousel). Each item then runs as its own ``MediaItemWorkflow`` child, at most
``max_parallel_items`` at once. A failed item never fails its siblings. The job keeps
only small outcomes; full results live in the artifact store.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ChildWorkflowError
from temporalio.exceptions import CancelledError as TemporalCancelledError

with workflow.unsafe.imports_passed_through():
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
        job_progress,
    )
    from models.links import hide_passwords
    from models.pipeline import (
        ItemInput,
        ItemOutcome,
        JobInput,
        MediaRef,
        ResolveInput,
        ResolveResult,
    )
    from workflows import policies
    from workflows.media_item import (
        ITEM_WORKFLOW_NAME,
        PROGRESS_QUERY,
        STATUS_MEMO_KEY,
        error_from,
        item_workflow_id,
        planned_stages,
    )

WORKFLOW_NAME = "MediaJob"
#: Resolve activities are ``resolve.<link index>``: the API maps their heartbeats and
#: retries onto the placeholder item of that link.
RESOLVE_ACTIVITY_PREFIX = "resolve."
#: Links resolved at once.
RESOLVE_CONCURRENCY = 4


def overall_state(items: list[ItemResult] | list[ItemStatus]) -> JobState:
    ok = sum(1 for i in items if i.state == ItemState.SUCCEEDED)
    if items and ok == len(items):
        return JobState.SUCCEEDED
    return JobState.PARTIALLY_SUCCEEDED if ok else JobState.FAILED


def initial_status(job_id: str, input: JobInput) -> JobStatus:
    """Before resolution: one placeholder item per link."""
    return JobStatus(
        job_id=job_id,
        items=[
            ItemStatus(
                index=i,
                source_url=url,
                stage=Stage.RESOLVE,
                stages=[StageProgress(stage=Stage.RESOLVE, state=ItemState.PENDING)],
            )
            for i, url in enumerate(input.urls)
        ],
    )


class _Resolved:
    def __init__(
        self, link: str, media: list[MediaRef], error: ErrorInfo | None, notes: list[str]
    ) -> None:
        self.link, self.media, self.error, self.notes = link, media, error, notes


@workflow.defn(name=WORKFLOW_NAME)
class MediaJobWorkflow:
    def __init__(self) -> None:
        self._status = JobStatus(job_id="")

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> JobStatus:
        """Every item's state and stage (stage progress lives in the item workflows)."""
        return self._status

    @workflow.run
    async def run(self, input: JobInput) -> JobResult:
        job_id = workflow.info().workflow_id
        self._status = initial_status(job_id, input)
        self._publish()

        limit = asyncio.Semaphore(RESOLVE_CONCURRENCY)
        resolved = await asyncio.gather(
            *(self._resolve(i, url, input, limit) for i, url in enumerate(input.urls))
        )
        work: list[tuple[int, MediaRef, list[str]]] = []
        items: list[ItemStatus] = []
        for link in resolved:
            if link.error is not None:
                items.append(
                    ItemStatus(
                        index=len(items),
                        source_url=link.link,
                        state=ItemState.FAILED,
                        stage=Stage.RESOLVE,
                        error=link.error,
                        progress=1.0,
                        stages=[StageProgress(stage=Stage.RESOLVE, state=ItemState.FAILED)],
                    )
                )
                continue
            for media in link.media:
                index = len(items)
                items.append(
                    ItemStatus(
                        index=index,
                        source_url=media.source_url,
                        kind=media.kind,
                        media_url=media.url,
                        workflow_id=item_workflow_id(job_id, index),
                        stages=planned_stages(media.kind, input.options),
                    )
                )
                work.append((index, media, link.notes))
        self._status.items = items
        self._publish()

        limit = asyncio.Semaphore(max(1, input.max_parallel_items))
        outcomes = await asyncio.gather(
            *(
                self._run_item(job_id, index, media, notes, input, limit)
                for index, media, notes in work
            ),
            return_exceptions=True,
        )
        if any(isinstance(o, asyncio.CancelledError) for o in outcomes):
            self._status.state = JobState.CANCELLED
            self._publish()
            raise asyncio.CancelledError()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        self._status.state = overall_state(self._status.items)
        self._publish()
        return JobResult(
            job_id=job_id,
            state=self._status.state,
            items=[
                ItemResult(
                    index=i.index,
                    source_url=i.source_url,
                    media_url=i.media_url,
                    kind=i.kind or "video",
                    state=i.state,
                    error=i.error,
                    cached=i.cached,
                )
                for i in self._status.items
            ],
        )

    async def _resolve(
        self, index: int, url: str, input: JobInput, limit: asyncio.Semaphore
    ) -> _Resolved:
        async with limit:
            placeholder = self._status.items[index]
            placeholder.state = ItemState.RUNNING
            placeholder.stages[0].state = ItemState.RUNNING
            self._publish()
            try:
                result = await workflow.execute_activity(
                    "resolve_link",
                    ResolveInput(url=url, max_items=input.max_items_per_link),
                    result_type=ResolveResult,
                    start_to_close_timeout=policies.RESOLVE.start_to_close,
                    retry_policy=policies.RESOLVE.retry,
                    activity_id=f"{RESOLVE_ACTIVITY_PREFIX}{index}",
                    summary=f"resolve {hide_passwords(url)}",
                )
            except ActivityError as err:
                return _Resolved(url, [], error_from(Stage.RESOLVE, err), [])
        notes = []
        if result.dropped:
            notes.append(
                f"the link holds more than {input.max_items_per_link} entries; "
                "only the first ones were processed"
            )
        return _Resolved(url, result.items, None, notes)

    async def _run_item(
        self,
        job_id: str,
        index: int,
        media: MediaRef,
        notes: list[str],
        input: JobInput,
        limit: asyncio.Semaphore,
    ) -> ItemOutcome:
        status = self._status.items[index]
        async with limit:
            status.state = ItemState.RUNNING
            status.stage = Stage.DOWNLOAD
            self._publish()
            try:
                outcome: ItemOutcome = await workflow.execute_child_workflow(
                    ITEM_WORKFLOW_NAME,
                    ItemInput(
                        job_id=job_id,
                        index=index,
                        media=media,
                        options=input.options,
                        notes=notes,
                        heartbeat_timeout_s=input.heartbeat_timeout_s,
                        pinned_schedule_to_start_s=input.pinned_schedule_to_start_s,
                    ),
                    id=item_workflow_id(job_id, index),
                    result_type=ItemOutcome,
                    static_summary=f"Reelscope item {index} of {job_id}: {media.url}",
                    cancellation_type=workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
                    parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                )
            except asyncio.CancelledError:
                status.state = ItemState.CANCELLED
                raise
            except ChildWorkflowError as err:
                if isinstance(err.cause, TemporalCancelledError):
                    status.state = ItemState.CANCELLED
                    raise asyncio.CancelledError() from err
                outcome = ItemOutcome(
                    index=index,
                    state=ItemState.FAILED,
                    kind=media.kind,
                    error=ErrorInfo(
                        type=ErrorKind.INTERNAL,
                        message=f"item workflow ended abnormally: {err.cause or err}; resubmit",
                    ),
                )
        status.state, status.error, status.cached = outcome.state, outcome.error, outcome.cached
        status.progress = 1.0
        if outcome.stages_ended is not None:
            # Where it failed, and how far each stage got, as the item's own status says.
            status.stages = outcome.stages_ended
            status.stage = outcome.stage or status.stage
        elif outcome.stages is not None:
            # An animated image ran the video stages instead of an image's.
            status.stages = [
                StageProgress(stage=s, state=ItemState.PENDING) for s in outcome.stages
            ]
        if outcome.state == ItemState.SUCCEEDED:
            status.stage = Stage.DONE
            for stage in status.stages:
                stage.state, stage.progress = ItemState.SUCCEEDED, 1.0
        self._publish()
        return outcome

    def _publish(self) -> None:
        for item in self._status.items:
            if item.state in (ItemState.SUCCEEDED, ItemState.FAILED, ItemState.CANCELLED):
                item.progress = 1.0
        self._status.progress = job_progress(self._status.items)
        workflow.upsert_memo({STATUS_MEMO_KEY: self._status.model_dump(mode="json")})
        lines = [
            f"**{self._status.state.value}** · {self._status.progress:.0%} · "
            f"{len(self._status.items)} item(s)",
            "",
            "| item | kind | state | stage | link |",
            "| --- | --- | --- | --- | --- |",
        ]
        for item in self._status.items:
            err = f" — {item.error.type}" if item.error else ""
            cached = " (cached)" if item.cached else ""
            lines.append(
                f"| {item.index} | {item.kind or '?'} | {item.state.value}{err}{cached} | "
                f"{item.stage.value} | {item.media_url or item.source_url} |"
            )
        workflow.set_current_details("\n".join(lines))
