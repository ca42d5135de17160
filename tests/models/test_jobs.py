from __future__ import annotations

from models.jobs import ItemState, Stage, StageProgress, item_progress


def stage(s: Stage, state: ItemState, progress: float = 0.0) -> StageProgress:
    return StageProgress(stage=s, state=state, progress=progress)


def test_item_progress_weighs_stages_and_running_fractions() -> None:
    stages = [
        stage(Stage.DOWNLOAD, ItemState.SUCCEEDED),
        stage(Stage.PROBE, ItemState.PENDING),
        stage(Stage.TRANSCRIBE, ItemState.RUNNING, 0.5),
    ]
    # download 0.15 + transcribe 0.3 * 0.5, out of 0.15 + 0.05 + 0.3
    assert item_progress(stages) == round((0.15 + 0.15) / 0.5, 4)
    assert item_progress([stage(Stage.DOWNLOAD, ItemState.PENDING)]) == 0.0
    assert item_progress([stage(Stage.OCR, ItemState.FAILED)]) == 1.0
    assert item_progress([]) == 0.0


def test_documented_examples_are_valid_models() -> None:
    """The examples /docs shows must be what the API can really return."""
    from models.jobs import JobResult, JobStatus, MediaMetadata, Scene, Transcript

    for model in (JobStatus, JobResult, Scene, Transcript, MediaMetadata):
        for example in model.model_config["json_schema_extra"]["examples"]:  # type: ignore[index]
            model.model_validate(example)
