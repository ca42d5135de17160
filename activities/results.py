"""Item results into the artifact store, and the result cache."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.progress import log
from activities.workspace import Workspaces
from models.errors import ErrorKind
from models.jobs import ItemResult, ItemState, Transcript
from models.links import hide_passwords
from models.pipeline import (
    CacheLookupInput,
    CacheLookupResult,
    StoreResult,
    StoreResultInput,
    WorkspaceRef,
)
from reelscope.artifacts import (
    ArtifactStore,
    cache_keyframe_key,
    cache_result_key,
    keyframe_key,
    keyframe_url,
    result_key,
)

#: Bump when a change to the pipeline's code changes what it makes of the same media with
#: the same settings (a new kind of key frame, a reader fixed), so that results cached
#: by the code before are no longer served.
RESULTS_GENERATION = 1


def cache_scope(shaping: Mapping[str, object]) -> str:
    """A short digest of what a cached result depends on besides its media and the job's
    options: ``RESULTS_GENERATION`` and the worker's result-shaping settings
    (``Settings.result_shaping``). Workers that differ in either share no cache entry."""
    material = json.dumps(
        {"generation": RESULTS_GENERATION, "settings": dict(shaping)}, sort_keys=True, default=str
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _keyframe_count(result: ItemResult) -> int:
    return sum(len(scene.keyframes) for scene in result.scenes)


def _point_keyframes_at(result: ItemResult, job_id: str, index: int) -> ItemResult:
    """The result with key-frame URLs for this job's item (numbered in scene order)."""
    result = result.model_copy(deep=True)
    number = 0
    for scene in result.scenes:
        for keyframe in scene.keyframes:
            keyframe.url = keyframe_url(job_id, index, number)
            number += 1
    return result


class ResultActivities:
    """Stores results and serves the cache. ``scope`` (``cache_scope``) is added to every
    cache key the workflows send: a result cached by a worker with other models or
    thresholds, or by older code, is not served."""

    def __init__(
        self, workspaces: Workspaces, store: ArtifactStore, cache_ttl_s: int, scope: str = ""
    ) -> None:
        self._workspaces = workspaces
        self._store = store
        self._cache_ttl_s = cache_ttl_s
        self._scope = scope

    def _entry(self, cache_key: str) -> str:
        """The cache entry's name for a workflow's ``cache_key``, on this worker."""
        return f"{cache_key}-{self._scope}" if self._scope else cache_key

    @activity.defn(name="lookup_cache")
    def lookup_cache(self, input: CacheLookupInput) -> CacheLookupResult:
        """On a fresh hit, copy the cached result and key frames to this job's item."""
        entry = self._entry(input.cache_key)
        key = cache_result_key(entry)
        age = self._store.age_s(key)
        raw = self._store.read_bytes(key)
        if raw is None or age is None or age > self._cache_ttl_s:
            return CacheLookupResult(hit=False)
        cached = ItemResult.model_validate_json(raw)
        for number in range(_keyframe_count(cached)):
            self._store.copy(
                cache_keyframe_key(entry, number),
                keyframe_key(input.job_id, input.index, number),
            )
        result = _point_keyframes_at(cached, input.job_id, input.index).model_copy(
            update={
                "index": input.index,
                "source_url": hide_passwords(input.source_url),
                "cached": True,
            }
        )
        if input.title is not None and result.metadata is not None:
            titled = result.metadata.model_copy(update={"title": input.title})
            result = result.model_copy(update={"metadata": titled})
        self._store.write_bytes(
            result_key(input.job_id, input.index), result.model_dump_json().encode()
        )
        log().info("cache.hit", cache_entry=entry, age_s=round(age, 1))
        return CacheLookupResult(hit=True, kind=result.kind)

    @activity.defn(name="store_item_result")
    def store_item_result(self, input: StoreResultInput) -> StoreResult:
        """Write the item's result, with its key-frame URLs (and the transcript left in the
        workspace, where ``input.transcript_file`` names one), and key frames to the store,
        and to the cache when it succeeded; then, if asked, remove the item's workspace.
        Runs where the workspace is (side effects: files written, and removed)."""
        ref = input.workspace
        result = _point_keyframes_at(input.result, ref.job_id, ref.item_index)
        key = result_key(ref.job_id, ref.item_index)
        if input.remove_workspace and not self._workspaces.path(ref).exists():
            stored = self._store.read_bytes(key)
            if stored is not None and _same_result(result, stored, input.transcript_file):
                # An earlier attempt stored all of it and removed the files, and then its
                # completion was lost with its worker: nothing is left to do.
                log().info("result.already_stored", job_id=ref.job_id, item=ref.item_index)
                return StoreResult(workspace_removed=True)
        if input.transcript_file:
            result.transcript = self._transcript(ref, input.transcript_file)
        payload = result.model_dump_json().encode()
        entry = (
            self._entry(input.cache_key)
            if input.cache_key and result.state == ItemState.SUCCEEDED
            else None
        )
        for number, name in enumerate(input.keyframe_files):
            # Uploads can be slow (S3): each one shows the worker is alive.
            activity.heartbeat(number)
            source = self._workspaces.file(ref, name)
            self._store.copy_in(source, keyframe_key(ref.job_id, ref.item_index, number))
            if entry:
                self._store.copy_in(source, cache_keyframe_key(entry, number))
        if entry:
            self._store.write_bytes(cache_result_key(entry), payload)
        # The item's own result last: once it is there, everything before it is too.
        self._store.write_bytes(key, payload)
        if input.remove_workspace:
            self._workspaces.remove(ref)
        log().info(
            "result.stored",
            job_id=ref.job_id,
            item=ref.item_index,
            keyframes=len(input.keyframe_files),
            cached=bool(entry),
            workspace_removed=input.remove_workspace,
        )
        return StoreResult(workspace_removed=input.remove_workspace)

    def _transcript(self, ref: WorkspaceRef, name: str) -> Transcript:
        """The whole transcript the transcription step left in the workspace. A missing
        file raises as a missing key frame does."""
        raw = self._workspaces.file(ref, name).read_bytes()
        try:
            return Transcript.model_validate_json(raw)
        except ValueError as exc:
            raise ApplicationError(
                f"store: the item's transcript ({name}) is unreadable "
                f"({exc.__class__.__name__}); resubmit the link",
                type=ErrorKind.INTERNAL,
                non_retryable=True,
            ) from None


def _same_result(result: ItemResult, stored: bytes, transcript_file: str | None) -> bool:
    """Whether ``stored`` is ``result`` as a store of it writes it: with the transcript
    read from the workspace, where ``transcript_file`` says it was left there."""
    if transcript_file is None:
        return stored == result.model_dump_json().encode()
    try:
        kept = ItemResult.model_validate_json(stored)
    except ValueError:
        return False
    whole = result.model_copy(update={"transcript": kept.transcript})
    return stored == whole.model_dump_json().encode()
