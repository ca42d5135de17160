"""Deterministic orchestration. Nothing heavy is importable from here.

Workflow types (the Web UI's "Workflow Type", `temporal workflow list`):

- ``MediaJob`` (``MediaJobWorkflow``), id ``job-…``: one submitted job. Query
  ``progress`` → ``JobStatus``. Memo ``status``: the same, readable without a worker.
- ``MediaItem`` (``MediaItemWorkflow``), id ``job-….N``: item N of that job. Query
  ``progress`` → ``ItemStatus``. Memo ``status``: the same.
"""

from __future__ import annotations

from workflows.media_item import (
    ITEM_WORKFLOW_NAME,
    PING_ACTIVITY,
    PROGRESS_QUERY,
    STATUS_MEMO_KEY,
    MediaItemWorkflow,
    io_task_queue,
    item_workflow_id,
    presence_task_queue,
)
from workflows.media_job import WORKFLOW_NAME, MediaJobWorkflow

__all__ = [
    "ITEM_WORKFLOW_NAME",
    "PING_ACTIVITY",
    "PROGRESS_QUERY",
    "STATUS_MEMO_KEY",
    "WORKFLOW_NAME",
    "MediaItemWorkflow",
    "MediaJobWorkflow",
    "io_task_queue",
    "item_workflow_id",
    "presence_task_queue",
]
