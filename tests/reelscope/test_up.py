"""`reelscope up --demo`, the README's main command, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


def test_up_with_demo_processes_the_sample_and_leaves_nothing_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "stack"
    ports = [free_port() for _ in range(3)]
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "reelscope.cli",
            "up",
            "--demo",
            "--exit-after-demo",
            "--api-port",
            str(ports[0]),
            "--temporal-port",
            str(ports[1]),
            "--ui-port",
            str(ports[2]),
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert f"API          http://127.0.0.1:{ports[0]}" in output
    assert f"Temporal UI  http://127.0.0.1:{ports[2]}" in output
    assert "Result of job-" in output and ": succeeded" in output
    assert '"OPEN SOURCE VIDEO"' in output and '"TEMPORAL WORKFLOW 42"' in output
    assert "sunny and warm" in output
    assert "--workflow-id job-" in output and "--name progress" in output
    assert (data_dir / "sample" / "result.json").is_file()
    assert (data_dir / "temporal.db").is_file(), "the dev server persists to SQLite"
    assert "Stopped: API, worker and Temporal dev server." in output
    assert time.monotonic() - started < 300
    time.sleep(0.5)
    assert processes_mentioning(str(data_dir)) == [], "no child outlives `reelscope up`"
    workspaces = data_dir / "workspaces"
    assert not workspaces.exists() or not any(workspaces.rglob("*.mp4"))


def test_up_refuses_a_busy_port_with_a_clear_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "reelscope.cli",
                "up",
                "--temporal-port",
                str(port),
                "--api-port",
                str(free_port()),
                "--ui-port",
                str(free_port()),
                "--data-dir",
                str(tmp_path / "d"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 1
    assert f"port {port} (Temporal) is already in use" in run.stderr
