"""Activity tests run each activity in ``ActivityEnvironment``: real media, real
models, heartbeats recorded, and heartbeat details of a 'previous attempt' injected."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.workspace import Workspaces
from models.pipeline import ActivityProgress, FrameText, WorkspaceRef
from tests.conftest import SAMPLE_NAME


class RecordingEnvironment(ActivityEnvironment):
    """An ActivityEnvironment that keeps every heartbeat."""

    def __init__(self, resume_from: ActivityProgress | None = None) -> None:
        super().__init__()
        self.heartbeats: list[ActivityProgress] = []
        self.on_heartbeat = self._record
        if resume_from is not None:
            self.info = dataclasses.replace(self.info, heartbeat_details=[resume_from], attempt=2)

    def _record(self, *details: Any) -> None:
        self.heartbeats.append(ActivityProgress.model_validate(details[0]))


def by_frame(frame: FrameText) -> tuple[int, int]:
    """Sort key of OCR's frames: as the stage returns them, not as it read them."""
    return frame.scene_index, frame.frame or 0


@pytest.fixture
def workspaces(tmp_path: Path) -> Workspaces:
    return Workspaces(tmp_path / "workspaces")


@pytest.fixture
def ref() -> WorkspaceRef:
    return WorkspaceRef(job_id="job-test", item_index=0)


@pytest.fixture
def sample_in_workspace(workspaces: Workspaces, ref: WorkspaceRef, media_dir: Path) -> str:
    """The sample copied into the item's workspace, as if downloaded."""
    shutil.copy(media_dir / SAMPLE_NAME, workspaces.create(ref) / "media.mp4")
    return "media.mp4"
