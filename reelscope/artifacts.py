"""The artifact store: what outlives a worker's workspace. Full item results, key-frame
JPEGs and the result cache.

Two backends behind one interface: a local directory (the default; the API and the
workers then share that disk), or an S3-compatible bucket (MinIO in Docker Compose,
S3 in a cloud), which lets workers on different hosts share nothing but the bucket.

Keys are '/'-separated segments of ``[A-Za-z0-9._-]``, so no key leaves the root.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from reelscope.settings import Settings

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


def check_key(key: str) -> str:
    """``key`` if it is a valid artifact key; ValueError otherwise."""
    parts = key.split("/")
    if not parts or not all(_SEGMENT.match(p) for p in parts):
        raise ValueError(f"invalid artifact key {key!r}")
    return key


def _limits(retention_s: float, cache_ttl_s: float) -> tuple[tuple[str, float], ...]:
    """Top-level key prefixes and how long what lies under each is kept."""
    return (
        ("results", retention_s),
        ("keyframes", retention_s),
        # Large Temporal payloads (``reelscope.payloads``): the histories that refer to
        # them are a job's, and a job's results are kept as long.
        ("payloads", retention_s),
        ("cache", cache_ttl_s),
    )


class ArtifactStore(Protocol):
    """What workers write and the API reads. Writes are atomic: a reader sees the old
    object or the new one, never half."""

    def describe(self) -> str: ...

    def write_bytes(self, key: str, data: bytes) -> None: ...

    def copy_in(self, source: Path, key: str) -> None:
        """Upload a local file (network, for S3)."""

    def copy(self, source_key: str, target_key: str) -> bool:
        """Copy inside the store; False when the source does not exist."""

    def read_bytes(self, key: str) -> bytes | None:
        """The object, or None when it does not exist."""

    def age_s(self, key: str) -> float | None:
        """Seconds since the object was written, or None when it does not exist."""

    def sweep(self, retention_s: float, cache_ttl_s: float) -> int:
        """Delete job artifacts older than ``retention_s`` and cache entries older than
        ``cache_ttl_s``; returns how many objects went."""


class LocalArtifactStore:
    """Artifacts as files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def describe(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

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
        for top, limit in _limits(retention_s, cache_ttl_s):
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


class S3ArtifactStore:
    """Artifacts as objects in an S3-compatible bucket, under an optional prefix.

    Every method is network I/O. A PUT is atomic in S3, so readers never see half an
    object. boto3 is imported here only, so a local-store deployment never loads it."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        # Credentials not given here come from boto3's usual chain (environment,
        # instance role, ~/.aws).
        self._s3: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def write_bytes(self, key: str, data: bytes) -> None:
        self._s3.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)

    def copy_in(self, source: Path, key: str) -> None:
        self._s3.upload_file(str(source), self.bucket, self._name(key))

    def copy(self, source_key: str, target_key: str) -> bool:
        try:
            self._s3.copy_object(
                Bucket=self.bucket,
                Key=self._name(target_key),
                CopySource={"Bucket": self.bucket, "Key": self._name(source_key)},
            )
        except self._s3.exceptions.ClientError as err:
            if _missing(err):
                return False
            raise
        return True

    def _fetch(self, operation: str, key: str) -> Any | None:
        """``get_object`` or ``head_object`` of ``key``; None when it does not exist."""
        try:
            return getattr(self._s3, operation)(Bucket=self.bucket, Key=self._name(key))
        except ValueError:
            return None
        except self._s3.exceptions.ClientError as err:
            if _missing(err):
                return None
            raise

    def read_bytes(self, key: str) -> bytes | None:
        response = self._fetch("get_object", key)
        return None if response is None else bytes(response["Body"].read())

    def age_s(self, key: str) -> float | None:
        head = self._fetch("head_object", key)
        return None if head is None else time.time() - head["LastModified"].timestamp()

    def sweep(self, retention_s: float, cache_ttl_s: float) -> int:
        removed = 0
        now = time.time()
        pages = self._s3.get_paginator("list_objects_v2")
        for top, limit in _limits(retention_s, cache_ttl_s):
            expired = [
                {"Key": entry["Key"]}
                for page in pages.paginate(Bucket=self.bucket, Prefix=self._name(top) + "/")
                for entry in page.get("Contents", [])
                if now - entry["LastModified"].timestamp() > limit
            ]
            for start in range(0, len(expired), 1000):  # DeleteObjects takes 1000 at most
                batch = expired[start : start + 1000]
                self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
                removed += len(batch)
        return removed


def _missing(err: Any) -> bool:
    code = str(err.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def open_artifact_store(settings: Settings) -> ArtifactStore:
    """The store ``settings.artifact_store`` names (a local directory by default)."""
    where = settings.artifact_store.strip()
    if not where:
        return LocalArtifactStore(settings.artifacts_dir)
    parts = urlsplit(where)
    if parts.scheme == "s3" and parts.netloc:
        secret = settings.s3_secret_access_key
        return S3ArtifactStore(
            parts.netloc,
            parts.path,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region or None,
            access_key_id=settings.s3_access_key_id or None,
            secret_access_key=secret.get_secret_value() if secret else None,
        )
    if parts.scheme in ("", "file"):
        return LocalArtifactStore(Path(parts.path or where))
    raise ValueError(
        f"REELSCOPE_ARTIFACT_STORE={where!r}: use a directory, file:///dir or s3://bucket/prefix"
    )
