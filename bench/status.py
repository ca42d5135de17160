"""Latency of `GET /v1/jobs/{id}` with 50 jobs in flight: first with no worker at all,
then with a worker busy processing them. Prints p50/p99 per phase.

    .venv/bin/python bench/status.py [--jobs 50] [--requests 500]

Starts its own Temporal dev server, API process and (phase 2) worker process on free
loopback ports, in a temporary data dir; everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.local_stack import LocalStack
from bench.machine import describe
from reelscope.cli import serve_folder
from reelscope.sample import make_sample
from reelscope.stack import DEV_SERVER_PRAGMAS


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def measure(client: httpx.AsyncClient, job_ids: list[str], requests: int) -> list[float]:
    latencies = []
    for _ in range(requests):
        job_id = random.choice(job_ids)
        started = time.perf_counter()
        response = await client.get(f"/v1/jobs/{job_id}")
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return latencies


def row(name: str, latencies: list[float], states: str) -> str:
    return (
        f"| {name} | {len(latencies)} | {statistics.median(latencies):.1f} | "
        f"{percentile(latencies, 99):.1f} | {max(latencies):.1f} | {states} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--worker-nice", type=int, default=0, help="Run the worker niced.")
    parser.add_argument(
        "--sqlite-pragmas",
        default=",".join(DEV_SERVER_PRAGMAS),
        help="The dev server's SQLite pragmas, comma-separated; 'none' for its own defaults.",
    )
    args = parser.parse_args()

    pragmas = () if args.sqlite_pragmas == "none" else tuple(args.sqlite_pragmas.split(","))
    work = Path(tempfile.mkdtemp(prefix="reelscope-bench-"))
    make_sample(work / "media" / "sample.mp4")
    server, media_url = serve_folder(work / "media")
    try:
        async with (
            LocalStack(work, sqlite_pragmas=pragmas) as stack,
            httpx.AsyncClient(base_url=stack.api_url, timeout=10) as api,
        ):
            job_ids = []
            for n in range(args.jobs):
                # Distinct options, so no job is served from another's cached result.
                body = {
                    "url": f"{media_url}/sample.mp4",
                    "options": {"refresh": True, "language": f"x{n}"},
                }
                job_ids.append((await api.post("/v1/jobs", json=body)).json()["job_id"])
            await measure(api, job_ids, 20)  # warm-up
            idle = await measure(api, job_ids, args.requests)

            await stack.start_worker(nice=args.worker_nice)
            await asyncio.sleep(2)
            busy = await measure(api, job_ids, args.requests)
            states: dict[str, int] = {}
            for job_id in job_ids:
                state = (await api.get(f"/v1/jobs/{job_id}")).json()["state"]
                states[state] = states.get(state, 0) + 1
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{describe()}\nGET /v1/jobs/{{id}}, {args.jobs} jobs in flight, "
        f"sequential requests, API in its own process, dev server SQLite pragmas: "
        f"{', '.join(pragmas) or 'its defaults'}\n"
    )
    print("| phase | requests | p50 ms | p99 ms | max ms | job states after |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(row("no worker running", idle, f"{args.jobs} running"))
    print(row("one worker busy", busy, ", ".join(f"{n} {s}" for s, n in sorted(states.items()))))


if __name__ == "__main__":
    asyncio.run(main())
