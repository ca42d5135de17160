"""The embedded dev server's command line, and one thing its dynamic config changes in
the server's work. That the server accepts the command line is shown by every
integration test (the session's dev server takes the same dynamic config) and by
`reelscope up --demo` in test_up.py."""

from __future__ import annotations

import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from reelscope.stack import dev_server_command, wait_for_port
from tests.conftest import free_port, persistence_requests


def pairs(command: list[str], flag: str) -> list[str]:
    return [command[n + 1] for n, arg in enumerate(command[:-1]) if arg == flag]


def test_the_embedded_server_reads_its_transfer_queue_often_and_keeps_its_sqlite_settings(
    tmp_path: Path,
) -> None:
    command = dev_server_command(7233, tmp_path / "t.db", ui_port=8233)
    # At the server's default of 20 reads a second, a step of a job waits up to 50 ms
    # for its next task (bench/dispatch.py).
    assert "history.transferProcessorMaxPollRPS=1000" in pairs(command, "--dynamic-config-value")
    assert pairs(command, "--sqlite-pragma") == ["journal_mode=wal", "synchronous=normal"]
    assert pairs(command, "--db-filename") == [str(tmp_path / "t.db")]
    assert pairs(command, "--ui-port") == ["8233"] and "--headless" not in command
    assert "--headless" in dev_server_command(7233, tmp_path / "t.db")


@activity.defn(name="stack_test_noop")
async def _noop() -> None:
    return None


@workflow.defn(name="StackTestChain")
class _Chain:
    """Five steps, each a workflow task and an activity, as a job's item has."""

    @workflow.run
    async def run(self) -> None:
        for _ in range(5):
            await workflow.execute_activity(_noop, start_to_close_timeout=timedelta(seconds=30))


async def test_the_embedded_server_does_not_reread_search_attributes_at_every_step(
    tmp_path: Path,
) -> None:
    # With the dev server's own default, it re-reads its cluster metadata (search-attribute
    # definitions) from SQLite as workflow tasks and activities run: 29 reads for these
    # three runs, 32 for a sample job.
    port, metrics_port = free_port(), free_port()
    command = [*dev_server_command(port, tmp_path / "t.db"), "--metrics-port", str(metrics_port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 60, lambda: server.poll() is None)
        wait_for_port(metrics_port, 30, lambda: server.poll() is None)
        client = await Client.connect(f"127.0.0.1:{port}")
        queue = f"stack-{uuid.uuid4()}"
        # The sandbox is for workflows' determinism; this one is a fixture of a server test.
        async with Worker(
            client,
            task_queue=queue,
            workflows=[_Chain],
            activities=[_noop],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            await client.execute_workflow(_Chain.run, id=f"warm-{uuid.uuid4()}", task_queue=queue)
            before = persistence_requests(metrics_port, "GetCurrentClusterMetadata")
            for _ in range(3):
                await client.execute_workflow(_Chain.run, id=f"c-{uuid.uuid4()}", task_queue=queue)
            reads = persistence_requests(metrics_port, "GetCurrentClusterMetadata")
            assert reads - before < 5
    finally:
        server.terminate()
        server.wait(timeout=30)
