"""Per-item workspaces on the worker's local disk, routing items to the worker that
holds that disk, and clean-up."""

from __future__ import annotations

import contextlib
import errno
import re
import shutil
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.progress import log
from models.errors import ErrorKind
from models.pipeline import CleanupResult, RouteResult, WorkspaceRef, size_in_words

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

Record = TypeVar("Record", bound=BaseModel)

#: What a write fails with when the disk, or the user's disk quota, is full.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def saved_records(path: Path, keep: int, model: type[Record]) -> list[Record]:
    """The first ``keep`` records (one JSON ``model`` a line) that a stage's previous
    attempt appended to ``path``, its resume state; fewer where the file holds fewer
    whole ones (an attempt died while writing it)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines()[:keep]:
        try:
            records.append(model.model_validate_json(line))
        except ValueError:
            break
    return records


def disk_full_cause(exc: BaseException) -> OSError | None:
    """The ``OSError`` of a full disk in ``exc``'s chain of causes, if any. A context
    raised ``from None`` counts: stages raise their own errors while handling the
    disk's, and a full disk explains them."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None


def disk_full(stage: str, folder: Path | None) -> ApplicationError:
    """The error of a stage that could not write to the worker's disk: the operator's
    to fix, not the link's. Retried (other items' files go as they end); ``folder``,
    where the worker keeps its files, is named with the space left there."""
    where = ""
    if folder is not None:
        try:
            left = size_in_words(shutil.disk_usage(folder).free)
        except OSError:
            left = "unknown"
        where = f" ({left} free at {folder})"
    return ApplicationError(
        f"{stage}: the worker's disk is full{where}; free space there or give the worker "
        "a larger disk (REELSCOPE_DATA_DIR), then send the link again",
        type=ErrorKind.DISK_FULL,
    )


class Workspaces:
    """Maps a ``WorkspaceRef`` to ``<root>/<job_id>/<item_index>/`` and keeps every path
    inside it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, ref: WorkspaceRef) -> Path:
        if not _SAFE_ID.match(ref.job_id) or ref.item_index < 0:
            raise ApplicationError(
                f"invalid workspace {ref.job_id!r}/{ref.item_index}",
                type=ErrorKind.INTERNAL,
                non_retryable=True,
            )
        return self.root / ref.job_id / str(ref.item_index)

    def create(self, ref: WorkspaceRef) -> Path:
        path = self.path(ref)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def file(self, ref: WorkspaceRef, name: str) -> Path:
        """A file inside the workspace; refuses names that would leave it."""
        base = self.path(ref)
        candidate = (base / name).resolve()
        if not candidate.is_relative_to(base.resolve()):
            raise ApplicationError(
                f"path {name!r} leaves the workspace", type=ErrorKind.INTERNAL, non_retryable=True
            )
        return candidate

    def remove(self, ref: WorkspaceRef) -> bool:
        """Delete the item's workspace, and the job's folder once it is empty."""
        path = self.path(ref)
        existed = path.exists()
        shutil.rmtree(path, ignore_errors=True)
        job_dir = path.parent
        # Other items of the job may still hold files there, or it is already gone.
        with contextlib.suppress(OSError):
            job_dir.rmdir()
        return existed


class WorkspaceActivities:
    """Routing and clean-up. ``route_item`` runs as a local activity of an item's
    workflow task, on the worker that took it from the shared queue; the rest run on
    the host queue, next to the files."""

    def __init__(self, workspaces: Workspaces, host_task_queue: str) -> None:
        self._workspaces = workspaces
        self._host_task_queue = host_task_queue

    @activity.defn(name="route_item")
    def route_item(self, ref: WorkspaceRef) -> RouteResult:
        """Pick this worker's host queue for an item: download, processing and clean-up
        of the item all run where its files are."""
        return RouteResult(task_queue=self._host_task_queue)

    @activity.defn(name="remove_workspace")
    def remove_workspace(self, ref: WorkspaceRef) -> CleanupResult:
        """Delete the item's workspace directory (side effect: files removed)."""
        removed = self._workspaces.remove(ref)
        log().info("workspace.removed", job_id=ref.job_id, item=ref.item_index, existed=removed)
        return CleanupResult(removed=removed)
