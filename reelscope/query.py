"""Typed helpers for programs that talk to Temporal directly (not through the API).

```python
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from reelscope.query import describe_progress, query_progress

client = await Client.connect("127.0.0.1:7233", data_converter=pydantic_data_converter)
status = await query_progress(client, "job-3f9c…")     # JobStatus, via the `progress` query
status = await describe_progress(client, "job-3f9c…")  # JobStatus, with no worker needed
```
"""

from __future__ import annotations

from temporalio.client import Client

from models.jobs import ItemStatus, JobStatus
from reelscope.status import job_status
from workflows import PROGRESS_QUERY, item_workflow_id


async def query_progress(client: Client, job_id: str) -> JobStatus:
    """The job workflow's ``progress`` query: every item's state and stage. Needs a
    worker to answer; the client must use the Pydantic data converter."""
    return await client.get_workflow_handle(job_id).query(PROGRESS_QUERY, result_type=JobStatus)


async def query_item_progress(client: Client, job_id: str, index: int) -> ItemStatus:
    """Item ``index``'s ``progress`` query: its stages, each with its own state."""
    handle = client.get_workflow_handle(item_workflow_id(job_id, index))
    return await handle.query(PROGRESS_QUERY, result_type=ItemStatus)


async def describe_progress(client: Client, job_id: str) -> JobStatus | None:
    """What ``GET /v1/jobs/{id}`` answers, from describe calls alone: works while every
    worker is down. Includes progress within running activities. None: no such job."""
    return await job_status(client, job_id)
