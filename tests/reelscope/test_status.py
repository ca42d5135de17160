"""Describes name the run they last saw running, and never take an ended run for the
current one."""

from __future__ import annotations

import uuid

from temporalio.client import Client, WorkflowExecutionStatus

from reelscope.status import OPEN_RUNS, OpenRuns, describe
from tests.conftest import persistence_requests

#: No worker polls this type's queue, so a run of it stays open until ended here.
IDLE_WORKFLOW = "ReelscopeStatusTestIdle"


def test_open_runs_keep_the_latest_entries_up_to_their_limit() -> None:
    runs = OpenRuns(limit=2)
    runs.remember("ns", "a", "run-a")
    runs.remember("ns", "b", "run-b")
    runs.remember("ns", "a", "run-a2")  # a is now the latest
    runs.remember("ns", "c", "run-c")
    assert runs.get("ns", "b") is None
    assert (runs.get("ns", "a"), runs.get("ns", "c")) == ("run-a2", "run-c")
    assert runs.get("other-ns", "a") is None
    runs.forget("ns", "a")
    assert runs.get("ns", "a") is None


async def test_a_running_workflow_is_described_without_a_current_run_lookup(
    temporal_client: Client, temporal_metrics_port: int
) -> None:
    workflow_id = f"status-open-{uuid.uuid4()}"
    handle = await temporal_client.start_workflow(
        IDLE_WORKFLOW, id=workflow_id, task_queue=f"idle-{uuid.uuid4()}"
    )
    try:
        first = await describe(temporal_client, workflow_id)
        assert first is not None and first.run_id == handle.result_run_id

        def lookups() -> float:
            return persistence_requests(temporal_metrics_port, "GetCurrentExecution")

        before = lookups()
        for _ in range(5):
            desc = await describe(temporal_client, workflow_id)
            assert desc is not None and desc.status == WorkflowExecutionStatus.RUNNING
        by_run = lookups() - before

        before = lookups()
        for _ in range(5):
            await temporal_client.get_workflow_handle(workflow_id).describe()
        by_id = lookups() - before
        # Each describe by workflow ID alone reads the current run from the database.
        assert by_id >= 5
        assert by_run <= by_id - 4
    finally:
        await handle.terminate()


async def test_an_ended_run_is_not_taken_for_the_current_one(temporal_client: Client) -> None:
    workflow_id = f"status-rerun-{uuid.uuid4()}"
    queue = f"idle-{uuid.uuid4()}"
    first = await temporal_client.start_workflow(IDLE_WORKFLOW, id=workflow_id, task_queue=queue)
    assert (await describe(temporal_client, workflow_id)) is not None
    assert OPEN_RUNS.get(temporal_client.namespace, workflow_id) == first.result_run_id

    # The run it remembers ends and another starts under the same workflow ID.
    await first.terminate()
    second = await temporal_client.start_workflow(IDLE_WORKFLOW, id=workflow_id, task_queue=queue)
    desc = await describe(temporal_client, workflow_id)
    assert desc is not None
    assert desc.run_id == second.result_run_id != first.result_run_id
    assert desc.status == WorkflowExecutionStatus.RUNNING
    assert OPEN_RUNS.get(temporal_client.namespace, workflow_id) == second.result_run_id

    await second.terminate()
    desc = await describe(temporal_client, workflow_id)
    assert desc is not None and desc.status == WorkflowExecutionStatus.TERMINATED
    assert OPEN_RUNS.get(temporal_client.namespace, workflow_id) is None
    assert await describe(temporal_client, f"status-none-{uuid.uuid4()}") is None
