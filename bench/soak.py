"""Soak: 50 videos through one worker, one after another, watching its memory, open
files and threads.

    .venv/bin/python bench/soak.py [--videos 50]

Prints the worker's RSS, open file descriptors and threads after video 5 and after the
last one, and the ratio RSS(last) / RSS(5). A leak (a model loaded per job, buffers
kept, files left open) shows as growth. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import os
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


def usage(pid: int) -> tuple[float, int, int]:
    """(RSS in MiB, open fds, threads) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kib = int(fields["VmRSS"].split()[0])
    threads = int(fields["Threads"])
    return rss_kib / 1024, len(os.listdir(f"/proc/{pid}/fd")), threads


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reelscope-soak-") as folder:
        work = Path(folder)
        make_sample(work / "media" / "sample.mp4")
        server, media_url = serve_folder(work / "media")
        try:
            async with LocalStack(work) as stack:
                await stack.start_worker()
                pid = stack.processes[-1].pid
                rows = []
                started = time.perf_counter()
                async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api:
                    for n in range(1, args.videos + 1):
                        body = {
                            "url": f"{media_url}/sample.mp4",
                            "options": {"refresh": True, "language": f"x{n}"},
                        }
                        job_id = (await api.post("/v1/jobs", json=body)).json()["job_id"]
                        while (await api.get(f"/v1/jobs/{job_id}")).json()["state"] == "running":
                            await asyncio.sleep(0.1)
                        if n in (1, 5, args.videos) or n % 10 == 0:
                            rss, fds, threads = usage(pid)
                            rows.append((n, rss, fds, threads))
                            print(
                                f"after video {n}: RSS {rss:.0f} MiB, {fds} fds, {threads} threads",
                                flush=True,
                            )
                elapsed = time.perf_counter() - started
        finally:
            server.shutdown()
    by_n = {n: (rss, fds, threads) for n, rss, fds, threads in rows}
    first, last = by_n[5], by_n[args.videos]
    print(f"\n{describe()}\n")
    print("| after video | RSS MiB | open fds | threads |")
    print("| --- | --- | --- | --- |")
    for n, rss, fds, threads in rows:
        print(f"| {n} | {rss:.0f} | {fds} | {threads} |")
    print(f"\nRSS({args.videos}) / RSS(5) = {last[0] / first[0]:.3f}; {elapsed:.0f} s in all")


if __name__ == "__main__":
    asyncio.run(main())
