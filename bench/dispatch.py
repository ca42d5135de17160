"""How long the embedded Temporal server takes to hand on one step of a workflow.

    .venv/bin/python bench/dispatch.py [--chains 6] [--steps 10]

A Reelscope job is a chain of short steps (resolve, route, download, probe, then the
stages), and each step's end waits for the server to hand the workflow its next task.
This starts the embedded dev server as ``reelscope up`` does, once with its dynamic
config (``reelscope.stack.DEV_SERVER_DYNAMIC_CONFIG``) and once without, and times
workflows that run ``--steps`` no-op activities one after another. It prints the
median time per step over the chains after the first two (the first ones ride the
rate limiter's burst), and the worst chain's. The workflow runs unsandboxed, so the
numbers hold the server's hand-over and the SDK's round trips, not Reelscope's code.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from reelscope import stack
from tests.conftest import free_port

#: Chains left out of the medians: the limiter starts with a burst in hand.
WARM_CHAINS = 2


@activity.defn
async def next_step(n: int) -> int:
    return n + 1


@workflow.defn(sandboxed=False)
class StepChain:
    @workflow.run
    async def run(self, steps: int) -> int:
        n = 0
        for _ in range(steps):
            n = await workflow.execute_activity(
                next_step, n, start_to_close_timeout=timedelta(seconds=30)
            )
        return n


async def per_step_ms(work: Path, chains: int, steps: int) -> list[float]:
    """Milliseconds per step of each chain, on a fresh dev server."""
    port = free_port()
    server = subprocess.Popen(
        stack.dev_server_command(port, work / f"{uuid.uuid4().hex}.db"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        stack.wait_for_port(port, 60, lambda: server.poll() is None)
        client = await Client.connect(f"127.0.0.1:{port}")
        took = []
        async with Worker(
            client, task_queue="dispatch", workflows=[StepChain], activities=[next_step]
        ):
            for n in range(chains):
                started = time.perf_counter()
                await client.execute_workflow(
                    StepChain.run, steps, id=f"chain-{n}", task_queue="dispatch"
                )
                took.append((time.perf_counter() - started) * 1000 / steps)
        return took
    finally:
        server.terminate()
        server.wait(30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chains", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    if args.chains <= WARM_CHAINS:
        parser.error(f"--chains must be over {WARM_CHAINS}")
    work = Path(tempfile.mkdtemp(prefix="reelscope-dispatch-"))
    rows = []
    for label, config in (
        ("the server's defaults", ()),
        ("Reelscope's dynamic config", stack.DEV_SERVER_DYNAMIC_CONFIG),
    ):
        with mock.patch.object(stack, "DEV_SERVER_DYNAMIC_CONFIG", config):
            took = await per_step_ms(work, args.chains, args.steps)
        print(f"{label}: {', '.join(f'{t:.1f}' for t in took)} ms a step", flush=True)
        timed = took[WARM_CHAINS:]
        rows.append((label, statistics.median(timed), max(timed)))
    first = WARM_CHAINS + 1
    print(f"\n{args.steps} no-op activities a chain; median of chains {first}-{args.chains}\n")
    print("| embedded server | ms a step (median) | worst chain |")
    print("| --- | --- | --- |")
    for label, typical, worst in rows:
        print(f"| {label} | {typical:.1f} | {worst:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
