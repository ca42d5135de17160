"""``MediaJobWorkflow``: every item of a job through download → probe →
(scenes → key frames → OCR ‖ transcription) → assemble, with clean-up in ``finally``."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from models.errors import ErrorInfo, ErrorKind
    from models.jobs import (
        ItemResult,
        ItemState,
        ItemStatus,
        JobResult,
        JobState,
        JobStatus,
        Scene,
        Stage,
        StageProgress,
        Transcript,
        item_progress,
        job_progress,
    )
    from models.pipeline import (
        DetectScenesInput,
        DetectScenesResult,
        DownloadInput,
        DownloadResult,
        ExtractKeyframesInput,
        ExtractKeyframesResult,
        JobInput,
        OcrInput,
        OcrResult,
        ProbeInput,
        ProbeResult,
        RouteResult,
        TranscribeInput,
        TranscribeResult,
        WorkspaceRef,
    )
    from workflows import policies
    from workflows.policies import StagePolicy

WORKFLOW_NAME = "MediaJob"
#: ``temporal workflow query --name progress`` returns a ``JobStatus``.
PROGRESS_QUERY = "progress"
#: Memo key holding the latest ``JobStatus``: readable by describe with no worker alive.
STATUS_MEMO_KEY = "status"

R = TypeVar("R", bound=BaseModel)


def error_from(stage: Stage, err: BaseException) -> ErrorInfo:
    """The user-facing ``{type, message}`` of a failed stage."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        return ErrorInfo(type=cause.type or ErrorKind.INTERNAL, message=cause.message)
    if isinstance(cause, TimeoutError):
        return ErrorInfo(
            type=ErrorKind.TIMEOUT,
            message=f"{stage}: timed out ({cause.type.name.lower() if cause.type else 'limit'}); "
            "the worker may have stopped or be overloaded: check worker logs and resubmit",
        )
    if isinstance(cause, CancelledError):
        return ErrorInfo(type=ErrorKind.CANCELLED, message=f"{stage}: cancelled")
    return ErrorInfo(type=ErrorKind.INTERNAL, message=f"{stage}: {cause}")


def overall_state(items: list[ItemResult]) -> JobState:
    ok = sum(1 for i in items if i.state == ItemState.SUCCEEDED)
    if ok == len(items):
        return JobState.SUCCEEDED
    return JobState.PARTIALLY_SUCCEEDED if ok else JobState.FAILED


class _StageFailed(Exception):
    def __init__(self, stage: Stage, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.stage = stage
        self.error = error


@workflow.defn(name=WORKFLOW_NAME)
class MediaJobWorkflow:
    """One job: a list of links, each processed as one item."""

    def __init__(self) -> None:
        self._status = JobStatus(job_id="")

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> JobStatus:
        """Stage and per-stage state of every item."""
        return self._status

    @workflow.run
    async def run(self, input: JobInput) -> JobResult:
        job_id = workflow.info().workflow_id
        self._status = JobStatus(
            job_id=job_id,
            items=[
                ItemStatus(index=i, source_url=url, stages=self._planned_stages(input))
                for i, url in enumerate(input.urls)
            ],
        )
        self._publish()
        limit = asyncio.Semaphore(max(1, input.max_parallel_items))
        items = list(
            await asyncio.gather(
                *(
                    self._process_item(job_id, i, url, input, limit)
                    for i, url in enumerate(input.urls)
                )
            )
        )
        self._status.state = overall_state(items)
        self._publish()
        return JobResult(job_id=job_id, state=self._status.state, items=items)

    # -- one item ------------------------------------------------------------------

    async def _process_item(
        self, job_id: str, index: int, url: str, input: JobInput, limit: asyncio.Semaphore
    ) -> ItemResult:
        async with limit:
            ref = WorkspaceRef(job_id=job_id, item_index=index)
            item = ItemResult(index=index, source_url=url, state=ItemState.RUNNING)
            self._item(index).state = ItemState.RUNNING
            queue: str | None = None
            try:
                route = await workflow.execute_activity(
                    "route_item",
                    ref,
                    result_type=RouteResult,
                    start_to_close_timeout=policies.ROUTE.start_to_close,
                    retry_policy=policies.ROUTE.retry,
                    activity_id=f"{index}.route",
                    summary=f"item {index}: route",
                )
                queue = route.task_queue
                await self._run_stages(ref, queue, url, input, item)
                item.state = ItemState.SUCCEEDED
            except _StageFailed as failed:
                item.state = ItemState.FAILED
                item.error = failed.error
            except ActivityError as err:  # routing failed: no worker took the item
                item.state = ItemState.FAILED
                item.error = error_from(Stage.QUEUED, err)
            finally:
                if queue is not None:
                    await self._cleanup(ref, queue)
            status = self._item(index)
            status.state = item.state
            status.error = item.error
            if item.state == ItemState.SUCCEEDED:
                status.stage = Stage.DONE
            status.progress = 1.0
            self._publish()
            return item

    async def _run_stages(
        self, ref: WorkspaceRef, queue: str, url: str, input: JobInput, item: ItemResult
    ) -> None:
        stages = input.options.stages
        download = await self._stage(
            ref,
            queue,
            Stage.DOWNLOAD,
            "download_media",
            DownloadInput(workspace=ref, url=url),
            DownloadResult,
            policies.DOWNLOAD,
        )
        probe = await self._stage(
            ref,
            queue,
            Stage.PROBE,
            "probe_media",
            ProbeInput(workspace=ref, media_file=download.media_file, title=download.title),
            ProbeResult,
            policies.PROBE,
        )
        item.metadata = probe.metadata
        duration = probe.metadata.duration_s

        async def vision() -> list[Scene]:
            if not stages.scenes:
                self._skip(ref.item_index, Stage.SCENES, Stage.KEYFRAMES, Stage.OCR)
                item.notes.append("scenes, key frames and OCR were switched off by options")
                return []
            if not probe.has_video:
                self._skip(ref.item_index, Stage.SCENES, Stage.KEYFRAMES, Stage.OCR)
                item.notes.append("the media has no video stream: no scenes, key frames or OCR")
                return []
            scenes = await self._stage(
                ref,
                queue,
                Stage.SCENES,
                "detect_scenes",
                DetectScenesInput(workspace=ref, media_file=download.media_file),
                DetectScenesResult,
                policies.SCENES,
                duration,
            )
            keyframes = await self._stage(
                ref,
                queue,
                Stage.KEYFRAMES,
                "extract_keyframes",
                ExtractKeyframesInput(
                    workspace=ref,
                    media_file=download.media_file,
                    fps=scenes.fps,
                    scenes=scenes.scenes,
                ),
                ExtractKeyframesResult,
                policies.KEYFRAMES,
                duration,
            )
            texts: dict[int, list[Any]] = {}
            if stages.ocr and keyframes.keyframes:
                ocr = await self._stage(
                    ref,
                    queue,
                    Stage.OCR,
                    "ocr_keyframes",
                    OcrInput(
                        workspace=ref,
                        keyframes=keyframes.keyframes,
                        engine=input.options.ocr_engine,
                    ),
                    OcrResult,
                    policies.OCR,
                    duration,
                )
                texts = {frame.scene_index: frame.lines for frame in ocr.frames}
            else:
                self._skip(ref.item_index, Stage.OCR)
                if not stages.ocr:
                    item.notes.append("OCR was switched off by options")
            frames_by_scene: dict[int, list[Any]] = {}
            for kf in keyframes.keyframes:
                frames_by_scene.setdefault(kf.scene_index, []).append(kf.keyframe)
            return [
                Scene(
                    index=i,
                    start_s=span.start_s,
                    end_s=span.end_s,
                    start_frame=span.start_frame,
                    end_frame=span.end_frame,
                    keyframes=frames_by_scene.get(i, []),
                    text=texts.get(i, []),
                )
                for i, span in enumerate(scenes.scenes)
            ]

        async def speech() -> Transcript | None:
            if not stages.transcript:
                self._skip(ref.item_index, Stage.TRANSCRIBE)
                item.notes.append("transcription was switched off by options")
                return None
            result = await self._stage(
                ref,
                queue,
                Stage.TRANSCRIBE,
                "transcribe_audio",
                TranscribeInput(
                    workspace=ref,
                    media_file=download.media_file,
                    duration_s=duration,
                    has_audio=probe.metadata.has_audio,
                    model=input.options.whisper_model,
                    language=input.options.language,
                ),
                TranscribeResult,
                policies.TRANSCRIBE,
                duration,
            )
            return result.transcript

        # Both branches always run to the end, so clean-up never races a running stage.
        scenes, transcript = await asyncio.gather(vision(), speech(), return_exceptions=True)
        for outcome in (scenes, transcript):
            if isinstance(outcome, BaseException):
                raise outcome
        assert not isinstance(scenes, BaseException)
        assert not isinstance(transcript, BaseException)
        item.scenes = scenes
        item.transcript = transcript

    async def _stage(
        self,
        ref: WorkspaceRef,
        queue: str,
        stage: Stage,
        activity: str,
        arg: BaseModel,
        result_type: type[R],
        policy: StagePolicy,
        duration_s: float | None = None,
    ) -> R:
        """Run one pinned activity, keeping the item's status current."""
        self._mark(ref.item_index, stage, ItemState.RUNNING)
        try:
            result = await workflow.execute_activity(
                activity,
                arg,
                result_type=result_type,
                task_queue=queue,
                start_to_close_timeout=policy.start_to_close_for(duration_s),
                schedule_to_start_timeout=policy.schedule_to_start,
                heartbeat_timeout=policy.heartbeat,
                retry_policy=policy.retry,
                activity_id=f"{ref.item_index}.{stage.value}",
                summary=f"item {ref.item_index}: {stage.value}",
            )
        except ActivityError as err:
            error = error_from(stage, err)
            self._mark(ref.item_index, stage, ItemState.FAILED)
            raise _StageFailed(stage, error) from err
        self._mark(ref.item_index, stage, ItemState.SUCCEEDED)
        return result

    async def _cleanup(self, ref: WorkspaceRef, queue: str) -> None:
        try:
            await workflow.execute_activity(
                "remove_workspace",
                ref,
                task_queue=queue,
                start_to_close_timeout=policies.CLEANUP.start_to_close,
                schedule_to_start_timeout=policies.CLEANUP.schedule_to_start,
                retry_policy=policies.CLEANUP.retry,
                activity_id=f"{ref.item_index}.cleanup",
                summary=f"item {ref.item_index}: cleanup",
            )
        except ActivityError as err:
            # The worker holding the files is gone; its janitor removes them on restart.
            workflow.logger.warning("cleanup failed for item %s: %s", ref.item_index, err)

    # -- status ----------------------------------------------------------------------

    @staticmethod
    def _planned_stages(input: JobInput) -> list[StageProgress]:
        planned = [Stage.DOWNLOAD, Stage.PROBE]
        if input.options.stages.scenes:
            planned += [Stage.SCENES, Stage.KEYFRAMES]
            if input.options.stages.ocr:
                planned.append(Stage.OCR)
        if input.options.stages.transcript:
            planned.append(Stage.TRANSCRIBE)
        return [StageProgress(stage=s, state=ItemState.PENDING) for s in planned]

    def _item(self, index: int) -> ItemStatus:
        return self._status.items[index]

    def _mark(self, index: int, stage: Stage, state: ItemState) -> None:
        item = self._item(index)
        for s in item.stages:
            if s.stage == stage:
                s.state = state
                s.progress = 1.0 if state == ItemState.SUCCEEDED else 0.0
        running = [s.stage for s in item.stages if s.state == ItemState.RUNNING]
        if running:
            # With transcription beside the vision stages, report the vision one.
            item.stage = running[0]
        elif state == ItemState.FAILED:
            item.stage = stage
        self._publish()

    def _skip(self, index: int, *stages: Stage) -> None:
        item = self._item(index)
        item.stages = [s for s in item.stages if s.stage not in stages]
        self._publish()

    def _publish(self) -> None:
        """Refresh progress, the memo (read by the API without a worker) and the
        Web UI's current details."""
        for item in self._status.items:
            if item.state in (ItemState.PENDING, ItemState.RUNNING):
                item.progress = item_progress(item.stages)
        self._status.progress = job_progress(self._status.items)
        workflow.upsert_memo({STATUS_MEMO_KEY: self._status.model_dump(mode="json")})
        lines = [
            f"**{self._status.state.value}** · {self._status.progress:.0%}",
            "",
            "| item | state | stage | link |",
            "| --- | --- | --- | --- |",
        ]
        for item in self._status.items:
            err = f" — {item.error.type}" if item.error else ""
            lines.append(
                f"| {item.index} | {item.state.value}{err} | {item.stage.value} | "
                f"{item.source_url} |"
            )
        workflow.set_current_details("\n".join(lines))
