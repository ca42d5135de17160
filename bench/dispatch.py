"""How long the embedded Temporal server takes to hand on one step of a workflow, and
what that costs jobs sent one after another.

    .venv/bin/python bench/dispatch.py [--chains 6] [--steps 10] [--jobs 10] [--media FILE ...]

A Reelscope job is a chain of short steps (resolve, route, download, probe, then the
stages), and each step's end waits for the server to hand the workflow its next task.
For each of two setups of the embedded dev server, as ``reelscope up`` starts it with
its dynamic config (``reelscope.stack.DEV_SERVER_DYNAMIC_CONFIG``) and without it:

- **A chain of no-op activities**: workflows of ``--steps`` no-op activities, one after
  another. The workflow runs unsandboxed, so this is the server's hand-over and the
  SDK's round trips, not Reelscope's code.
- **Jobs back to back**: ``--jobs`` jobs through the API, each sent when the last one
  ended (a client working through a list of links), on a stack with one worker; submit
  to result. With the bundled 16 s sample video, with an image (960x540, one caption),
  the kind of item a carousel post is made of, and with each ``--media`` file.

It prints medians over the chains and jobs after the first two (the first ones ride the
server's rate limiter's burst), and the worst.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
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

import httpx
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from bench.local_stack import LocalStack
from reelscope import stack
from reelscope.cli import serve_folder
from reelscope.sample import make_sample
from tests.conftest import free_port, make_caption_image

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


async def job_seconds(work: Path, url: str, jobs: int) -> list[float]:
    """Submit-to-result seconds of each job, sent one after another, on a fresh stack."""
    took = []
    folder = work / uuid.uuid4().hex
    folder.mkdir()
    async with LocalStack(folder) as local:
        await local.start_worker()
        client = await Client.connect(local.temporal_address)
        async with httpx.AsyncClient(base_url=local.api_url, timeout=30) as api:
            for _ in range(jobs):
                started = time.perf_counter()
                body = {"url": url, "options": {"refresh": True}}
                job_id = (await api.post("/v1/jobs", json=body)).json()["job_id"]
                # A long poll on the job workflow: polling the API would take CPU.
                await client.get_workflow_handle(job_id).result()
                state = (await api.get(f"/v1/jobs/{job_id}")).json()["state"]
                if state != "succeeded":
                    raise SystemExit(f"job {job_id} ended {state}")
                took.append(time.perf_counter() - started)
    return took


def summary(label: str, took: list[float]) -> tuple[str, float, float]:
    timed = took[WARM_CHAINS:]
    return label, statistics.median(timed), max(timed)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chains", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument(
        "--media",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="A file of your own to send back to back as well (repeatable).",
    )
    args = parser.parse_args()
    for path in args.media:
        if not path.is_file():
            parser.error(f"--media {path}: no such file")
    if min(args.chains, args.jobs) <= WARM_CHAINS:
        parser.error(f"--chains and --jobs must be over {WARM_CHAINS}")
    work = Path(tempfile.mkdtemp(prefix="reelscope-dispatch-"))
    make_sample(work / "media" / "sample.mp4")
    make_caption_image(work / "media" / "caption.jpg", "SUMMER SALE 50")
    server, media_url = serve_folder(work / "media")
    chains: list[tuple[str, float, float]] = []
    jobs: dict[str, list[tuple[str, float, float]]] = {"sample.mp4": [], "caption.jpg": []}
    for n, path in enumerate(args.media):
        # Numbered, so that two files of one name stay apart.
        served = f"media-{n}-{path.name}"
        shutil.copyfile(path, work / "media" / served)
        jobs[served] = []
    try:
        for label, config in (
            ("the server's defaults", ()),
            ("Reelscope's dynamic config", stack.DEV_SERVER_DYNAMIC_CONFIG),
        ):
            with mock.patch.object(stack, "DEV_SERVER_DYNAMIC_CONFIG", config):
                took = await per_step_ms(work, args.chains, args.steps)
                print(f"{label}: {', '.join(f'{t:.1f}' for t in took)} ms a step", flush=True)
                chains.append(summary(label, took))
                for name, rows in jobs.items():
                    took = await job_seconds(work, f"{media_url}/{name}", args.jobs)
                    print(f"{label}, {name}: {', '.join(f'{t:.2f}' for t in took)} s a job")
                    rows.append(summary(label, took))
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    first = WARM_CHAINS + 1
    print(f"\n{args.steps} no-op activities a chain; median of chains {first}-{args.chains}\n")
    print("| embedded server | ms a step (median) | worst chain |")
    print("| --- | --- | --- |")
    for label, typical, worst in chains:
        print(f"| {label} | {typical:.1f} | {worst:.1f} |")
    print(f"\nJobs back to back, submit to result; median of jobs {first}-{args.jobs}\n")
    print("| media | embedded server | seconds a job (median) | worst job |")
    print("| --- | --- | --- | --- |")
    for name, rows in jobs.items():
        for label, typical, worst in rows:
            print(f"| {name} | {label} | {typical:.2f} | {worst:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
