"""Latency of `GET /v1/jobs/{id}` with 50 jobs in flight: first with no worker at all,
then with a worker busy processing them. Prints p50/p99 per phase.

    .venv/bin/python bench/status.py [--jobs 50] [--requests 500]

Starts its own Temporal dev server, API process and (phase 2) worker process on free
loopback ports, in a temporary data dir; everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reelscope.cli import serve_folder
from reelscope.sample import make_sample
from reelscope.stack import port_open, temporal_binary
from tests.conftest import free_port


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
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="reelscope-bench-"))
    media = work / "media"
    make_sample(media / "sample.mp4")
    server, media_url = serve_folder(media)
    temporal_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "REELSCOPE_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "REELSCOPE_DATA_DIR": str(work / "data"),
        "REELSCOPE_API_PORT": str(api_port),
        "REELSCOPE_TASK_QUEUE": "bench",
        "REELSCOPE_LOG_LEVEL": "WARNING",
        "REELSCOPE_ALLOW_PRIVATE_URLS": "true",
    }
    procs = [
        subprocess.Popen(
            [
                temporal_binary(),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(temporal_port),
                "--headless",
                "--db-filename",
                str(work / "t.db"),
                "--log-level",
                "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        while not port_open("127.0.0.1", temporal_port):
            time.sleep(0.1)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "reelscope.cli", "api"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as api:
            while True:
                try:
                    if (await api.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            job_ids = []
            for n in range(args.jobs):
                body = {
                    "url": f"{media_url}/sample.mp4",
                    "options": {"refresh": True, "language": f"x{n}"},
                }
                job_ids.append((await api.post("/v1/jobs", json=body)).json()["job_id"])
            await measure(api, job_ids, 20)  # warm-up
            idle = await measure(api, job_ids, args.requests)

            ready = work / "worker.ready"
            procs.append(
                subprocess.Popen(
                    [sys.executable, "worker.py", "--ready-file", str(ready)],
                    env=env,
                    cwd=Path(__file__).resolve().parents[1],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            while not ready.exists():
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)
            busy = await measure(api, job_ids, args.requests)
            states: dict[str, int] = {}
            for job_id in job_ids:
                state = (await api.get(f"/v1/jobs/{job_id}")).json()["state"]
                states[state] = states.get(state, 0) + 1
        print(
            f"\nGET /v1/jobs/{{id}}, {args.jobs} jobs in flight, {os.cpu_count()} CPUs, "
            "sequential requests, API in its own process\n"
        )
        print("| phase | requests | p50 ms | p99 ms | max ms | job states after |")
        print("| --- | --- | --- | --- | --- | --- |")
        print(row("no worker running", idle, f"{args.jobs} running"))
        print(
            row("one worker busy", busy, ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
        )
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
