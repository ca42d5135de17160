"""Jobs per minute against worker processes and worker concurrency, on this host.

    .venv/bin/python bench/throughput.py [--jobs 8]

For each configuration it starts a fresh stack (dev server, API, workers), submits
``--jobs`` jobs of the bundled sample at once (``refresh``, so nothing is served from
the cache), and times submit → last result. Configurations:

- 1 and 2 worker processes, default concurrency (REELSCOPE_MAX_CONCURRENT_ACTIVITIES=4);
- 1 worker process at concurrency 1, 2 and 4.
"""

from __future__ import annotations

import argparse
import asyncio
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


async def run(media_url: str, workers: int, concurrency: int, jobs: int) -> float:
    """Seconds from submitting ``jobs`` jobs to the last one ending."""
    with tempfile.TemporaryDirectory(prefix="reelscope-throughput-") as folder:
        env = {"REELSCOPE_MAX_CONCURRENT_ACTIVITIES": str(concurrency)}
        async with LocalStack(Path(folder), env) as stack:
            for _ in range(workers):
                await stack.start_worker()
            async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api:
                started = time.perf_counter()
                ids = []
                for n in range(jobs):
                    body = {
                        "url": f"{media_url}/sample.mp4",
                        # Distinct options: no job is another's cache hit.
                        "options": {"refresh": True, "language": f"x{n}"},
                    }
                    ids.append((await api.post("/v1/jobs", json=body)).json()["job_id"])
                pending = set(ids)
                while pending:
                    for job_id in list(pending):
                        state = (await api.get(f"/v1/jobs/{job_id}")).json()["state"]
                        if state != "running":
                            assert state == "succeeded", f"{job_id} ended {state}"
                            pending.discard(job_id)
                    await asyncio.sleep(0.2)
                return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reelscope-media-") as media:
        make_sample(Path(media) / "sample.mp4")
        server, media_url = serve_folder(Path(media))
        try:
            print(f"{describe()}\n")
            print("| worker processes | concurrency each | jobs | seconds | jobs/min |")
            print("| --- | --- | --- | --- | --- |")
            for workers, concurrency in ((1, 4), (2, 4), (1, 1), (1, 2)):
                seconds = await run(media_url, workers, concurrency, args.jobs)
                print(
                    f"| {workers} | {concurrency} | {args.jobs} | {seconds:.1f} | "
                    f"{args.jobs / seconds * 60:.1f} |",
                    flush=True,
                )
        finally:
            server.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
