from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reelscope.artifacts import LocalArtifactStore, cache_result_key, keyframe_key, result_key


def age(store: LocalArtifactStore, key: str, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(store.path(key), (past, past))


def test_sweep_deletes_what_outlived_its_retention(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    for key in (
        result_key("job-a", 0),
        keyframe_key("job-a", 0, 0),
        result_key("job-b", 0),
        cache_result_key("k1"),
        cache_result_key("k2"),
    ):
        store.write_bytes(key, b"x")
    age(store, result_key("job-a", 0), 100)
    age(store, keyframe_key("job-a", 0, 0), 100)
    age(store, cache_result_key("k1"), 30)
    assert store.sweep(retention_s=50, cache_ttl_s=20) == 3
    assert store.read_bytes(result_key("job-b", 0)) == b"x"
    assert store.read_bytes(cache_result_key("k2")) == b"x"
    assert not (tmp_path / "results" / "job-a").exists(), "empty folders go too"


@pytest.mark.parametrize("key", ["../x", "results/../../x", "a//b", "", "results/.hidden"])
def test_keys_cannot_leave_the_store(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError):
        LocalArtifactStore(tmp_path).path(key)
