from __future__ import annotations

from temporalio.exceptions import ApplicationError, TimeoutError, TimeoutType

from models.jobs import ItemResult, ItemState, JobState, Stage
from workflows.media_job import error_from, overall_state
from workflows.policies import DOWNLOAD, TRANSCRIBE


def item(state: ItemState) -> ItemResult:
    return ItemResult(index=0, source_url="http://x", state=state)


def test_overall_state() -> None:
    ok, bad = item(ItemState.SUCCEEDED), item(ItemState.FAILED)
    assert overall_state([ok, ok]) == JobState.SUCCEEDED
    assert overall_state([ok, bad]) == JobState.PARTIALLY_SUCCEEDED
    assert overall_state([bad]) == JobState.FAILED


def test_errors_keep_their_type_and_say_what_to_do() -> None:
    info = error_from(Stage.DOWNLOAD, ApplicationError("gone", type="NotFound"))
    assert (info.type, info.message) == ("NotFound", "gone")
    timeout = error_from(
        Stage.OCR, TimeoutError("t", type=TimeoutType.HEARTBEAT, last_heartbeat_details=[])
    )
    assert timeout.type == "Timeout" and "ocr" in timeout.message and "resubmit" in timeout.message


def test_long_stages_heartbeat_and_scale_with_duration() -> None:
    assert TRANSCRIBE.heartbeat is not None and DOWNLOAD.heartbeat is not None
    assert TRANSCRIBE.start_to_close_for(3600) > TRANSCRIBE.start_to_close_for(10)
    assert "NotFound" in (TRANSCRIBE.retry.non_retryable_error_types or [])
    # A transient download failure must stay retryable: its flag decides, not its type.
    assert "DownloadFailed" not in (DOWNLOAD.retry.non_retryable_error_types or [])
