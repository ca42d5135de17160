"""The Reelscope worker: runs ``MediaJobWorkflow`` and every pipeline activity.

Three pollers:
- the shared queue (``REELSCOPE_TASK_QUEUE``) runs workflows and routes items;
- this host's queue runs download → processing → clean-up of an item, so its files
  stay on one disk. The host queue's name is stable for a host and data dir, so a
  restarted worker picks up the activities of items whose files it holds;
- the host queue's presence queue answers pings. An item whose pinned stage waited
  too long asks it whether this worker is busy (wait on) or gone (place the item on
  another worker).

Run it alone against any Temporal with ``python worker.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import os
import shutil
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError, TemporalError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from activities.download import DownloadActivities, FetchPolicy, warm_downloader
from activities.frames import FrameActivities
from activities.heap import HEAP, M_TRIM_THRESHOLD, SecondArena
from activities.images import ImageActivities
from activities.ocr import OcrActivities, OcrEngines, OcrSettings, ReadAhead
from activities.probe import MediaLimits, ProbeActivities
from activities.resolve import ResolveActivities
from activities.results import ResultActivities, cache_scope
from activities.scenes import SceneActivities
from activities.transcribe import TranscribeActivities, WhisperModels, WhisperSettings
from activities.workspace import (
    WorkspaceActivities,
    Workspaces,
    disk_full,
    disk_full_cause,
)
from models.errors import ErrorKind
from models.links import hide_passwords
from reelscope.artifacts import ArtifactStore, open_artifact_store
from reelscope.client import connect, metrics_runtime
from reelscope.logs import configure_logging
from reelscope.settings import Settings
from reelscope.status import describe
from workflows import (
    PING_ACTIVITY,
    MediaItemWorkflow,
    MediaJobWorkflow,
    io_task_queue,
    item_workflow_id,
    presence_task_queue,
)

log = structlog.get_logger("reelscope.worker")

SWEEP_INTERVAL_S = 600
#: Routing, cache look-ups and link resolution: short, and never behind the heavy stages.
SHARED_QUEUE_SLOTS = 4


class Models:
    """The heavy models of this process, built once and shared by every activity."""

    def __init__(self, settings: Settings) -> None:
        self.ocr = OcrEngines(
            OcrSettings(
                det_limit_side_len=settings.ocr_det_limit_side_len,
                rec_score_thresh=settings.ocr_rec_score_thresh,
                rec_batch_size=settings.ocr_rec_batch_size,
                rec_batch_by_width=settings.ocr_rec_batch_by_width,
                threads=max(1, settings.ocr_threads // settings.ocr_frames_at_once),
                lone_frame_threads=settings.ocr_lone_frame_threads,
                frames_at_once=settings.ocr_frames_at_once,
                skip_flat_regions=settings.ocr_skip_flat_regions,
                det_int8=settings.ocr_det_int8,
                det_model_name=settings.ocr_det_model_name,
                rec_model_name=settings.ocr_rec_model_name,
                det_model_dir=settings.ocr_det_model_dir,
                rec_model_dir=settings.ocr_rec_model_dir,
                cache_dir=(settings.model_cache_dir or settings.data_dir / "models").resolve(),
            ),
            default=settings.ocr_engine,
        )
        self.whisper = WhisperModels(
            WhisperSettings(
                default_model=settings.whisper_model,
                models=settings.whisper_models,
                compute_type=settings.whisper_compute_type,
                beam_size=settings.whisper_beam_size,
                threads=settings.whisper_threads,
            )
        )
        # One per process: the scene pass offers it key frames, the OCR stage takes their
        # lines (where the worker's settings turn it on).
        self.read_ahead = ReadAhead(self.ocr)
        self._read_ahead_on = settings.ocr_read_ahead

    def preload(self) -> None:
        """Load the default models now, so the first job does not pay for it."""
        self.whisper.get(None)
        self.ocr.preload()
        if self._read_ahead_on:
            self.read_ahead.preload()


class PasswordsHidden(Interceptor):
    """Hides the passwords of links in the messages of failed activities (``https://
    ann:***@host/``) before they reach Temporal's history, its Web UI and the job's
    status. Error messages name the link that failed, and a link may carry a password."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _HidePasswordsInbound(next)


class _HidePasswordsInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except ApplicationError as err:
            shown = hide_passwords(err.message)
            if shown == err.message:
                raise
            # The cause is left behind: its message would show the password again.
            raise ApplicationError(
                shown,
                *err.details,
                type=err.type,
                non_retryable=err.non_retryable,
                next_retry_delay=err.next_retry_delay,
                category=err.category,
            ) from None
        except TemporalError:
            raise  # a cancel, or another error of Temporal's own, which names no link
        except Exception as err:
            shown = hide_passwords(str(err))
            if shown == str(err):
                raise
            raise ApplicationError(shown, type=err.__class__.__name__) from None


#: The stage an activity's own error messages begin with ("scenes: ..."); a full disk's
#: is said the same way. Others go by the activity's name.
STAGE_OF_ACTIVITY = {
    "resolve_link": "resolve",
    "download_media": "download",
    "fetch_image": "download",
    "probe_media": "probe",
    "detect_scenes": "scenes",
    "extract_keyframes": "keyframes",
    "ocr_keyframes": "ocr",
    "transcribe_audio": "transcribe",
    "store_item_result": "store",
    "remove_workspace": "cleanup",
}


class DiskFullReported(Interceptor):
    """Reports an activity that failed because the worker's disk (or disk quota) is full
    as ``DiskFull``, whatever it was writing, with the space left where the worker keeps
    its files: a 2 a.m. reader learns it is the worker's disk, not the link."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _DiskFullInbound(next, self.folder)


class _DiskFullInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, folder: Path) -> None:
        super().__init__(next)
        self._folder = folder

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except Exception as err:
            said = isinstance(err, TemporalError) and (
                not isinstance(err, ApplicationError) or err.type == ErrorKind.DISK_FULL
            )
            cause = None if said else disk_full_cause(err)  # said: a cancel, or DiskFull
            if cause is None:
                raise
            raise self._disk_full() from cause

    def _disk_full(self) -> ApplicationError:
        name = activity.info().activity_type
        return disk_full(STAGE_OF_ACTIVITY.get(name, name), self._folder)


@activity.defn(name=PING_ACTIVITY)
async def ping_host() -> None:
    """Proof of life for the item workflows waiting on this worker's host queue."""


@dataclass(frozen=True)
class ActivitySets:
    """Which activities each of a worker's task queues serves."""

    #: The shared queue: routing, cache look-ups, link resolution.
    shared: list[Callable[..., Any]]
    #: The host queue: the CPU stages.
    compute: list[Callable[..., Any]]
    #: The host's I/O queue: download, probe, store, clean-up.
    io: list[Callable[..., Any]]


def build_activities(settings: Settings, models: Models, store: ArtifactStore) -> ActivitySets:
    fetch = FetchPolicy(
        max_bytes=settings.max_download_bytes,
        socket_timeout_s=settings.download_socket_timeout_s,
        allow_private=settings.allow_private_urls,
        allowed_networks=tuple(settings.allowed_networks),
        max_duration_s=settings.max_duration_s,
        job_disk_quota_bytes=settings.job_disk_quota_bytes,
    )
    workspaces = Workspaces(settings.workspaces_dir)
    workspace = WorkspaceActivities(workspaces, settings.host_task_queue)
    results = ResultActivities(
        workspaces, store, settings.cache_ttl_s, cache_scope(settings.result_shaping())
    )
    shared: list[Callable[..., Any]] = [
        workspace.route_item,
        results.lookup_cache,
        ResolveActivities(fetch).resolve_link,
    ]
    read_ahead = models.read_ahead if settings.ocr_read_ahead else None
    compute: list[Callable[..., Any]] = [
        SceneActivities(
            workspaces,
            settings.scene_threshold,
            settings.min_scene_len_frames,
            settings.scene_detector,
            settings.scene_decode_threads,
            spare_cpus=settings.cpus_beside_transcription,
            skip_nonreference=settings.scene_skip_nonreference_frames,
            skip_b_deblocking=settings.scene_skip_b_frame_deblocking,
            niceness=settings.vision_niceness,
            text_changes=settings.scene_text_changes,
            read_ahead=read_ahead,
        ).detect_scenes,
        FrameActivities(workspaces).extract_keyframes,
        OcrActivities(workspaces, models.ocr, settings.vision_niceness, read_ahead).ocr_keyframes,
        TranscribeActivities(
            workspaces, models.whisper, settings.whisper_beam_size, settings.whisper_window_s
        ).transcribe_audio,
    ]
    io: list[Callable[..., Any]] = [
        DownloadActivities(workspaces, settings.data_dir, fetch).download_media,
        ProbeActivities(
            workspaces,
            MediaLimits(
                max_duration_s=settings.max_duration_s,
                max_dimension_px=settings.max_dimension_px,
                max_decode_pixels=settings.max_decode_pixels,
            ),
        ).probe_media,
        ImageActivities(workspaces, fetch, settings.max_image_pixels).fetch_image,
        results.store_item_result,
        workspace.remove_workspace,
    ]
    return ActivitySets(shared=shared, compute=compute, io=io)


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    ready_file: Path | None = None,
    models: Models | None = None,
) -> None:
    """Poll both queues until ``stop`` is set, then finish in-flight work briefly.

    ``models`` lets several workers of one process (tests) share loaded models. A
    worker that loads its own also settles its process once it has
    (``settle_process``).
    """
    runtime = None
    if settings.worker_metrics_address:
        runtime = metrics_runtime(settings.worker_metrics_address)
        log.info("worker.metrics", address=f"http://{settings.worker_metrics_address}/metrics")
    client = await connect(settings, runtime)
    owns_process = models is None
    if models is None:
        models = Models(settings)
        started = asyncio.get_running_loop().time()
        await asyncio.to_thread(models.preload)
        log.info(
            "worker.models_loaded",
            seconds=round(asyncio.get_running_loop().time() - started, 2),
            ocr=settings.ocr_engine,
            whisper=settings.whisper_model,
        )
    await asyncio.to_thread(warm_downloader)
    stale = await sweep_workspaces(client, settings)
    if stale:
        log.info("workspaces.janitor", removed=stale)
    store = open_artifact_store(settings)
    activities = build_activities(settings, models, store)
    executor = ThreadPoolExecutor(
        max_workers=settings.max_concurrent_activities
        + settings.max_concurrent_io_activities
        + SHARED_QUEUE_SLOTS,
        thread_name_prefix="activity",
    )
    common = {
        "activity_executor": executor,
        "interceptors": [PasswordsHidden(), DiskFullReported(settings.workspaces_dir)],
        "graceful_shutdown_timeout": timedelta(seconds=5),
        # Heartbeats reach the server at least this often: status shows fresh progress,
        # and a cancel reaches a running activity within seconds.
        "max_heartbeat_throttle_interval": timedelta(seconds=settings.heartbeat_throttle_s),
        "default_heartbeat_throttle_interval": timedelta(seconds=settings.heartbeat_throttle_s),
    }
    shared = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[MediaJobWorkflow, MediaItemWorkflow],
        activities=activities.shared,
        max_concurrent_activities=SHARED_QUEUE_SLOTS,
        **common,  # type: ignore[arg-type]
    )
    host = Worker(
        client,
        task_queue=settings.host_task_queue,
        # The I/O stages too, for items started before they had a queue of their own.
        activities=activities.compute + activities.io,
        max_concurrent_activities=settings.max_concurrent_activities,
        **common,  # type: ignore[arg-type]
    )
    io = Worker(
        client,
        task_queue=io_task_queue(settings.host_task_queue),
        activities=activities.io,
        max_concurrent_activities=settings.max_concurrent_io_activities,
        **common,  # type: ignore[arg-type]
    )
    # Answers "is this worker still there?" for items whose files it holds, on slots
    # of its own, so a worker busy with long stages still answers.
    presence = Worker(
        client,
        task_queue=presence_task_queue(settings.host_task_queue),
        activities=[ping_host],  # async: needs no thread
        max_concurrent_activities=8,
        graceful_shutdown_timeout=timedelta(seconds=1),
    )
    if owns_process:
        settle_process(settings)
    async with shared, host, io, presence:
        log.info(
            "worker.started",
            task_queue=settings.task_queue,
            host_task_queue=settings.host_task_queue,
            temporal=settings.temporal_address,
            artifacts=store.describe(),
        )
        if ready_file is not None:
            ready_file.parent.mkdir(parents=True, exist_ok=True)
            ready_file.write_text("ready\n")
        sweeper = asyncio.create_task(sweep_periodically(client, settings, store, stop))
        await stop.wait()
        log.info("worker.stopping")
        sweeper.cancel()
    executor.shutdown(wait=False, cancel_futures=True)


async def sweep_workspaces(client: Client, settings: Settings) -> int:
    """The janitor: remove workspaces whose item workflow has ended or is unknown, e.g.
    left by a worker that was killed (side effect: files removed). Returns how many."""
    root = settings.workspaces_dir
    if not root.is_dir():
        return 0
    removed = 0
    for job_dir in list(root.iterdir()):
        for item_dir in list(job_dir.iterdir()) if job_dir.is_dir() else []:
            if not item_dir.name.isdigit():
                continue
            desc = await describe(client, item_workflow_id(job_dir.name, int(item_dir.name)))
            if desc is None or desc.status != WorkflowExecutionStatus.RUNNING:
                await asyncio.to_thread(shutil.rmtree, item_dir, True)
                removed += 1
        with contextlib.suppress(OSError):
            job_dir.rmdir()
    return removed


async def sweep_periodically(
    client: Client, settings: Settings, store: ArtifactStore, stop: asyncio.Event
) -> None:
    """Workspaces of ended jobs, expired results, key frames and cache entries: at
    start, then every ``SWEEP_INTERVAL_S``."""
    while not stop.is_set():
        try:
            workspaces = await sweep_workspaces(client, settings)
            removed = await asyncio.to_thread(
                store.sweep, settings.artifact_retention_s, settings.cache_ttl_s
            )
        except Exception:  # a sweep must never take the worker down
            log.exception("sweep.failed")
        else:
            if workspaces or removed:
                log.info("sweep.done", workspaces=workspaces, artifacts=removed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=SWEEP_INTERVAL_S)


#: mallopt's parameter numbers, from glibc's malloc.h (the trim threshold's is
#: ``activities.heap.M_TRIM_THRESHOLD``, which trims the second arena with it).
M_MMAP_MAX = -4
M_ARENA_MAX = -8


@dataclass(frozen=True)
class MallocSetting:
    """One glibc malloc parameter the worker sets, unless the operator set it first
    through glibc's own environment variable or ``GLIBC_TUNABLES`` name."""

    param: int
    value: int
    env: str
    tunable: str

    def chosen_by_operator(self) -> bool:
        tunables = os.environ.get("GLIBC_TUNABLES", "")
        return self.env in os.environ or f"{self.tunable}=" in tunables


#: The most freed memory kept at the top of the main heap while the worker works.
KEEP_FREED_BYTES = 256 * 1024**2

#: glibc malloc, set up for a worker process (docs/benchmarks.md: the soak, and the
#: lever "freed memory kept for reuse while the stages run"):
#:
#: - 2 arenas instead of 8 per CPU. With the default, memory freed on the short-lived
#:   decoding threads of each video stayed in arenas of their own: over 50 videos the
#:   soak's RSS grew 826 → 909 MiB, against 663 → 659 MiB with 2.
#: - No allocation gets a mapping of its own, and freed memory stays in the heap until
#:   256 MiB of it sits at the top. glibc maps every block over 32 MiB on its own and
#:   unmaps it when freed, so each of Whisper's encoder windows faulted in about
#:   200 MiB of fresh zeroed pages (53,000 page faults, 0.1 s of kernel time per
#:   30 s of audio); now the second window reuses the first one's pages. The memory
#:   goes back to the OS when the worker's CPU stages are all done
#:   (``activities.heap``).
MALLOC_SETTINGS = (
    MallocSetting(M_ARENA_MAX, 2, "MALLOC_ARENA_MAX", "glibc.malloc.arena_max"),
    MallocSetting(M_MMAP_MAX, 0, "MALLOC_MMAP_MAX_", "glibc.malloc.mmap_max"),
    MallocSetting(
        M_TRIM_THRESHOLD, KEEP_FREED_BYTES, "MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold"
    ),
)


def malloc_settings(keep_freed_memory: bool) -> tuple[MallocSetting, ...]:
    """The arena cap, and with ``keep_freed_memory`` the rest of ``MALLOC_SETTINGS``."""
    return MALLOC_SETTINGS if keep_freed_memory else MALLOC_SETTINGS[:1]


def tune_malloc(settings: tuple[MallocSetting, ...] = MALLOC_SETTINGS) -> list[str]:
    """Applies ``settings`` with ``mallopt`` before the worker starts threads; returns
    the environment names of those applied. What an operator set through glibc's
    environment wins; off glibc this does nothing."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return []
    applied = []
    for setting in settings:
        if not setting.chosen_by_operator() and mallopt(setting.param, setting.value) == 1:
            applied.append(setting.env)
    return applied


def trim_second_arena_when_idle(applied: list[str]) -> bool:
    """Where ``tune_malloc`` set both the arena cap and the trim threshold, starts
    ``activities.heap.SecondArena``, so that the free top of the second arena goes back
    with the rest once the CPU stages are all done; returns whether it did. With an
    operator's own values, glibc is left as they set it."""
    if not {"MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_"} <= set(applied):
        return False
    arena = SecondArena(keep_threshold=KEEP_FREED_BYTES)
    started = arena.start()
    if started:
        HEAP.second_arena = arena
    log.info("worker.second_arena_trimmed_when_idle", found=started)
    return started


def settle_process(settings: Settings) -> None:
    """What a process that runs the stages does once its models are loaded, logged:
    one BLAS thread (``limit_blas_threads``), and the objects alive then frozen
    (``freeze_startup_objects``, unless the settings turn that off). Process-wide."""
    log.info("worker.blas_threads_limited", libraries=limit_blas_threads())
    if settings.freeze_startup_objects:
        log.info("worker.startup_objects_frozen", objects=freeze_startup_objects())


def freeze_startup_objects() -> int:
    """Collects what garbage there is, then moves every object still alive (modules,
    loaded models, libraries' tables) to the collector's permanent generation; returns
    how many. Side effect: should any of those objects later become cyclic garbage,
    it is never collected.

    A worker holds about 220,000 such objects once its models are loaded, and a full
    collection walks them all while holding Python's lock: 0.13-0.21 s, about once per
    job, during which no other Python thread of the stages runs (docs/benchmarks.md).
    Frozen, a full collection walks only what was made since.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def limit_blas_threads() -> int:
    """Lets every BLAS library loaded in this process (numpy's OpenBLAS) use one thread;
    returns how many libraries it found. Side effect: process-wide, for good, and only
    for libraries loaded by then, so it is called once the models are.

    A job's BLAS calls are small, such as the matrix product of Whisper's feature
    extraction. A second thread saves them nothing, and it then spins waiting for more
    work: 0.09-0.11 CPU-s per transcription of a 60 s clip, taken from the stages that
    run beside it (docs/benchmarks.md). The models' own thread counts (CTranslate2, ONNX Runtime,
    PyAV) are set where they are built and are not BLAS, so this leaves them alone.
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    return sum(1 for pool in threadpool_info() if pool["user_api"] == "blas")


def lower_cpu_priority(niceness: int) -> None:
    """Runs this process at ``niceness`` at least, before the worker starts the threads
    that do its work (on Linux a thread's priority is its own; new threads take their
    creator's). With a worker keeping both CPUs busy, status p99 was 71-87 ms at
    niceness 0 and 43-62 ms at 10 (docs/benchmarks.md); on an otherwise idle machine
    the stages run as fast as before."""
    current = os.nice(0)
    if niceness > current:
        os.nice(niceness - current)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a Reelscope worker.")
    parser.add_argument("--ready-file", type=Path, help="Written once the worker polls.")
    args = parser.parse_args()
    settings = Settings()
    applied = tune_malloc(malloc_settings(settings.keep_freed_memory))
    lower_cpu_priority(settings.worker_nice)
    configure_logging(settings.log_format, settings.log_level)
    trim_second_arena_when_idle(applied)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop, args.ready_file)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
