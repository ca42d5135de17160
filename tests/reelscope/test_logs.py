from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from reelscope.logs import configure_logging


@pytest.fixture
def logging_put_back() -> Iterator[None]:
    """The process's logging as it was before the test."""
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def test_logs_hide_the_passwords_of_links(
    logging_put_back: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ours and the libraries' (through stdlib logging): a link's password never reaches
    the log, the rest of the line does."""
    configure_logging("json")  # here, where stderr is the test's own
    structlog.get_logger("test").warning(
        "download.failed", url="http://ann:s3cret@host/a.mp4", attempt=2
    )
    logging.getLogger("a_library").warning("ERROR: HTTP Error 401 for http://ann:s3cret@host/a.mp4")
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.err.splitlines()]
    assert "s3cret" not in json.dumps(lines)
    assert lines[0]["url"] == "http://ann:***@host/a.mp4" and lines[0]["attempt"] == 2
    assert lines[1]["event"] == "ERROR: HTTP Error 401 for http://ann:***@host/a.mp4"
