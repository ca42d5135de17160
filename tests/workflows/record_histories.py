"""Record real histories of the current workflows for the replay test.

    .venv/bin/python -m tests.workflows.record_histories

Runs a batch (the sample video, a broken link, an image) on a local Temporal dev server
with a real worker, and writes the job's and each item's history to
``tests/workflows/histories/``. Re-record when a workflow change is deliberate and
running jobs of the old code no longer matter.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from models.jobs import JobResult
from models.pipeline import JobInput
from reelscope.cli import serve_folder
from reelscope.sample import make_sample
from reelscope.settings import Settings
from reelscope.stack import dev_server_dynamic_config_args, temporal_binary
from tests.conftest import make_caption_image, running_worker
from worker import Models
from workflows import WORKFLOW_NAME, item_workflow_id

OUT = Path(__file__).parent / "histories"


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="reelscope-histories-"))
    make_sample(work / "media" / "sample.mp4")
    make_caption_image(work / "media" / "caption.jpg", "REPLAY ME")
    server, base = serve_folder(work / "media")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=dev_server_dynamic_config_args(),
    )
    try:
        settings = Settings(
            temporal_address=env.client.service_client.config.target_host,
            task_queue=f"record-{uuid.uuid4().hex[:8]}",
            data_dir=work / "data",
            allow_private_urls=True,
        )
        models = Models(settings)
        models.preload()
        async with running_worker(settings, models):
            job_id = "job-recorded"
            urls = [f"{base}/sample.mp4", f"{base}/missing.mp4", f"{base}/caption.jpg"]
            handle = await env.client.start_workflow(
                WORKFLOW_NAME,
                JobInput(urls=urls),
                id=job_id,
                task_queue=settings.task_queue,
                result_type=JobResult,
            )
            result = await handle.result()
            print(f"{job_id}: {result.state}")
        OUT.mkdir(exist_ok=True)
        # Links that failed to resolve never became item workflows.
        ids = [job_id] + [
            item_workflow_id(job_id, i.index) for i in result.items if i.media_url is not None
        ]
        for workflow_id in ids:
            history = await env.client.get_workflow_handle(workflow_id).fetch_history()
            path = OUT / f"{workflow_id}.json"
            path.write_text(history.to_json())
            print(f"wrote {path} ({len(history.events)} events)")
    finally:
        await env.shutdown()
        server.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
