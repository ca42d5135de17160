"""Replays recorded histories of MediaJob and MediaItem through the current workflow
code: a change that would break jobs already running fails here (record new histories
with ``python -m tests.workflows.record_histories`` when a change is deliberate).
Histories of older workflow code stay in sub-folders, so every ``workflow.patched``
branch keeps replaying: ``two-pass/``, before key frames came out of the scene pass;
``shared-routing/``, before the cache look-up and routing ran as local activities and
before storing the result removed the workspace; ``transcript-in-result/``, before the
transcript stayed in the workspace for the store step instead of passing through
Temporal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows import MediaItemWorkflow, MediaJobWorkflow

ROOT = Path(__file__).parent / "histories"
HISTORIES = sorted(ROOT.rglob("*.json"))


def test_histories_cover_both_workflow_types() -> None:
    types = set()
    for path in HISTORIES:
        events = json.loads(path.read_text())["events"]
        types.add(events[0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])
    assert types == {"MediaJob", "MediaItem"}


@pytest.mark.parametrize(
    "path", HISTORIES, ids=[str(p.relative_to(ROOT).with_suffix("")) for p in HISTORIES]
)
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[MediaJobWorkflow, MediaItemWorkflow], data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
