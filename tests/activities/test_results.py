"""Storing an item's result: key frames, result and cache entry into a real local
artifact store, and the workspace removed with them when the workflow asks."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.results as results_module
from activities.results import RESULTS_GENERATION, ResultActivities, cache_scope
from activities.workspace import Workspaces
from models.jobs import ItemResult, ItemState, Transcript, TranscriptSegment, TranscriptWord
from models.pipeline import CacheLookupInput, StoreResultInput, WorkspaceRef
from reelscope.artifacts import (
    LocalArtifactStore,
    cache_keyframe_key,
    cache_result_key,
    keyframe_key,
    result_key,
)
from reelscope.settings import RESULT_SHAPING_SETTINGS, Settings

KEYFRAME = b"\xff\xd8 a key frame"


def store_input(ref: WorkspaceRef, remove_workspace: bool) -> StoreResultInput:
    return StoreResultInput(
        workspace=ref,
        result=ItemResult(index=ref.item_index, source_url="http://x/a.mp4", state="succeeded"),
        keyframe_files=["keyframe-0.jpg"],
        cache_key="cache-key",
        remove_workspace=remove_workspace,
    )


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


@pytest.mark.parametrize("remove_workspace", [True, False])
def test_store_writes_everything_and_removes_the_workspace_when_asked(
    workspaces: Workspaces, ref: WorkspaceRef, store: LocalArtifactStore, remove_workspace: bool
) -> None:
    (workspaces.create(ref) / "keyframe-0.jpg").write_bytes(KEYFRAME)
    results = ResultActivities(workspaces, store, cache_ttl_s=3600)

    stored = ActivityEnvironment().run(
        results.store_item_result, store_input(ref, remove_workspace)
    )

    assert stored.workspace_removed is remove_workspace
    assert workspaces.path(ref).exists() is not remove_workspace
    assert store.read_bytes(keyframe_key(ref.job_id, ref.item_index, 0)) == KEYFRAME
    assert store.read_bytes(cache_keyframe_key("cache-key", 0)) == KEYFRAME
    saved = store.read_bytes(result_key(ref.job_id, ref.item_index))
    assert saved is not None and saved == store.read_bytes(cache_result_key("cache-key"))
    assert ItemResult.model_validate_json(saved).state == ItemState.SUCCEEDED


def test_a_retry_after_the_store_and_removal_finished_is_a_no_op(
    workspaces: Workspaces, ref: WorkspaceRef, store: LocalArtifactStore
) -> None:
    # The first attempt did all of it, then its worker stopped before reporting back:
    # the retry finds no files, and the very result it would write already stored.
    (workspaces.create(ref) / "keyframe-0.jpg").write_bytes(KEYFRAME)
    results = ResultActivities(workspaces, store, cache_ttl_s=3600)
    ActivityEnvironment().run(results.store_item_result, store_input(ref, True))

    again = ActivityEnvironment().run(results.store_item_result, store_input(ref, True))

    assert again.workspace_removed
    assert store.read_bytes(keyframe_key(ref.job_id, ref.item_index, 0)) == KEYFRAME


def test_a_store_with_its_files_gone_and_nothing_stored_fails(
    workspaces: Workspaces, ref: WorkspaceRef, store: LocalArtifactStore
) -> None:
    results = ResultActivities(workspaces, store, cache_ttl_s=3600)
    with pytest.raises(FileNotFoundError):
        ActivityEnvironment().run(results.store_item_result, store_input(ref, True))
    assert store.read_bytes(result_key(ref.job_id, ref.item_index)) is None


TRANSCRIPT = Transcript(
    language="en",
    text="hello there",
    segments=[
        TranscriptSegment(
            start_s=0.0,
            end_s=1.0,
            text="hello there",
            words=[
                TranscriptWord(start_s=0.0, end_s=0.4, word="hello", probability=0.9),
                TranscriptWord(start_s=0.5, end_s=1.0, word="there", probability=0.8),
            ],
        )
    ],
)


def store_input_with_transcript_file(ref: WorkspaceRef) -> StoreResultInput:
    # As the workflow sends it: the transcript in the result holds only its language.
    given = store_input(ref, remove_workspace=True)
    given.result.transcript = Transcript(language="en")
    given.transcript_file = "transcript.json"
    return given


def test_the_transcript_left_in_the_workspace_goes_into_the_stored_result(
    workspaces: Workspaces, ref: WorkspaceRef, store: LocalArtifactStore
) -> None:
    folder = workspaces.create(ref)
    (folder / "keyframe-0.jpg").write_bytes(KEYFRAME)
    (folder / "transcript.json").write_text(TRANSCRIPT.model_dump_json())
    results = ResultActivities(workspaces, store, cache_ttl_s=3600)

    ActivityEnvironment().run(results.store_item_result, store_input_with_transcript_file(ref))

    for key in (result_key(ref.job_id, ref.item_index), cache_result_key("cache-key")):
        saved = store.read_bytes(key)
        assert saved is not None
        assert ItemResult.model_validate_json(saved).transcript == TRANSCRIPT
    # The retry of an attempt that stored it all finds the same result stored.
    again = ActivityEnvironment().run(
        results.store_item_result, store_input_with_transcript_file(ref)
    )
    assert again.workspace_removed


def test_a_store_whose_transcript_file_is_unreadable_fails_for_good(
    workspaces: Workspaces, ref: WorkspaceRef, store: LocalArtifactStore
) -> None:
    folder = workspaces.create(ref)
    (folder / "keyframe-0.jpg").write_bytes(KEYFRAME)
    (folder / "transcript.json").write_text('{"language": "en", "segm')
    results = ResultActivities(workspaces, store, cache_ttl_s=3600)

    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(results.store_item_result, store_input_with_transcript_file(ref))

    assert raised.value.non_retryable and "transcript.json" in raised.value.message
    assert store.read_bytes(result_key(ref.job_id, ref.item_index)) is None


def test_a_cached_result_is_served_only_by_workers_that_shape_results_alike(
    workspaces: Workspaces, ref: WorkspaceRef, store: LocalArtifactStore
) -> None:
    defaults = Settings()
    made_by = cache_scope(defaults.result_shaping())
    (workspaces.create(ref) / "keyframe-0.jpg").write_bytes(KEYFRAME)
    ActivityEnvironment().run(
        ResultActivities(workspaces, store, 3600, made_by).store_item_result,
        store_input(ref, remove_workspace=True),
    )
    lookup = CacheLookupInput(cache_key="cache-key", job_id="job-2", index=0, source_url="u")

    def served_by(settings: Settings) -> bool:
        results = ResultActivities(workspaces, store, 3600, cache_scope(settings.result_shaping()))
        return ActivityEnvironment().run(results.lookup_cache, lookup).hit

    # Another worker with the same result-shaping settings, however it is sized.
    assert served_by(defaults.model_copy(update={"ocr_threads": 7, "whisper_threads": 3}))
    assert store.read_bytes(result_key("job-2", 0)) is not None
    # A larger default Whisper model, another OCR engine, another scene threshold.
    for changed in (
        {"whisper_model": "/models/whisper-small"},
        {"ocr_engine": "rapidocr"},
        {"scene_threshold": 30.0},
    ):
        assert not served_by(defaults.model_copy(update=changed)), changed


def another(value: object) -> object:
    """A value of the same kind as ``value``, but not it."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return f"{value}-other"
    return "/somewhere/else"  # a folder left unset, or the map of extra models


def test_the_cache_scope_follows_the_code_generation_and_every_result_shaping_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shaping = Settings().result_shaping()
    assert set(shaping) == set(RESULT_SHAPING_SETTINGS)
    scope = cache_scope(shaping)
    assert cache_scope(dict(reversed(shaping.items()))) == scope
    for name, value in shaping.items():
        assert cache_scope({**shaping, name: another(value)}) != scope, name
    monkeypatch.setattr(results_module, "RESULTS_GENERATION", RESULTS_GENERATION + 1)
    assert cache_scope(shaping) != scope
