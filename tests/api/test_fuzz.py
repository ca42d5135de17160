"""A property-based pass over the OpenAPI schema (schemathesis): whatever the request,
the API answers without a server error. The API runs as its own process against the
test session's Temporal server; jobs it accepts wait on a queue no worker polls."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from temporalio.testing import WorkflowEnvironment

from tests.conftest import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api_url(
    temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "REELSCOPE_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "REELSCOPE_API_PORT": str(port),
        "REELSCOPE_DATA_DIR": str(tmp_path_factory.mktemp("fuzz")),
        "REELSCOPE_TASK_QUEUE": "fuzz-no-worker",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "reelscope.cli", "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "API did not start"
        time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_no_request_produces_a_server_error(api_url: str) -> None:
    # schemathesis' pytest plugin does not run under this pytest; its strategies do.
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    failures: list[str] = []
    seen: list[tuple[str, int]] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def probe(case: schemathesis.Case) -> None:
            response = case.call(base_url=api_url, timeout=15)
            seen.append((case.method, response.status_code))
            if response.status_code >= 500 or "Traceback" in response.text:
                failures.append(
                    f"{case.method} {case.formatted_path} -> "
                    f"{response.status_code}: {response.text[:200]}"
                )

        probe()
    assert failures == []
    assert len(seen) >= 8 * 20, "the fuzzer must really have run"
