"""Large Temporal payloads kept in the artifact store: what goes in comes back, and a
missing or foreign reference fails with a message that says where to look."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from models.jobs import ItemResult, Transcript
from reelscope.artifacts import LocalArtifactStore
from reelscope.payloads import PAYLOADS_PREFIX, external_storage

BIG = ItemResult(
    index=0,
    source_url="http://x/a.mp4",
    state="succeeded",
    transcript=Transcript(language="en", text="word " * 2_000),
)


def converter_with(store: LocalArtifactStore, threshold: int):
    return dataclasses.replace(
        pydantic_data_converter, external_storage=external_storage(store, threshold)
    )


async def test_a_payload_over_the_threshold_is_kept_in_the_store_and_read_back(
    tmp_path: Path,
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    converter = converter_with(store, threshold=4_000)
    small = ItemResult(index=1, source_url="http://x/b.mp4", state="failed")

    encoded = await converter.encode([BIG, small])

    big_ref, small_inline = encoded
    assert big_ref.ByteSize() < 1_000  # a reference, not the 10 kB result
    assert ItemResult.model_validate_json(small_inline.data) == small  # left inline
    (kept,) = (tmp_path / "artifacts" / PAYLOADS_PREFIX).iterdir()
    assert kept.stat().st_size >= 10_000
    decoded = await converter.decode(encoded, [ItemResult, ItemResult])
    assert decoded == [BIG, small]


async def test_a_reference_whose_payload_was_swept_says_so(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    converter = converter_with(store, threshold=4_000)
    encoded = await converter.encode([BIG])
    for kept in (tmp_path / "artifacts" / PAYLOADS_PREFIX).iterdir():
        kept.unlink()

    with pytest.raises(RuntimeError, match="REELSCOPE_ARTIFACT_RETENTION_S"):
        await converter.decode(encoded, [ItemResult])


async def test_a_process_without_the_store_cannot_read_the_reference(tmp_path: Path) -> None:
    # What a program with the plain converter meets: the SDK names the cause.
    encoded = await converter_with(LocalArtifactStore(tmp_path), 4_000).encode([BIG])
    with pytest.raises(RuntimeError, match="external storage is not configured"):
        await pydantic_data_converter.decode_wrapper(Payloads(payloads=encoded))
