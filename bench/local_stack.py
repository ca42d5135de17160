"""A throwaway Reelscope stack for bench scripts: a headless Temporal dev server, the API
process and worker processes, on free loopback ports in a temp dir; all stopped on exit.
Media is served from a loopback folder, so private URLs are allowed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reelscope.stack import DEV_SERVER_PRAGMAS, dev_server_command, wait_for_port  # noqa: E402
from tests.conftest import free_port  # noqa: E402


class LocalStack:
    def __init__(
        self,
        work: Path,
        worker_env: dict[str, str] | None = None,
        sqlite_pragmas: tuple[str, ...] = DEV_SERVER_PRAGMAS,
    ) -> None:
        self.work = work
        self.sqlite_pragmas = sqlite_pragmas
        self.temporal_port = free_port()
        self.temporal_address = f"127.0.0.1:{self.temporal_port}"
        # Chosen once the dev server listens: it takes free ports of its own for its
        # internal services, and one of them could be a port picked before.
        self.api_port = 0
        self.api_url = ""
        self.env = {
            **os.environ,
            "REELSCOPE_TEMPORAL_ADDRESS": self.temporal_address,
            "REELSCOPE_DATA_DIR": str(work / "data"),
            "REELSCOPE_TASK_QUEUE": "bench",
            "REELSCOPE_LOG_LEVEL": "WARNING",
            "REELSCOPE_ALLOW_PRIVATE_URLS": "true",
        }
        self.worker_env = {**self.env, **(worker_env or {})}
        self.processes: list[subprocess.Popen[bytes]] = []

    def _spawn(
        self, name: str, command: list[str], env: dict[str, str] | None = None, nice: int = 0
    ) -> subprocess.Popen[bytes]:
        """Start one process; its output goes to ``<work>/<name>.log``."""
        with (self.work / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                command,
                env=env or self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=(lambda: os.nice(nice)) if nice else None,
            )
        self.processes.append(process)
        return process

    async def __aenter__(self) -> LocalStack:
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            await self._start()
        except BaseException:
            # Nothing started is left running when the stack does not come up.
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _start(self) -> None:
        server = self._spawn(
            "temporal",
            dev_server_command(
                self.temporal_port, self.work / "t.db", sqlite_pragmas=self.sqlite_pragmas
            ),
        )
        wait_for_port(self.temporal_port, 60, lambda: server.poll() is None)
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        api = self._spawn(
            "api",
            [sys.executable, "-m", "reelscope.cli", "api"],
            {**self.env, "REELSCOPE_API_PORT": str(self.api_port)},
        )
        async with httpx.AsyncClient(timeout=5) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await http.get(f"{self.api_url}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if api.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the API did not start; its output is in {self.work / 'api.log'}"
                    )
                await asyncio.sleep(0.2)

    async def start_worker(
        self, nice: int = 0, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """One worker process, with ``env`` on top of the stack's worker settings;
        returns it once it polls."""
        name = f"worker-{len(self.processes)}"
        ready = self.work / f"{name}.ready"
        process = self._spawn(
            name,
            [sys.executable, "worker.py", "--ready-file", str(ready)],
            {**self.worker_env, **(env or {})},
            nice,
        )
        while not ready.exists():
            if process.poll() is not None:
                raise RuntimeError(
                    f"the worker exited while starting; its output is in {self.work / name}.log"
                )
            await asyncio.sleep(0.2)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """Stop one of the stack's processes and wait for it."""
        process.terminate()
        process.wait(timeout=30)
        self.processes.remove(process)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
