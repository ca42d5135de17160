"""The artifact store: what outlives a worker's workspace. Full item results, key-frame
JPEGs and the result cache. A local directory; the API reads what workers write.

Keys are '/'-separated segments of ``[A-Za-z0-9._-]``, so no key leaves the root.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def result_key(job_id: str, index: int) -> str:
    return f"results/{job_id}/{index}.json"


def keyframe_key(job_id: str, index: int, number: int) -> str:
    return f"keyframes/{job_id}/{index}/{number}.jpg"


def keyframe_url(job_id: str, index: int, number: int) -> str:
    return f"/v1/jobs/{job_id}/items/{index}/keyframes/{number}.jpg"


def cache_result_key(cache_key: str) -> str:
    return f"cache/{cache_key}/result.json"


def cache_keyframe_key(cache_key: str, number: int) -> str:
    return f"cache/{cache_key}/keyframes/{number}.jpg"


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        parts = key.split("/")
        if not parts or not all(_SEGMENT.match(p) for p in parts):
            raise ValueError(f"invalid artifact key {key!r}")
        return self.root.joinpath(*parts)

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write atomically: readers see the old file or the new one, never half."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)

    def copy_in(self, source: Path, key: str) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)

    def copy(self, source_key: str, target_key: str) -> bool:
        source = self.path(source_key)
        if not source.is_file():
            return False
        self.copy_in(source, target_key)
        return True

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except (OSError, ValueError):
            return None

    def age_s(self, key: str) -> float | None:
        try:
            return time.time() - self.path(key).stat().st_mtime
        except (OSError, ValueError):
            return None

    def sweep(self, retention_s: float, cache_ttl_s: float) -> int:
        """Delete job artifacts older than ``retention_s`` and cache entries older than
        ``cache_ttl_s``; returns how many files went."""
        removed = 0
        now = time.time()
        for top, limit in (
            ("results", retention_s),
            ("keyframes", retention_s),
            ("cache", cache_ttl_s),
        ):
            base = self.root / top
            if not base.is_dir():
                continue
            for file in base.rglob("*"):
                if file.is_file() and now - file.stat().st_mtime > limit:
                    file.unlink(missing_ok=True)
                    removed += 1
            for folder in sorted(base.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        return removed
