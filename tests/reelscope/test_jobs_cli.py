"""`reelscope process|status|result|cancel`, run as a user runs them, against the API."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from reelscope.settings import Settings
from tests.conftest import SAMPLE_NAME

pytestmark = pytest.mark.e2e


async def reelscope(*args: str) -> tuple[int, str, str]:
    # Async, because the API and worker under test run in this event loop.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reelscope.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_process_wait_json_then_status_result_cancel(
    api: httpx.AsyncClient, worker: Settings, media_url: str
) -> None:
    base = str(api.base_url)
    code, out, err = await reelscope(
        "process",
        f"{media_url}/{SAMPLE_NAME}",
        f"{media_url}/missing.mp4",
        "--wait",
        "--json",
        "--api",
        base,
    )
    assert code == 1, err  # one item failed: the job only partially succeeded
    result = json.loads(out)
    assert result["state"] == "partially_succeeded"
    assert [i["state"] for i in result["items"]] == ["succeeded", "failed"]
    assert "submitted job-" in err and "item 0" in err  # progress went to stderr
    job_id = result["job_id"]

    code, out, _ = await reelscope("status", job_id, "--api", base)
    assert code == 0 and f"{job_id}: partially_succeeded (100%)" in out
    assert "NotFound: resolve: the server answered 404" in out

    code, out, _ = await reelscope("result", job_id, "--api", base)
    assert '"OPEN SOURCE VIDEO"' in out and "4 scenes" in out

    code, out, _ = await reelscope("cancel", job_id, "--api", base)
    assert code == 0 and "had already ended: partially_succeeded" in out


async def test_srt_output_and_errors_a_user_can_act_on(
    api: httpx.AsyncClient, worker: Settings, media_url: str
) -> None:
    base = str(api.base_url)
    code, out, _ = await reelscope(
        "process", f"{media_url}/{SAMPLE_NAME}", "--wait", "--srt", "--api", base
    )
    assert code == 0
    assert out.startswith("1\n00:00:00,000 --> ") and "sunny and warm" in out

    code, _, err = await reelscope("status", "job-nope", "--api", base)
    assert code == 2 and "NotFound: no job 'job-nope'" in err
    code, _, err = await reelscope("status", "job-x", "--api", "http://127.0.0.1:9")
    assert code == 2 and "cannot reach the Reelscope API at http://127.0.0.1:9" in err


async def test_a_file_on_this_machine_is_served_to_the_worker_while_the_command_runs(
    api: httpx.AsyncClient, worker: Settings, media_dir: Path, tmp_path: Path
) -> None:
    base = str(api.base_url)
    clip = tmp_path / "my clip.mp4"
    shutil.copy(media_dir / SAMPLE_NAME, clip)
    code, out, err = await reelscope("process", str(clip), "--json", "--api", base)
    assert code == 0, err
    assert "serving the local files until the job ends" in err  # it waited unasked
    item = json.loads(out)["items"][0]
    assert item["state"] == "succeeded" and len(item["scenes"]) == 4
    assert item["metadata"]["title"] == "my clip"
    assert item["source_url"].startswith("http://127.0.0.1:")

    code, _, err = await reelscope("process", str(tmp_path / "nope.mp4"), "--api", base)
    assert code == 2 and "neither a link" in err
    code, _, err = await reelscope("process", "example.com/clip.mp4", "--api", base)
    assert code == 2 and "neither a link" in err
    # A worker elsewhere could not fetch it: said before anything is submitted.
    code, _, err = await reelscope("process", str(clip), "--api", "http://192.0.2.1:8000")
    assert code == 2 and "the API at http://192.0.2.1:8000 is elsewhere" in " ".join(err.split())
