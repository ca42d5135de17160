"""Worker settings compared through the API, interleaved, on one stack.

    .venv/bin/python bench/worker_ab.py --size 720p \\
        --config "" --config "REELSCOPE_WHISPER_THREADS=2,REELSCOPE_SCENE_DECODE_THREADS=0"

Each ``--config`` is a comma-separated list of worker settings ("" = the defaults).
``--media FILE`` times a video of your own instead of the generated clip.
One Temporal dev server and one API process stay up. Each round starts a worker with
each config in turn, runs one untimed job (so no config pays for a cold start), then
``--jobs`` timed jobs of the pipeline bench's clip, and stops the worker. Rounds
interleave the configs, so a noisy spell on a shared machine falls on all of them.

It prints, per config, the median over all rounds of: submit → result through the
API, the worker's CPU seconds per job (user + system, all threads), and the scene,
transcription and OCR activity times.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import httpx
import psutil
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.local_stack import LocalStack
from bench.machine import describe
from bench.pipeline import SIZES, reelscope_run
from reelscope.cli import serve_folder
from reelscope.sample import SampleSpec, make_sample

STAGES = ("detect_scenes", "transcribe_audio", "ocr_keyframes")


def parse_config(text: str) -> dict[str, str]:
    pairs = [kv.split("=", 1) for kv in text.split(",") if kv.strip()]
    return {key.strip(): value.strip() for key, value in pairs}


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="720p")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=3, help="timed jobs per config and round")
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument(
        "--media", type=Path, metavar="FILE", help="a video file to time instead of the clip"
    )
    args = parser.parse_args()
    if args.media is not None and not args.media.is_file():
        parser.error(f"--media {args.media}: no such file")
    configs = [parse_config(text) for text in args.config]

    with tempfile.TemporaryDirectory(prefix="reelscope-ab-") as folder:
        work = Path(folder)
        media = work / "media"
        media.mkdir()
        if args.media is None:
            print(f"rendering the {args.size} clip ...", flush=True)
            make_sample(media / "clip.mp4", SampleSpec.long(*SIZES[args.size]))
        else:
            shutil.copyfile(args.media, media / f"clip{args.media.suffix}")
        server, media_url = serve_folder(media)
        url = f"{media_url}/{next(media.iterdir()).name}"
        runs: list[list[tuple[float, float, dict[str, float]]]] = [[] for _ in configs]
        try:
            async with LocalStack(work) as stack:
                client = await Client.connect(
                    stack.temporal_address, data_converter=pydantic_data_converter
                )
                async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api:
                    for round_ in range(args.rounds):
                        for n, config in enumerate(configs):
                            worker = await stack.start_worker(env=config)
                            process = psutil.Process(worker.pid)
                            await reelscope_run(api, client, url)
                            for _ in range(args.jobs):
                                before = sum(process.cpu_times()[:2])
                                took, _, stages = await reelscope_run(api, client, url)
                                cpu = sum(process.cpu_times()[:2]) - before
                                runs[n].append((took, cpu, stages))
                            stack.stop(worker)
                            done = " ".join(
                                f"{t:.2f} s/{c:.1f} CPU-s" for t, c, _ in runs[n][-args.jobs :]
                            )
                            print(f"round {round_ + 1}, config {n + 1}: {done}", flush=True)
        finally:
            server.shutdown()

    clip = args.media.name if args.media is not None else args.size
    print(f"\n{describe()}\n{clip}, {args.rounds} rounds × {args.jobs} jobs per config, medians\n")
    print("| config | submit → result | worker CPU-s per job | scenes | transcription | OCR |")
    print("| --- | --- | --- | --- | --- | --- |")
    for text, results in zip(args.config, runs, strict=True):
        stage_medians = [
            statistics.median(stages.get(name, 0.0) for _, _, stages in results) for name in STAGES
        ]
        print(
            f"| {text or 'defaults'} | {statistics.median(t for t, _, _ in results):.2f} s | "
            f"{statistics.median(c for _, c, _ in results):.1f} | "
            + " | ".join(f"{m:.2f} s" for m in stage_medians)
            + " |"
        )


if __name__ == "__main__":
    asyncio.run(main())
