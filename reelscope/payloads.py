"""Large Temporal payloads, kept in the artifact store instead of in Temporal.

Temporal refuses a payload over its blob size limit (2 MB by default). When a workflow
task schedules an activity with such an input, the task fails, and is retried for
ever: the item hangs. Most of what an item passes is small, but a long, text-heavy
video's scenes and lines (a few hundred bytes a scene) could pass the limit on the way to
the store step. Any payload of ``Settings.payload_offload_bytes`` or more is therefore
written to the artifact store, under ``payloads/<sha256>``, and Temporal's history
holds a reference to it (the SDK's external storage; the Web UI shows the reference).

Every process that reads such a history must use the same store: the API and the
workers share it already, for results.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ExternalStorage,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)

from reelscope.artifacts import ArtifactStore

#: Where offloaded payloads live in the store; swept with results and key frames.
PAYLOADS_PREFIX = "payloads"
_KEY = re.compile(rf"^{PAYLOADS_PREFIX}/[0-9a-f]{{64}}$")


def payload_key(data: bytes) -> str:
    """The store key of a serialised payload: its content's hash."""
    return f"{PAYLOADS_PREFIX}/{hashlib.sha256(data).hexdigest()}"


class ArtifactStoreDriver(StorageDriver):
    """Stores payloads in the artifact store (network, for S3; files otherwise)."""

    def __init__(self, store: ArtifactStore) -> None:
        self._store = store

    def name(self) -> str:
        return "reelscope-artifacts"

    async def store(
        self, context: StorageDriverStoreContext, payloads: Sequence[Payload]
    ) -> list[StorageDriverClaim]:
        claims = []
        for payload in payloads:
            data = payload.SerializeToString()
            key = payload_key(data)
            # Written even when it is there already: the write renews its age, so the
            # sweep keeps it as long as the history that refers to it is in use.
            await asyncio.to_thread(self._store.write_bytes, key, data)
            claims.append(StorageDriverClaim(claim_data={"key": key}))
        return claims

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        payloads = []
        for claim in claims:
            key = claim.claim_data.get("key", "")
            if not _KEY.match(key):
                raise ValueError(f"not a Reelscope payload reference: {key!r}")
            data = await asyncio.to_thread(self._store.read_bytes, key)
            if data is None:
                raise RuntimeError(
                    f"Temporal payload {key} is not in the artifact store "
                    f"({self._store.describe()}): it was swept (REELSCOPE_ARTIFACT_RETENTION_S), "
                    "or this process uses another store than the one that wrote it "
                    "(REELSCOPE_ARTIFACT_STORE)"
                )
            payload = Payload()
            payload.ParseFromString(data)
            payloads.append(payload)
        return payloads


def external_storage(store: ArtifactStore, threshold_bytes: int) -> ExternalStorage:
    """Temporal's external storage: payloads of ``threshold_bytes`` or more go to
    ``store``."""
    return ExternalStorage(
        drivers=[ArtifactStoreDriver(store)], payload_size_threshold=threshold_bytes
    )
