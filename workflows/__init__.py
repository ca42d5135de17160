"""Deterministic orchestration. Nothing heavy is importable from here."""

from __future__ import annotations

from workflows.media_job import PROGRESS_QUERY, STATUS_MEMO_KEY, WORKFLOW_NAME, MediaJobWorkflow

__all__ = ["PROGRESS_QUERY", "STATUS_MEMO_KEY", "WORKFLOW_NAME", "MediaJobWorkflow"]
