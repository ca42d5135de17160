"""Every timeout and retry policy of the pipeline, in one place.

Heartbeat timeouts are short so a dead worker is noticed in well under a minute;
start-to-close limits scale with the media's duration because decode and speech
recognition do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.common import RetryPolicy

from models.errors import FINAL_ERROR_KINDS


@dataclass(frozen=True)
class StagePolicy:
    start_to_close: timedelta
    heartbeat: timedelta | None
    retry: RetryPolicy
    #: Added to start_to_close per second of media.
    per_media_second: timedelta = timedelta(0)
    #: How long a pinned activity may wait for the worker holding the item's files.
    schedule_to_start: timedelta | None = timedelta(minutes=10)
    #: Compute stages heartbeat every few seconds, so their heartbeat timeout is the
    #: job's setting (how fast a dead worker's activity moves on); others keep theirs.
    heartbeat_from_job: bool = False

    def start_to_close_for(self, duration_s: float | None) -> timedelta:
        return self.start_to_close + self.per_media_second * (duration_s or 0.0)


#: Quick, local steps: a few fast retries.
QUICK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=FINAL_ERROR_KINDS,
)

#: Network fetches: a hiccup gets two more tries within seconds; a link that stays
#: broken must fail fast (yt-dlp also retries reads inside one attempt).
NETWORK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=3.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
    non_retryable_error_types=FINAL_ERROR_KINDS,
)

#: CPU-heavy stages: a retry after a crash resumes from the last heartbeat, so a few
#: attempts are cheap; more would only repeat a deterministic failure.
COMPUTE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
    non_retryable_error_types=FINAL_ERROR_KINDS,
)

ROUTE = StagePolicy(
    start_to_close=timedelta(seconds=30), heartbeat=None, retry=QUICK_RETRY, schedule_to_start=None
)
DOWNLOAD = StagePolicy(
    start_to_close=timedelta(minutes=30), heartbeat=timedelta(seconds=60), retry=NETWORK_RETRY
)
PROBE = StagePolicy(start_to_close=timedelta(minutes=2), heartbeat=None, retry=QUICK_RETRY)
SCENES = StagePolicy(
    start_to_close=timedelta(minutes=5),
    heartbeat=timedelta(seconds=30),
    retry=COMPUTE_RETRY,
    per_media_second=timedelta(seconds=2),
    heartbeat_from_job=True,
)
KEYFRAMES = StagePolicy(
    start_to_close=timedelta(minutes=5),
    heartbeat=timedelta(seconds=30),
    retry=COMPUTE_RETRY,
    per_media_second=timedelta(seconds=1),
    heartbeat_from_job=True,
)
OCR = StagePolicy(
    start_to_close=timedelta(minutes=10),
    heartbeat=timedelta(seconds=30),
    retry=COMPUTE_RETRY,
    per_media_second=timedelta(seconds=2),
    heartbeat_from_job=True,
)
TRANSCRIBE = StagePolicy(
    start_to_close=timedelta(minutes=10),
    heartbeat=timedelta(seconds=30),
    retry=COMPUTE_RETRY,
    per_media_second=timedelta(seconds=3),
    heartbeat_from_job=True,
)
STORE = StagePolicy(
    start_to_close=timedelta(minutes=5),
    heartbeat=timedelta(seconds=30),
    heartbeat_from_job=True,
    retry=QUICK_RETRY,
    schedule_to_start=timedelta(minutes=5),
)
RESOLVE = StagePolicy(
    start_to_close=timedelta(minutes=2),
    heartbeat=None,
    retry=NETWORK_RETRY,
    schedule_to_start=None,
)
CLEANUP = StagePolicy(
    start_to_close=timedelta(seconds=20),
    heartbeat=None,
    retry=QUICK_RETRY,
    schedule_to_start=timedelta(minutes=5),
)
#: "Is the worker holding an item's files still there?" It answers in milliseconds when
#: it is; one try, since no answer is the answer.
PRESENCE = StagePolicy(
    start_to_close=timedelta(seconds=10),
    heartbeat=None,
    retry=RetryPolicy(maximum_attempts=1),
    schedule_to_start=timedelta(seconds=15),
)

#: Placements of one item: the first, plus restarts on another worker after the one
#: holding its files was lost (a pinned stage found no worker within its
#: schedule-to-start limit). A bound, so an item that kills every worker it lands on
#: fails instead of taking the fleet down one by one.
MAX_PLACEMENTS = 3
