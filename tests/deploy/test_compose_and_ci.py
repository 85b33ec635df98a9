"""Offline checks of docker-compose.yml, the Dockerfile and the GitHub workflow: schemas, and
that they use the same ports, settings and steps as `make up`."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from core.settings import Settings
from tests.deploy import manifests as m

COMPOSE = m.ROOT / "docker-compose.yml"
WORKFLOW = m.ROOT / ".github" / "workflows" / "ci.yml"
APP_SERVICES = ("ray-head", "ray-worker")
DEFAULTS = {name: f.default for name, f in Settings.model_fields.items()}


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return compose


def _interpolate(value: Any) -> str:
    """Compose's `${VAR:-default}` with nothing set in the environment."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def _app_env(service: str) -> dict[str, str]:
    env = _compose()["services"][service]["environment"]
    return {k: _interpolate(v) for k, v in env.items()}


def _published(service: str) -> dict[int, int]:
    """host port -> container port of one service."""
    ports = _compose()["services"][service].get("ports", [])
    pairs = (str(p).split(":") for p in ports)
    return {int(host): int(container) for host, container in pairs}


def _local_stack_default(var: str) -> int:
    """A port default of `make up`, from cluster/common.sh."""
    common = (m.ROOT / "cluster" / "common.sh").read_text()
    found = re.search(rf'{var}="\$\{{{var}:-(\d+)\}}"', common)
    assert found, f"{var} default not found in cluster/common.sh"
    return int(found.group(1))


def _cli_steps(script: Path) -> list[str]:
    return re.findall(r"-m cli\.main (\w+)", script.read_text())


def test_compose_file_matches_the_compose_specification() -> None:
    result = m.check_jsonschema("vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_specification_rejects_an_unknown_service_key(tmp_path: Path) -> None:
    broken = _compose()
    broken["services"]["redis"]["helthcheck"] = broken["services"]["redis"]["healthcheck"]
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    assert m.check_jsonschema("vendor.compose-spec", path).returncode != 0


def test_compose_publishes_the_local_stack_ports() -> None:
    expected = {
        "ray-head": {DEFAULTS["http_port"], _local_stack_default("DASHBOARD_PORT")},
        "postgres": {urlsplit(DEFAULTS["database_url"]).port},
        "redis": {urlsplit(DEFAULTS["redis_url"]).port},
        "kafka": {int(DEFAULTS["kafka_bootstrap"].rsplit(":", 1)[1])},
    }
    assert expected == {
        "ray-head": {8080, 8265},
        "postgres": {5432},
        "redis": {6379},
        "kafka": {9092},
    }
    for service, ports in expected.items():
        published = _published(service)
        assert set(published) == ports, service
        assert all(host == inner for host, inner in published.items()), service


def test_compose_kafka_listeners_serve_containers_and_the_host() -> None:
    kafka = _compose()["services"]["kafka"]["environment"]
    advertised = dict(
        reversed(listener.split("://"))
        for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    assert advertised["localhost:9092"] == "PLAINTEXT_HOST"
    assert advertised[_app_env("ray-head")["KAFKA_BOOTSTRAP"]] == "PLAINTEXT"
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_compose_app_settings_are_the_local_stack_defaults_but_hosts() -> None:
    envs = [_app_env(s) for s in APP_SERVICES]
    assert envs[0] == envs[1]
    env = envs[0]
    assert env["HTTP_HOST"] == "0.0.0.0"
    hosts = {"DATABASE_URL": "postgres", "REDIS_URL": "redis"}
    for var, host in hosts.items():
        default = urlsplit(DEFAULTS[var.lower()])
        assert urlsplit(env[var])._replace(netloc="") == default._replace(netloc="")
        assert (urlsplit(env[var]).hostname, urlsplit(env[var]).port) == (host, default.port)
    skip = {"HTTP_HOST", "KAFKA_BOOTSTRAP", *hosts}
    same = {k: v for k, v in env.items() if k.lower() in DEFAULTS and k not in skip}
    assert {"APP_ENV", "JWT_SECRET", "HTTP_PORT", "INVENTORY_SHARDS"} <= same.keys()
    assert {k: str(DEFAULTS[k.lower()]) for k in same} == same
    Settings(**{k.lower(): v for k, v in env.items() if k.lower() in DEFAULTS})


def test_compose_services_are_healthchecked_and_started_in_order() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"kafka", "postgres", "redis", *APP_SERVICES}
    assert all("healthcheck" in s for s in services.values())
    head_needs = services["ray-head"]["depends_on"]
    assert {k: v["condition"] for k, v in head_needs.items()} == {
        "kafka": "service_healthy",
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert used == set(compose["volumes"])


def test_compose_builds_the_image_the_k8s_manifests_run() -> None:
    for service in APP_SERVICES:
        spec = _compose()["services"][service]
        assert spec["build"] == "."
        assert spec["image"] == "ray-orders:0.1.0"
    assert (
        m.resource("Job", "orders-init")["spec"]["template"]["spec"]["containers"][0]["image"]
        == "ray-orders:0.1.0"
    )


def test_compose_head_runs_the_same_steps_as_make_up() -> None:
    head = _compose()["services"]["ray-head"]["command"]
    script = m.ROOT / head[-1]
    assert _cli_steps(script) == _cli_steps(m.ROOT / "cluster" / "up.sh")
    assert _cli_steps(script)[-1] == "deploy"
    assert "--dashboard-host=0.0.0.0" in script.read_text()
    worker = " ".join(_compose()["services"]["ray-worker"]["command"])
    for command in (script.read_text(), worker):
        assert "--metrics-export-port=" in command and "METRICS_EXPORT_PORT" in command


def test_dockerfile_uses_the_pinned_ray_and_python() -> None:
    dockerfile = (m.ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG RAY_IMAGE=rayproject/ray:(\S+)$", dockerfile, re.M)
    assert base, "Dockerfile must build on rayproject/ray through ARG RAY_IMAGE"
    ray_version = importlib.import_module("ray").__version__
    assert base.group(1) == f"{ray_version}-py311-cpu"
    assert f"ray=={ray_version}\n" in (m.ROOT / "requirements.lock").read_text()
    assert "pip install -c requirements.lock ." in dockerfile
    ignored = (m.ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".run", ".env"} <= set(ignored)


def test_ci_workflow_matches_the_github_workflow_schema() -> None:
    result = m.check_jsonschema("vendor.github-workflows", WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_github_workflow_schema_rejects_an_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "ci.yml"
    path.write_text(WORKFLOW.read_text() + "\nsteps: []\n")
    assert m.check_jsonschema("vendor.github-workflows", path).returncode != 0


@pytest.mark.parametrize(
    "command", ["make test", "tests/deploy/test_manifests.py", "docker compose up -d --build"]
)
def test_ci_workflow_runs(command: str) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    runs = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert any(command in run for run in runs)
