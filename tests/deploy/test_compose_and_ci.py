"""Offline checks of docker-compose.yml, the Dockerfile and the GitHub workflow: schemas, and
that they use the same ports, settings and steps as `make up`."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from core.settings import Settings
from tests.deploy import manifests as m

COMPOSE = m.ROOT / "docker-compose.yml"
WORKFLOW = m.ROOT / ".github" / "workflows" / "ci.yml"
IMAGE = "ray-orders:0.1.0"
APP_SERVICES = ("init", "ray-head", "ray-worker")
INFRA = ("kafka", "postgres", "redis")
DEFAULTS = {name: f.default for name, f in Settings.model_fields.items()}
DEV_SECRETS = m.ROOT / "docker" / "secrets.dev.env"
ACTIONLINT_VERSION = "v1.7.12"


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return compose


def _interpolate(value: Any) -> str:
    """Compose's `${VAR:-default}` with nothing set in the environment."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def _env_file(path: Path) -> dict[str, str]:
    pairs = (x.split("=", 1) for x in path.read_text().splitlines() if x and x[0] != "#")
    return dict(pairs)


def _env(service: str) -> dict[str, str]:
    """The environment a service's container gets with only the committed env files (the
    optional docker/secrets.env absent): env_file entries in order, then `environment`."""
    spec = _compose()["services"][service]
    env: dict[str, str] = {}
    for entry in spec.get("env_file", []):
        path = m.ROOT / entry["path"]
        if path.exists() or entry.get("required", True):
            env.update(_env_file(path))
    env.update({k: _interpolate(v) for k, v in spec.get("environment", {}).items()})
    return env


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


def _cli_steps(text: str) -> list[str]:
    return re.findall(r"-m cli\.main (\w+)", text)


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
    assert advertised[_env("ray-head")["KAFKA_BOOTSTRAP"]] == "PLAINTEXT"
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_compose_app_settings_are_the_local_stack_defaults_but_hosts_and_secrets() -> None:
    envs = [_env(s) for s in APP_SERVICES]
    assert all(env == envs[0] for env in envs)
    env = envs[0]
    assert env["HTTP_HOST"] == "0.0.0.0"
    hosts = {"DATABASE_URL": "postgres", "REDIS_URL": "redis"}
    for var, host in hosts.items():
        default, url = urlsplit(DEFAULTS[var.lower()]), urlsplit(env[var])
        assert url._replace(netloc="") == default._replace(netloc="")
        assert (url.hostname, url.port) == (host, default.port)
    skip = {"HTTP_HOST", "KAFKA_BOOTSTRAP", "JWT_SECRET", *hosts}
    same = {k: v for k, v in env.items() if k.lower() in DEFAULTS and k not in skip}
    assert {"APP_ENV", "HTTP_PORT", "INVENTORY_SHARDS"} <= same.keys()
    assert {k: str(DEFAULTS[k.lower()]) for k in same} == same
    Settings(**{k.lower(): v for k, v in env.items() if k.lower() in DEFAULTS})


def test_compose_secrets_come_only_from_env_files() -> None:
    """docker-compose.yml holds no secret: they come from docker/secrets.dev.env (public dev
    values) and the optional, git-ignored and docker-ignored docker/secrets.env, which wins."""
    secrets = _env_file(DEV_SECRETS)
    assert {"JWT_SECRET", "POSTGRES_PASSWORD", "ORDERS_DB_PASSWORD", "REDIS_PASSWORD"} <= set(
        secrets
    )
    text = COMPOSE.read_text()
    for key in ("JWT_SECRET", "PASSWORD", "DATABASE_URL", "REDIS_URL"):
        for service in _compose()["services"].values():
            assert not [k for k in service.get("environment", {}) if key in k]
    leaked = [v for v in secrets.values() if v in text and len(v) > 3]
    assert not leaked, f"secret values written into docker-compose.yml: {leaked}"
    for name in (*APP_SERVICES, "postgres", "redis"):
        files = [
            (e["path"], e.get("required", True)) for e in _compose()["services"][name]["env_file"]
        ]
        assert files == [("docker/secrets.dev.env", True), ("docker/secrets.env", False)], name
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "docker/secrets.env"], cwd=m.ROOT, check=False
    )
    assert ignored.returncode == 0, "docker/secrets.env must be git-ignored"
    assert "docker/*.env" in (m.ROOT / ".dockerignore").read_text().split()


def test_compose_postgres_and_redis_require_the_apps_credentials() -> None:
    secrets = _env_file(DEV_SECRETS)
    services = _compose()["services"]
    db = urlsplit(secrets["DATABASE_URL"])
    postgres = services["postgres"]
    assert postgres["environment"]["POSTGRES_USER"] != db.username == "orders"
    assert "--auth-host=scram-sha-256" in postgres["environment"]["POSTGRES_INITDB_ARGS"]
    assert db.password == secrets["ORDERS_DB_PASSWORD"] != secrets["POSTGRES_PASSWORD"]
    assert postgres["build"] == "docker/postgres"
    image = (m.ROOT / "docker" / "postgres" / "Dockerfile").read_text()
    assert "COPY 10-orders-role.sh /docker-entrypoint-initdb.d/" in image
    assert '"postgresql-${PG_MAJOR}-partman"' in image
    script = (m.ROOT / "docker" / "postgres" / "10-orders-role.sh").read_text()
    assert "CREATE ROLE orders LOGIN NOSUPERUSER" in script
    redis = urlsplit(secrets["REDIS_URL"])
    command = " ".join(services["redis"]["command"])
    assert "--user default off" in command
    assert f"--user {redis.username} on" in command and "$$REDIS_PASSWORD" in command
    assert redis.password == secrets["REDIS_PASSWORD"]


def test_compose_services_are_healthchecked_and_started_in_order() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {*INFRA, *APP_SERVICES}
    assert all("healthcheck" in s for n, s in services.items() if n != "init")
    infra = dict.fromkeys(INFRA, "service_healthy")

    def needs(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in services[name]["depends_on"].items()}

    assert needs("init") == infra
    assert services["init"]["restart"] == "no"
    assert needs("ray-head") == {**infra, "init": "service_completed_successfully"}
    assert needs("ray-worker") == {"ray-head": "service_healthy"}
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert used == set(compose["volumes"])


def test_compose_builds_each_image_once_and_the_k8s_manifests_run_them() -> None:
    services = _compose()["services"]
    builders = {name: spec["image"] for name, spec in services.items() if "build" in spec}
    assert builders == {"ray-head": IMAGE, "postgres": "ray-orders-postgres:17"}
    assert services["ray-head"]["build"] == "."
    postgres = m.resource("StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"][0]
    assert postgres["image"] == builders["postgres"]
    for name in APP_SERVICES:
        assert services[name]["image"] == IMAGE
        if name != "ray-head":
            assert services[name]["pull_policy"] == "never", name
    job = m.resource("Job", "orders-init")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE


def test_compose_runs_the_same_steps_as_make_up() -> None:
    services = _compose()["services"]
    head = services["ray-head"]["command"]
    script = (m.ROOT / head[-1]).read_text()
    steps = _cli_steps(" ".join(services["init"]["command"])) + _cli_steps(script)
    assert steps == _cli_steps((m.ROOT / "cluster" / "up.sh").read_text())
    assert _cli_steps(script) == ["deploy"]
    assert "--dashboard-host=0.0.0.0" in script
    worker = " ".join(services["ray-worker"]["command"])
    for command in (script, worker):
        assert "--metrics-export-port=" in command and "METRICS_EXPORT_PORT" in command


def test_dockerfile_uses_the_pinned_ray_and_python() -> None:
    dockerfile = (m.ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG RAY_IMAGE=rayproject/ray:(\S+)$", dockerfile, re.M)
    assert base, "Dockerfile must build on rayproject/ray through ARG RAY_IMAGE"
    ray_version = importlib.import_module("ray").__version__
    assert base.group(1) == f"{ray_version}-py311-cpu"
    assert f"ray=={ray_version}\n" in (m.ROOT / "requirements.lock").read_text()


def test_dockerfile_installs_locked_dependencies_before_the_source() -> None:
    lines = (m.ROOT / "Dockerfile").read_text().splitlines()
    deps = next(i for i, x in enumerate(lines) if "pip install -c requirements.lock -r" in x)
    copies = [i for i, x in enumerate(lines) if x.startswith("COPY")]
    assert "requirements.lock" in lines[copies[0]] and copies[0] < deps
    assert all(i > deps for i in copies[1:]), "source copied before the dependencies"
    assert any("pip install --no-deps -c requirements.lock ." in x for x in lines)


def test_dockerfile_copies_every_package_and_dockerignore_keeps_them() -> None:
    pyproject = tomllib.loads((m.ROOT / "pyproject.toml").read_text())
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    dockerfile = (m.ROOT / "Dockerfile").read_text()
    ignored = set((m.ROOT / ".dockerignore").read_text().split())
    for package in packages:
        assert f"COPY --chown=ray:users {package}/ {package}/" in dockerfile, package
        assert package not in ignored, package
    assert {".git", ".venv", ".run", ".env"} <= ignored


def test_ci_workflow_matches_the_github_workflow_schema() -> None:
    result = m.check_jsonschema("vendor.github-workflows", WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_github_workflow_schema_rejects_an_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "ci.yml"
    path.write_text(WORKFLOW.read_text() + "\nsteps: []\n")
    assert m.check_jsonschema("vendor.github-workflows", path).returncode != 0


def _workflow() -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return workflow


def _steps(job: str | None = None) -> list[dict[str, Any]]:
    jobs = _workflow()["jobs"]
    return [step for name, j in jobs.items() if job in (None, name) for step in j["steps"]]


@pytest.mark.parametrize(
    "command", ["make test", "tests/deploy/test_manifests.py", "docker compose up -d --build"]
)
def test_ci_workflow_runs(command: str) -> None:
    assert any(command in step.get("run", "") for step in _steps())


def actionlint() -> str:
    """actionlint, built from its Go module (pinned) into .run/tools/bin if missing."""
    binary = m.ROOT / ".run" / "tools" / "bin" / "actionlint"
    if binary.exists():
        version = subprocess.run([binary, "-version"], capture_output=True, text=True, check=False)
        if version.stdout.startswith(ACTIONLINT_VERSION):
            return str(binary)
    module = f"github.com/rhysd/actionlint/cmd/actionlint@{ACTIONLINT_VERSION}"
    env = {**os.environ, "GOBIN": str(binary.parent), "GOFLAGS": "-mod=mod"}
    path = env.get("PATH", "")
    env["PATH"] = f"{path}:/usr/local/go/bin"  # where Go's own archive installs it
    try:
        subprocess.run(
            ["go", "install", module],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"cannot build actionlint with `go install {module}` (Go needed): {exc}")
    return str(binary)


def test_ci_workflow_passes_actionlint() -> None:
    result = subprocess.run(
        [actionlint(), "-no-color", "-oneline", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_a_wrong_expression(tmp_path: Path) -> None:
    broken = tmp_path / "ci.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ github.workspace }}", "${{ github.nope }}"))
    result = subprocess.run(
        [actionlint(), "-no-color", "-oneline", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1 and 'property "nope" is not defined' in result.stdout


def test_ci_downloads_nothing_beside_the_checkout() -> None:
    """Everything the tests read is in the checkout (the KubeRay CRDs are vendored)."""
    # one line per shell command: continuation lines joined
    runs = (step.get("run", "").replace("\\\n", " ") for step in _steps())
    lines = [x for run in runs for x in run.splitlines()]
    fetch = re.compile(r"\b(curl|wget)\b.*https?://(?!localhost[:/]|127\.0\.0\.1[:/])")
    assert not [x for x in lines if fetch.search(x)]
    checkouts = [s for s in _steps() if str(s.get("uses", "")).startswith("actions/checkout")]
    assert checkouts and all("with" not in s or "path" not in s["with"] for s in checkouts)
    assert m.CRD_DIR.is_relative_to(m.ROOT) and any(m.CRD_DIR.glob("ray.io_*.yaml"))


def test_ci_caches_pip_maven_and_npm() -> None:
    (setup,) = [s for s in _steps("manifests") if "setup-python" in str(s.get("uses"))]
    assert setup["with"]["cache"] == "pip"
    test_job = _workflow()["jobs"]["test"]
    (cache,) = [s for s in test_job["steps"] if str(s.get("uses", "")).startswith("actions/cache")]
    paths = set(cache["with"]["path"].split())
    env = test_job["env"]
    # make test (as root) writes where the cache step restores and saves.
    assert env["PIP_CACHE_DIR"].endswith(".cache/pip") and ".cache/pip" in paths
    assert env["npm_config_cache"].endswith(".cache/npm") and ".cache/npm" in paths
    assert "-Dmaven.repo.local=" in env["MAVEN_OPTS"] and ".cache/m2" in paths
    for source in ("requirements.lock", "cluster/kafka/pom.xml", "cluster/install-node-tools.sh"):
        assert source in cache["with"]["key"]
    assert any("sudo -E" in s.get("run", "") for s in test_job["steps"])


def test_ci_compose_job_follows_the_order_to_delivered() -> None:
    script = " ".join(s.get("run", "") for s in _steps("compose"))
    assert "http://localhost:8080/api/orders/$order_id" in script
    assert '"$status" != DELIVERED' in script and "deadline" in script
