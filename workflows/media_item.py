"""``MediaItemWorkflow``: one item of a job, with its own history in the Web UI.

video: download → probe → (scenes → key frames → OCR ‖ transcription) → store
image: fetch → OCR → store
A fresh cached result for the same media and options short-cuts all of it. Storing
the result removes the workspace; where no store did (a failed store, a cancel), a
clean-up step in ``finally`` does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from models.errors import ErrorInfo, ErrorKind
    from models.jobs import (
        ItemResult,
        ItemState,
        ItemStatus,
        JobOptions,
        KeyFrame,
        Scene,
        Stage,
        StageProgress,
        TextLine,
        Transcript,
        item_progress,
    )
    from models.pipeline import (
        CacheLookupInput,
        CacheLookupResult,
        DetectScenesInput,
        DetectScenesResult,
        DownloadInput,
        DownloadResult,
        ExtractKeyframesInput,
        ExtractKeyframesResult,
        FetchImageInput,
        FetchImageResult,
        FrameText,
        ItemInput,
        ItemOutcome,
        KeyframeFile,
        MediaRef,
        OcrInput,
        OcrResult,
        ProbeInput,
        ProbeResult,
        RouteResult,
        StoreResult,
        StoreResultInput,
        TranscribeInput,
        TranscribeResult,
        WorkspaceRef,
    )
    from workflows import policies
    from workflows.policies import StagePolicy

ITEM_WORKFLOW_NAME = "MediaItem"
#: Both workflows answer this query: a ``JobStatus`` (job) or an ``ItemStatus`` (item).
PROGRESS_QUERY = "progress"
#: Memo key holding the latest status: readable by describe with no worker alive.
STATUS_MEMO_KEY = "status"

R = TypeVar("R", bound=BaseModel)


#: Answered by every worker on ``presence_task_queue(its host queue)``, which has slots
#: of its own, so a worker whose host queue is busy still answers.
PING_ACTIVITY = "ping_host"

#: Patch id: from here on, the scene pass also writes the key frames (one decode).
KEYFRAMES_IN_SCENE_PASS = "keyframes-in-scene-pass"
#: Patch id: from here on, I/O stages run on the holder's ``io_task_queue``.
IO_SLOTS = "io-slots"
#: Patch id: from here on, the cache look-up and routing run as local activities, inside
#: the workflow task that asks for them, instead of as a round trip through the server.
LOCAL_ROUTING = "local-routing"
#: Patch id: from here on, storing the result also removes the workspace, and the
#: separate clean-up step runs only when the store did not.
STORE_REMOVES_WORKSPACE = "store-removes-workspace"
#: Patch id: from here on, transcription leaves the whole transcript in the workspace
#: (``TRANSCRIPT_FILE``) and the store step puts it in the result, so that no payload
#: carries it: a long talk's words outgrow Temporal's 2 MB limit on one.
TRANSCRIPT_IN_WORKSPACE = "transcript-in-workspace"
TRANSCRIPT_FILE = "transcript.json"


def presence_task_queue(host_task_queue: str) -> str:
    return f"{host_task_queue}-presence"


def io_task_queue(host_task_queue: str) -> str:
    """The holder's queue for its I/O stages (download, probe, store, clean-up), on
    slots of their own: a download never waits behind OCR, and a slow one never holds
    a slot the CPU stages need."""
    return f"{host_task_queue}-io"


def item_workflow_id(job_id: str, index: int) -> str:
    return f"{job_id}.{index}"


def own_title(media: MediaRef) -> str | None:
    """The title the link gives its media (a post's), where it is more than the
    file's name."""
    return None if media.title_is_file_name else media.title


def cache_key_for(media: MediaRef, options: JobOptions) -> str:
    """Same media with the same result-shaping options gives the same key. A result
    titled by its link is kept apart from one titled by the file (its tags or name):
    a hit takes the new link's own title, or the file's."""
    material = {
        "url": media.url,
        "kind": media.kind,
        "titled": own_title(media) is not None,
        "stages": options.stages.model_dump(),
        "ocr_engine": options.ocr_engine,
        "whisper_model": options.whisper_model,
        "language": options.language,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


def scene_texts(frames: list[FrameText]) -> dict[int, list[TextLine]]:
    """Each scene's lines, from its key frames' (in time order). A scene read at several
    key frames (its text changed) lists each line once, at the first frame that showed
    it; two places in one frame showing the same words are two lines. Linear in the
    lines: a one-shot video may have thousands of key frames in one scene."""
    texts: dict[int, list[TextLine]] = {}
    listed: dict[int, set[str]] = {}
    for frame in frames:
        earlier = listed.setdefault(frame.scene_index, set())
        new = [line for line in frame.lines if line.text not in earlier]
        texts.setdefault(frame.scene_index, []).extend(new)
        earlier.update(line.text for line in new)
    return texts


def planned_stages(kind: str | None, options: JobOptions) -> list[StageProgress]:
    if kind == "image":
        planned = [Stage.DOWNLOAD] + ([Stage.OCR] if options.stages.ocr else [])
    else:
        planned = [Stage.DOWNLOAD, Stage.PROBE]
        if options.stages.scenes:
            planned += [Stage.SCENES, Stage.KEYFRAMES]
            if options.stages.ocr:
                planned.append(Stage.OCR)
        if options.stages.transcript:
            planned.append(Stage.TRANSCRIBE)
    return [StageProgress(stage=s, state=ItemState.PENDING) for s in planned]


def error_from(stage: Stage, err: BaseException) -> ErrorInfo:
    """The user-facing ``{type, message}`` of a failed stage."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        return ErrorInfo(type=cause.type or ErrorKind.INTERNAL, message=cause.message)
    if isinstance(cause, TimeoutError):
        kind = cause.type.name.lower() if cause.type else "limit"
        return ErrorInfo(
            type=ErrorKind.TIMEOUT,
            message=f"{stage}: timed out ({kind}); the worker may have stopped or be "
            "overloaded: check worker logs and resubmit",
        )
    if isinstance(cause, CancelledError):
        return ErrorInfo(type=ErrorKind.CANCELLED, message=f"{stage}: cancelled")
    return ErrorInfo(type=ErrorKind.INTERNAL, message=f"{stage}: {cause}")


def _cancel_pending() -> bool:
    """Whether this branch of the workflow has been asked to stop. A stage that finished
    while its cancel was on the way returns normally, and asyncio forgets the cancel it
    absorbed; the task still counts it, so no later stage is started."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class StageFailed(Exception):
    def __init__(self, stage: Stage, error: ErrorInfo, worker_lost: bool = False) -> None:
        super().__init__(error.message)
        self.stage = stage
        self.error = error
        #: No worker took the stage from the pinned queue in time: the worker holding
        #: the item's files is gone.
        self.worker_lost = worker_lost


def _worker_lost(err: ActivityError) -> bool:
    cause = err.cause
    return isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START


@workflow.defn(name=ITEM_WORKFLOW_NAME)
class MediaItemWorkflow:
    def __init__(self) -> None:
        self._status = ItemStatus(index=0, source_url="")
        self._heartbeat_timeout_s = 30.0
        self._pinned_schedule_to_start: timedelta | None = None
        #: Notes of earlier placements (a lost worker), kept in the final result.
        self._notes: list[str] = []
        self._pings = 0
        self._local_routing = False
        self._workspace_removed = False
        #: Whether the item runs other stages than those planned for its kind.
        self._replanned = False
        #: Where this placement's transcription left the whole transcript, if it did.
        self._transcript_file: str | None = None
        #: This placement's key-frame files, once its vision stages ended: a failed item
        #: keeps them when transcription failed.
        self._keyframe_files: list[str] = []

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> ItemStatus:
        return self._status

    @workflow.run
    async def run(self, input: ItemInput) -> ItemOutcome:
        media = input.media
        self._heartbeat_timeout_s = input.heartbeat_timeout_s
        if input.pinned_schedule_to_start_s:
            self._pinned_schedule_to_start = timedelta(seconds=input.pinned_schedule_to_start_s)
        self._status = ItemStatus(
            index=input.index,
            source_url=media.source_url,
            kind=media.kind,
            media_url=media.url,
            workflow_id=workflow.info().workflow_id,
            state=ItemState.RUNNING,
            stages=planned_stages(media.kind, input.options),
        )
        self._publish()
        ref = WorkspaceRef(job_id=input.job_id, item_index=input.index)
        cache_key = cache_key_for(media, input.options)

        # Items started before the look-up and routing ran locally replay them as
        # activities on the shared queue.
        self._local_routing = workflow.patched(LOCAL_ROUTING)
        if not input.options.refresh:
            hit = await self._routing_step(
                "lookup_cache",
                CacheLookupInput(
                    cache_key=cache_key,
                    job_id=input.job_id,
                    index=input.index,
                    source_url=media.source_url,
                    title=own_title(media),
                ),
                CacheLookupResult,
                activity_id="cache",
                summary=f"item {input.index}: cache lookup",
            )
            if hit.hit:
                for stage in self._status.stages:
                    stage.state, stage.progress, stage.detail = ItemState.SUCCEEDED, 1.0, "cached"
                return self._finish(ItemState.SUCCEEDED, None, cached=True)

        item = self._new_result(input)
        queue: str | None = None
        keyframe_files: list[str] = []
        cancelled = False
        try:
            for placement in range(policies.MAX_PLACEMENTS):
                last_try = placement + 1 == policies.MAX_PLACEMENTS
                route = await self._routing_step(
                    "route_item",
                    ref,
                    RouteResult,
                    activity_id="route" if placement == 0 else f"route.{placement}",
                    summary=f"item {input.index}: route",
                )
                queue = route.task_queue
                try:
                    if media.kind == "image":
                        keyframe_files = await self._image(ref, queue, input, item)
                    else:
                        keyframe_files = await self._video(ref, queue, input, item)
                    item.state = ItemState.SUCCEEDED
                except StageFailed as failed:
                    if failed.worker_lost and not last_try:
                        # Its files are on a worker that is gone: start over on another
                        # one. That worker's janitor removes them if it ever comes back.
                        item = self._start_over(input, queue, failed.stage.value)
                        queue, keyframe_files = None, []
                        continue
                    item.state, item.error = ItemState.FAILED, failed.error
                    keyframe_files = self._keyframe_files
                lost = await self._store(ref, queue, item, keyframe_files, cache_key, last_try)
                if lost and item.state == ItemState.SUCCEEDED and not last_try:
                    item = self._start_over(input, queue, "store")
                    queue, keyframe_files = None, []
                    continue
                break
        except ActivityError as err:  # routing: no worker took the item
            item.state, item.error = ItemState.FAILED, error_from(Stage.QUEUED, err)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            if queue is not None and not self._workspace_removed:
                await self._cleanup(ref, queue)
            if cancelled:
                self._finish(ItemState.CANCELLED, None)
        return self._finish(item.state, item.error)

    async def _routing_step(
        self, activity: str, arg: BaseModel, result_type: type[R], activity_id: str, summary: str
    ) -> R:
        """The cache look-up or routing: short steps any worker can take.

        As a local activity (``LOCAL_ROUTING``) the step runs on the worker running
        this workflow task, and the workflow goes on to its next step in the same
        task: no hand-over to and from the server, which costs 30-40 ms a step. So
        routing picks that worker, which got this item's first task from the shared
        queue as any other step would have; after a worker is lost, the item's next
        task goes to a live one, which routes it to itself.
        """
        execute = (
            workflow.execute_local_activity if self._local_routing else workflow.execute_activity
        )
        result: R = await execute(
            activity,
            arg,
            result_type=result_type,
            start_to_close_timeout=policies.ROUTE.start_to_close,
            retry_policy=policies.ROUTE.retry,
            activity_id=activity_id,
            summary=summary,
        )
        return result

    def _start_over(self, input: ItemInput, lost_queue: str, during: str) -> ItemResult:
        """A fresh result and stage list for another placement of the item."""
        note = (
            f"the worker holding this item's files ({lost_queue}) stopped answering during "
            f"{during}; the item was processed again on another worker"
        )
        workflow.logger.warning("item %s: %s", input.index, note)
        self._notes.append(note)
        self._status.stages = planned_stages(input.media.kind, input.options)
        self._replanned = False
        self._transcript_file = None
        self._keyframe_files = []
        self._status.stage = Stage.QUEUED
        self._publish()
        return self._new_result(input)

    def _new_result(self, input: ItemInput) -> ItemResult:
        media = input.media
        return ItemResult(
            index=input.index,
            source_url=media.source_url,
            media_url=media.url,
            kind=media.kind,
            state=ItemState.RUNNING,
            notes=[*input.notes, *self._notes],
        )

    # -- pipelines ---------------------------------------------------------------------

    async def _image(
        self, ref: WorkspaceRef, queue: str, input: ItemInput, item: ItemResult
    ) -> list[str]:
        """Fetches the image and reads its text; an animated image (GIF, APNG, WebP)
        goes through the video stages instead, with no transcription. Returns the
        key-frame files, in result order (none for a still)."""
        fetched = await self._stage(
            ref,
            queue,
            Stage.DOWNLOAD,
            "fetch_image",
            FetchImageInput(workspace=ref, url=input.media.url),
            FetchImageResult,
            policies.DOWNLOAD,
            io=True,
        )
        item.metadata = fetched.metadata.model_copy(update={"title": input.media.title})
        item.notes.extend(fetched.notes)
        if fetched.animation_file and input.options.stages.scenes:
            return await self._animation(ref, queue, input, item, fetched)
        if not input.options.stages.ocr:
            item.notes.append("OCR was switched off by options")
            return []
        ocr = await self._stage(
            ref,
            queue,
            Stage.OCR,
            "ocr_keyframes",
            OcrInput(
                workspace=ref,
                engine=input.options.ocr_engine,
                keyframes=[
                    KeyframeFile(
                        scene_index=0,
                        keyframe=KeyFrame(time_s=0.0, frame=0),
                        image_file=fetched.image_file,
                    ),
                ],
            ),
            OcrResult,
            policies.OCR,
        )
        item.text = [line for frame in ocr.frames for line in frame.lines]
        return []

    async def _animation(
        self,
        ref: WorkspaceRef,
        queue: str,
        input: ItemInput,
        item: ItemResult,
        fetched: FetchImageResult,
    ) -> list[str]:
        """An animated image's video stages. Each distinct line read is also listed in
        ``item.text``, where clients read an image's text."""
        assert fetched.animation_file is not None
        download = self._status.stages[0]
        planned = planned_stages("video", input.options)
        self._status.stages = [download] + [
            s for s in planned if s.stage not in (Stage.DOWNLOAD, Stage.TRANSCRIBE)
        ]
        self._replanned = True
        self._publish()
        keyframe_files = await self._media(
            ref, queue, input, item, fetched.animation_file, input.media.title, transcribe=False
        )
        if item.metadata is not None:
            # The image's own format and size, where its frames were turned into H.264.
            item.metadata = item.metadata.model_copy(
                update={
                    "video_codec": fetched.metadata.video_codec,
                    "size_bytes": fetched.metadata.size_bytes,
                }
            )
        seen: set[str] = set()
        for scene in item.scenes:
            for line in scene.text:
                if line.text not in seen:
                    seen.add(line.text)
                    item.text.append(line)
        return keyframe_files

    async def _video(
        self, ref: WorkspaceRef, queue: str, input: ItemInput, item: ItemResult
    ) -> list[str]:
        """Runs the video stages; returns the key-frame files, in result order."""
        download = await self._stage(
            ref,
            queue,
            Stage.DOWNLOAD,
            "download_media",
            DownloadInput(workspace=ref, url=input.media.url),
            DownloadResult,
            policies.DOWNLOAD,
            io=True,
        )
        # The title the link's page gave (a post's, "A post (2)" for its second clip)
        # before the one the download found, which for a file link is its name.
        return await self._media(
            ref, queue, input, item, download.media_file, input.media.title or download.title
        )

    async def _media(
        self,
        ref: WorkspaceRef,
        queue: str,
        input: ItemInput,
        item: ItemResult,
        media_file: str,
        title: str | None,
        transcribe: bool = True,
    ) -> list[str]:
        """Probe, then the vision stages beside transcription (unless ``transcribe`` is
        false: an animated image has no sound) on the item's media file; returns the
        key-frame files, in result order."""
        stages = input.options.stages
        probe = await self._stage(
            ref,
            queue,
            Stage.PROBE,
            "probe_media",
            ProbeInput(
                workspace=ref,
                media_file=media_file,
                title=title,
                title_is_file_name=input.media.title_is_file_name,
            ),
            ProbeResult,
            policies.PROBE,
            io=True,
        )
        item.metadata = probe.metadata
        duration = probe.metadata.duration_s
        keyframe_files: list[str] = []

        async def vision() -> list[Scene]:
            if not stages.scenes or not probe.has_video:
                self._skip(Stage.SCENES, Stage.KEYFRAMES, Stage.OCR)
                item.notes.append(
                    "scenes, key frames and OCR were switched off by options"
                    if not stages.scenes
                    else "the media has no video stream"
                    + (", only a cover picture, which is not read" if probe.cover_picture else "")
                    + ": no scenes, key frames or OCR"
                )
                return []
            # Items started before key frames came out of the scene pass replay the
            # separate extract_keyframes stage.
            one_pass = workflow.patched(KEYFRAMES_IN_SCENE_PASS)
            scenes = await self._stage(
                ref,
                queue,
                Stage.SCENES,
                "detect_scenes",
                DetectScenesInput(
                    workspace=ref,
                    media_file=media_file,
                    keyframes=one_pass,
                    transcription_beside=transcribe
                    and stages.transcript
                    and probe.metadata.has_audio,
                    duration_s=duration,
                    text_read_after=stages.ocr,
                    ocr_engine=input.options.ocr_engine,
                ),
                DetectScenesResult,
                policies.SCENES,
                duration,
            )
            expected = scenes.expected_frames
            if expected and scenes.decoded_frames < expected - max(2, expected // 100):
                item.notes.append(
                    f"the file ends early: {scenes.decoded_frames} of {expected} frames "
                    f"({scenes.decoded_frames / scenes.fps:.1f} s of {expected / scenes.fps:.1f} s)"
                    " decode; scenes, key frames and text cover that part only (the"
                    " transcript covers the audio that decodes, which may go on further)"
                )
            if scenes.keyframes is not None:
                keyframes = ExtractKeyframesResult(keyframes=scenes.keyframes)
                self._mark(Stage.KEYFRAMES, ItemState.SUCCEEDED)
            else:
                # An older worker ignored the request for key frames.
                keyframes = await self._stage(
                    ref,
                    queue,
                    Stage.KEYFRAMES,
                    "extract_keyframes",
                    ExtractKeyframesInput(
                        workspace=ref,
                        media_file=media_file,
                        fps=scenes.fps,
                        scenes=scenes.scenes,
                    ),
                    ExtractKeyframesResult,
                    policies.KEYFRAMES,
                    duration,
                )
            texts: dict[int, list[TextLine]] = {}
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
                texts = scene_texts(ocr.frames)
            else:
                self._skip(Stage.OCR)
                if not stages.ocr:
                    item.notes.append("OCR was switched off by options")
            by_scene: dict[int, list[KeyFrame]] = {}
            for kf in keyframes.keyframes:
                by_scene.setdefault(kf.scene_index, []).append(kf.keyframe)
                keyframe_files.append(kf.image_file)
            return [
                Scene(
                    index=i,
                    start_s=span.start_s,
                    end_s=span.end_s,
                    start_frame=span.start_frame,
                    end_frame=span.end_frame,
                    keyframes=by_scene.get(i, []),
                    text=texts.get(i, []),
                )
                for i, span in enumerate(scenes.scenes)
            ]

        async def speech() -> Transcript | None:
            if not transcribe:
                return None
            if not stages.transcript:
                self._skip(Stage.TRANSCRIBE)
                item.notes.append("transcription was switched off by options")
                return None
            if probe.audio_tracks > 1:
                item.notes.append(
                    f"the file holds {probe.audio_tracks} audio tracks; one is transcribed: "
                    "the first marked default, the one players play, else the first (send "
                    "a file whose track you want is marked default, or first)"
                )
            result = await self._stage(
                ref,
                queue,
                Stage.TRANSCRIBE,
                "transcribe_audio",
                TranscribeInput(
                    workspace=ref,
                    media_file=media_file,
                    duration_s=duration,
                    has_audio=probe.metadata.has_audio,
                    model=input.options.whisper_model,
                    language=input.options.language,
                    transcript_file=TRANSCRIPT_FILE
                    if workflow.patched(TRANSCRIPT_IN_WORKSPACE)
                    else None,
                ),
                TranscribeResult,
                policies.TRANSCRIBE,
                duration,
            )
            # An older worker ignores the request and returns the transcript whole.
            self._transcript_file = result.transcript_file
            return result.transcript

        # Both branches run to the end, so clean-up never races a running stage. A branch
        # that ended keeps its part of the result when the other failed: a broken audio
        # track still leaves the scenes and their text, and the reverse.
        scenes, transcript = await asyncio.gather(vision(), speech(), return_exceptions=True)
        if not isinstance(scenes, BaseException):
            item.scenes = scenes
            self._keyframe_files = keyframe_files
        if not isinstance(transcript, BaseException):
            item.transcript = transcript
        for outcome in (scenes, transcript):
            if isinstance(outcome, BaseException):
                raise outcome
        return keyframe_files

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
        io: bool = False,
    ) -> R:
        """Run one pinned activity, keeping the item's status current."""
        if _cancel_pending():
            self._mark(stage, ItemState.CANCELLED)
            raise asyncio.CancelledError()
        self._mark(stage, ItemState.RUNNING)
        try:
            result = await self._pinned(
                activity,
                arg,
                queue,
                result_type=result_type,
                start_to_close=policy.start_to_close_for(duration_s),
                schedule_to_start=policy.schedule_to_start,
                heartbeat=self._heartbeat_for(policy),
                retry=policy.retry,
                cancellation=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                activity_id=stage.value,
                summary=f"item {ref.item_index}: {stage.value}",
                io=io,
            )
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                self._mark(stage, ItemState.CANCELLED)
                raise asyncio.CancelledError() from err
            self._mark(stage, ItemState.FAILED)
            raise StageFailed(stage, error_from(stage, err), _worker_lost(err)) from err
        except asyncio.CancelledError:
            self._mark(stage, ItemState.CANCELLED)
            raise
        self._mark(stage, ItemState.SUCCEEDED)
        return result

    async def _store(
        self,
        ref: WorkspaceRef,
        queue: str,
        item: ItemResult,
        keyframe_files: list[str],
        cache_key: str,
        last_try: bool,
    ) -> bool:
        """Put the result in the artifact store (the activity adds key-frame URLs), and
        remove the workspace with it: storing is the item's last step on its files.
        Returns True when the worker holding the key frames was lost first; the item
        then fails only if it has no placement left."""
        # Items started before the store removed the workspace replay a separate
        # clean-up step after it.
        removes = workflow.patched(STORE_REMOVES_WORKSPACE)
        try:
            stored = await self._pinned(
                "store_item_result",
                StoreResultInput(
                    workspace=ref,
                    result=item,
                    keyframe_files=keyframe_files,
                    cache_key=cache_key if item.state == ItemState.SUCCEEDED else None,
                    remove_workspace=removes,
                    transcript_file=self._transcript_file if item.transcript is not None else None,
                ),
                queue,
                result_type=StoreResult if removes else None,
                start_to_close=policies.STORE.start_to_close,
                schedule_to_start=policies.STORE.schedule_to_start,
                heartbeat=self._heartbeat_for(policies.STORE),
                retry=policies.STORE.retry,
                activity_id="store",
                summary=f"item {ref.item_index}: store result",
                io=True,
            )
        except ActivityError as err:
            lost = _worker_lost(err)
            if not lost or last_try:
                item.state = ItemState.FAILED
                item.error = ErrorInfo(
                    type=ErrorKind.INTERNAL,
                    message=f"store: the result could not be saved ({err.cause or err}); resubmit",
                )
            return lost
        # A worker that predates the change returns nothing, and removes nothing.
        self._workspace_removed = isinstance(stored, StoreResult) and stored.workspace_removed
        return False

    async def _cleanup(self, ref: WorkspaceRef, queue: str) -> None:
        try:
            await self._pinned(
                "remove_workspace",
                ref,
                queue,
                start_to_close=policies.CLEANUP.start_to_close,
                schedule_to_start=policies.CLEANUP.schedule_to_start,
                retry=policies.CLEANUP.retry,
                activity_id="cleanup",
                summary=f"item {ref.item_index}: cleanup",
                io=True,
            )
        except ActivityError as err:
            # The worker holding the files is gone; its janitor removes them on restart.
            workflow.logger.warning("cleanup failed for item %s: %s", ref.item_index, err)

    async def _pinned(
        self,
        activity: str,
        arg: BaseModel,
        queue: str,
        *,
        start_to_close: timedelta,
        schedule_to_start: timedelta | None,
        retry: RetryPolicy,
        activity_id: str,
        summary: str,
        result_type: type[Any] | None = None,
        heartbeat: timedelta | None = None,
        cancellation: workflow.ActivityCancellationType = (
            workflow.ActivityCancellationType.TRY_CANCEL
        ),
        io: bool = False,
    ) -> Any:
        """Run an activity on the queue of the worker holding the item's files (its
        ``io_task_queue`` for an ``io`` stage).

        When no worker takes it within the schedule-to-start limit, that worker is
        gone, or busy with other items. A ping on its presence queue, which it always
        serves, tells which: a busy worker is waited for again; a lost one raises the
        schedule-to-start ``ActivityError`` for the caller to place the item elsewhere.
        """
        # Items started before I/O stages had slots of their own keep the host queue.
        target = io_task_queue(queue) if io and workflow.patched(IO_SLOTS) else queue
        while True:
            try:
                return await workflow.execute_activity(
                    activity,
                    arg,
                    result_type=result_type,
                    task_queue=target,
                    start_to_close_timeout=start_to_close,
                    schedule_to_start_timeout=self._pinned_schedule_to_start or schedule_to_start,
                    heartbeat_timeout=heartbeat,
                    retry_policy=retry,
                    cancellation_type=cancellation,
                    activity_id=activity_id,
                    summary=summary,
                )
            except ActivityError as err:
                if not _worker_lost(err) or not await self._holder_alive(queue):
                    raise
                workflow.logger.info(
                    "%s: %s is busy, not gone; waiting for it again", summary, queue
                )

    def _heartbeat_for(self, policy: StagePolicy) -> timedelta | None:
        if policy.heartbeat_from_job:
            return timedelta(seconds=self._heartbeat_timeout_s)
        return policy.heartbeat

    async def _holder_alive(self, queue: str) -> bool:
        self._pings += 1
        try:
            await workflow.execute_activity(
                PING_ACTIVITY,
                task_queue=presence_task_queue(queue),
                start_to_close_timeout=policies.PRESENCE.start_to_close,
                schedule_to_start_timeout=policies.PRESENCE.schedule_to_start,
                retry_policy=policies.PRESENCE.retry,
                activity_id=f"presence.{self._pings}",
                summary=f"is {queue} still there?",
            )
        except ActivityError:
            return False
        return True

    # -- status --------------------------------------------------------------------------

    def _finish(
        self, state: ItemState, error: ErrorInfo | None, cached: bool = False
    ) -> ItemOutcome:
        status = self._status
        status.state, status.error, status.cached = state, error, cached
        if state == ItemState.SUCCEEDED:
            status.stage = Stage.DONE
        failed = [s.stage for s in status.stages if s.state == ItemState.FAILED]
        if state == ItemState.FAILED and failed:
            # Not the vision stage that went on beside a failed transcription.
            status.stage = failed[0]
        status.progress = 1.0
        planned = [s.stage for s in status.stages]
        for stage in status.stages:
            if state == ItemState.CANCELLED and stage.state in (
                ItemState.PENDING,
                ItemState.RUNNING,
            ):
                stage.state = ItemState.CANCELLED
        if state == ItemState.FAILED:
            # Stages still pending never ran, and never will: a status that listed them
            # as to come would read as an item still waiting for them.
            status.stages = [s for s in status.stages if s.state != ItemState.PENDING]
        self._publish()
        return ItemOutcome(
            index=status.index,
            state=state,
            kind=status.kind or "video",
            cached=cached,
            error=error,
            stages=planned if self._replanned else None,
            stage=status.stage,
            stages_ended=[s.model_copy() for s in status.stages],
        )

    def _mark(self, stage: Stage, state: ItemState) -> None:
        for s in self._status.stages:
            if s.stage == stage:
                s.state = state
                s.progress = 1.0 if state == ItemState.SUCCEEDED else 0.0
        running = [s.stage for s in self._status.stages if s.state == ItemState.RUNNING]
        if running:
            self._status.stage = running[0]  # the vision stage, when ASR runs beside it
        elif state in (ItemState.FAILED, ItemState.CANCELLED):
            self._status.stage = stage
        self._publish()

    def _skip(self, *stages: Stage) -> None:
        self._status.stages = [s for s in self._status.stages if s.stage not in stages]
        self._publish()

    def _publish(self) -> None:
        status = self._status
        if status.state in (ItemState.PENDING, ItemState.RUNNING):
            status.progress = item_progress(status.stages)
        workflow.upsert_memo({STATUS_MEMO_KEY: status.model_dump(mode="json")})
        rows = "\n".join(f"| {s.stage.value} | {s.state.value} |" for s in status.stages)
        error = f"\n\n**{status.error.type}**: {status.error.message}" if status.error else ""
        cached = " (cached)" if status.cached else ""
        workflow.set_current_details(
            f"**{status.state.value}**{cached} · {status.progress:.0%} · "
            f"{status.kind} {status.media_url}\n\n| stage | state |\n| --- | --- |\n{rows}{error}"
        )
