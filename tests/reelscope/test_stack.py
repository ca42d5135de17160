"""The embedded dev server's command line. That the server accepts it is shown by every
integration test (the session's dev server takes the same dynamic config) and by
`reelscope up --demo` in test_up.py."""

from __future__ import annotations

from pathlib import Path

from reelscope.stack import dev_server_command


def pairs(command: list[str], flag: str) -> list[str]:
    return [command[n + 1] for n, arg in enumerate(command[:-1]) if arg == flag]


def test_the_embedded_server_reads_its_transfer_queue_often_and_keeps_its_sqlite_settings(
    tmp_path: Path,
) -> None:
    command = dev_server_command(7233, tmp_path / "t.db", ui_port=8233)
    # At the server's default of 20 reads a second, a step of a job waits up to 50 ms
    # for its next task (bench/dispatch.py).
    assert "history.transferProcessorMaxPollRPS=1000" in pairs(command, "--dynamic-config-value")
    assert pairs(command, "--sqlite-pragma") == ["journal_mode=wal", "synchronous=normal"]
    assert pairs(command, "--db-filename") == [str(tmp_path / "t.db")]
    assert pairs(command, "--ui-port") == ["8233"] and "--headless" not in command
    assert "--headless" in dev_server_command(7233, tmp_path / "t.db")
