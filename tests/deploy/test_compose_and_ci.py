"""Offline checks of docker-compose.yml, the Dockerfile and the GitHub workflow: schemas, and
that they use the same ports, settings and steps as `make up`."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import yaml

from core.settings import Settings
from tests.deploy import go_toolchain
from tests.deploy import manifests as m

COMPOSE = m.COMPOSE
WORKFLOW = m.ROOT / ".github" / "workflows" / "ci.yml"
IMAGE = "ray-orders:0.1.0"
APP_SERVICES = ("init", "ray-head", "ray-worker")
RAY_NODES = ("ray-head", "ray-worker")
INFRA = ("kafka", "postgres", "redis")
DEFAULTS = {name: f.default for name, f in Settings.model_fields.items()}
DEV_SECRETS = m.ROOT / "docker" / "secrets.dev.env"
DEV_INFRA = m.ROOT / "docker" / "infra.dev.env"
IMAGES = {
    "ray-head": IMAGE,
    "postgres": "ray-orders-postgres:17.11-partman5",
    "kafka": "ray-orders-kafka:4.1.1",
}
ACTIONLINT_VERSION = "v1.7.12"
ACTIONLINT_GO = (1, 25)  # the `go` line of its go.mod: an older Go cannot build it


_compose = m.compose
_env = m.compose_env
_env_file = m.env_file


def _published(service: str) -> dict[int, int]:
    """host port -> container port of one service, each published on the host's loopback only
    (the committed dev env files hold known passwords and a known Ray token)."""
    ports = _compose()["services"][service].get("ports", [])
    parts = [str(p).split(":") for p in ports]
    assert all(len(p) == 3 and p[0] == "127.0.0.1" for p in parts), (service, ports)
    return {int(host): int(container) for _, host, container in parts}


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


def test_compose_kafka_listeners_serve_containers_and_the_host_with_scram_only() -> None:
    """Every listener but the controller's is SASL (docs/adr/ADR-011-kafka-auth.md), the
    controller listens inside the broker's container only, and the Ray nodes' settings name the
    containers' listener with SASL and the broker's own SCRAM user."""
    kafka = _compose()["services"]["kafka"]["environment"]
    protocols = dict(x.split(":") for x in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = dict(x.split("://") for x in kafka["KAFKA_LISTENERS"].split(","))
    advertised = dict(
        reversed(listener.split("://"))
        for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    controller = kafka["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert listeners[controller].startswith("localhost:") and controller not in advertised.values()
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@{listeners[controller]}"
    assert {protocols[n] for n in listeners if n != controller} == {"SASL_PLAINTEXT"}
    assert advertised["localhost:9092"] == "SASL_HOST"
    app = _env("ray-head")
    assert advertised[app["KAFKA_BOOTSTRAP"]] == kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert protocols[advertised[app["KAFKA_BOOTSTRAP"]]] == app["KAFKA_SECURITY_PROTOCOL"]
    assert app["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    broker = _env("kafka")
    assert (app["KAFKA_USERNAME"], app["KAFKA_PASSWORD"]) == (
        broker["KAFKA_USERNAME"],
        broker["KAFKA_PASSWORD"],
    )
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    health = " ".join(_compose()["services"]["kafka"]["healthcheck"]["test"])
    assert "--command-config /tmp/orders-kafka/client.properties" in health
    start = (m.ROOT / "docker" / "kafka" / "start.sh").read_text()
    assert 'conf="${BROKER_CONFIG_DIR:-/tmp/orders-kafka}"' in start


def test_compose_app_settings_are_the_local_stack_defaults_but_hosts_and_secrets() -> None:
    ray = [_env(s) for s in RAY_NODES]
    assert ray[0] == ray[1]
    env = ray[0]
    init = _env("init")
    assert {k: v for k, v in init.items() if k in env} == env
    assert env["HTTP_HOST"] == "0.0.0.0"
    hosts = {"DATABASE_URL": "postgres", "REDIS_URL": "redis"}
    for var, host in hosts.items():
        default, url = urlsplit(DEFAULTS[var.lower()]), urlsplit(env[var])
        assert url._replace(netloc="") == default._replace(netloc="")
        assert (url.hostname, url.port) == (host, default.port)
    kafka = {"KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_USERNAME", "KAFKA_PASSWORD"}
    skip = {"HTTP_HOST", "KAFKA_BOOTSTRAP", "JWT_SECRET", *hosts, *kafka}
    same = {k: v for k, v in env.items() if k.lower() in DEFAULTS and k not in skip}
    assert {"APP_ENV", "HTTP_PORT", "INVENTORY_SHARDS"} <= same.keys()
    assert {k: str(DEFAULTS[k.lower()]) for k in same} == same
    Settings(
        **cast(dict[str, Any], {k.lower(): v for k, v in env.items() if k.lower() in DEFAULTS})
    )


def test_compose_every_ray_node_has_the_runtime_secrets_and_token_auth() -> None:
    """cluster/deploy.py keeps secrets out of the job's runtime_env, so each Ray node (head and
    worker) has them in its own environment, with Ray's token authentication on; none holds the
    schema owner's or a server's credentials."""
    for name in RAY_NODES:
        env = _env(name)
        assert env.keys() >= m.RUNTIME_SECRETS, name
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"], name
        assert urlsplit(env["DATABASE_URL"]).username == "orders_app", name
        assert not m.OWNER_AND_SERVER_SECRETS & env.keys(), name
    for name in ("postgres", "redis", "kafka"):
        assert not {"JWT_SECRET", "RAY_AUTH_TOKEN", "DATABASE_URL"} & _env(name).keys(), name


@pytest.mark.parametrize(("app_env", "refused"), [("prod", True), ("dev", False)])
def test_the_ray_head_refuses_the_committed_token_outside_dev(
    tmp_path: Path, app_env: str, refused: bool
) -> None:
    """`docker/secrets.dev.env`'s Ray token is public; the platform refuses its other committed
    secrets outside APP_ENV=dev, and this one only Ray reads: the head's entry point does."""
    token = re.search(r"^RAY_AUTH_TOKEN=(\S+)$", DEV_SECRETS.read_text(), re.M)
    assert token, "the dev env file sets the Ray token"
    stub = tmp_path / "ray"  # stands for Ray: the test ends where the head would start
    stub.write_text("#!/bin/sh\necho ray-called\nexit 9\n")
    stub.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "APP_ENV": app_env}
    ran = subprocess.run(
        ["bash", str(m.ROOT / "docker" / "ray-head.sh")],
        env={**env, "RAY_AUTH_TOKEN": token.group(1)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if refused:
        assert ran.returncode == 2 and "committed demo token" in ran.stderr, ran
        assert "ray-called" not in ran.stdout
    else:
        assert "ray-called" in ran.stdout, ran


def test_compose_secrets_come_only_from_env_files() -> None:
    """docker-compose.yml holds no secret: the Ray nodes' come from docker/secrets.dev.env (public
    dev values) and the optional, git-ignored and docker-ignored docker/secrets.env, which wins;
    the servers' and the schema owner's from docker/infra.dev.env and docker/infra.env."""
    secrets, infra = _env_file(DEV_SECRETS), _env_file(DEV_INFRA)
    runtime = {"JWT_SECRET", "DATABASE_URL", "REDIS_URL", "RAY_AUTH_TOKEN", "KAFKA_PASSWORD"}
    assert runtime <= secrets.keys() and not m.OWNER_AND_SERVER_SECRETS & secrets.keys()
    assert m.OWNER_AND_SERVER_SECRETS | {"KAFKA_PASSWORD"} <= infra.keys()
    text = COMPOSE.read_text()
    for key in ("SECRET", "PASSWORD", "TOKEN", "DATABASE_URL", "REDIS_URL"):
        for service in _compose()["services"].values():
            assert not [k for k in service.get("environment", {}) if key in k]
    values = {**secrets, **infra}
    leaked = [v for k, v in values.items() if v in text and len(v) > 3 and "USER" not in k]
    assert not leaked, f"secret values written into docker-compose.yml: {leaked}"
    runtime_files = [("docker/secrets.dev.env", True), ("docker/secrets.env", False)]
    infra_files = [("docker/infra.dev.env", True), ("docker/infra.env", False)]
    expected = {
        **dict.fromkeys(RAY_NODES, runtime_files),
        **dict.fromkeys(INFRA, infra_files),
        "init": runtime_files + infra_files,
    }
    for name, files in expected.items():
        spec = _compose()["services"][name]["env_file"]
        assert [(e["path"], e.get("required", True)) for e in spec] == files, name
    for path in ("docker/secrets.env", "docker/infra.env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=m.ROOT, check=False)
        assert ignored.returncode == 0, f"{path} must be git-ignored"
    assert "docker/*.env" in (m.ROOT / ".dockerignore").read_text().split()


def test_compose_dev_env_files_agree_on_every_password() -> None:
    secrets, infra = _env_file(DEV_SECRETS), _env_file(DEV_INFRA)
    app, owner = urlsplit(secrets["DATABASE_URL"]), urlsplit(infra["MIGRATION_DATABASE_URL"])
    assert (app.username, app.password) == ("orders_app", infra["ORDERS_APP_DB_PASSWORD"])
    assert (owner.username, owner.password) == ("orders", infra["ORDERS_DB_PASSWORD"])
    assert owner._replace(netloc="") == app._replace(netloc="") and owner.port == app.port
    redis = urlsplit(secrets["REDIS_URL"])
    assert (redis.username, redis.password) == ("orders", infra["REDIS_PASSWORD"])
    for key in ("KAFKA_USERNAME", "KAFKA_PASSWORD"):
        assert secrets[key] == infra[key], key
    passwords = [v for k, v in infra.items() if k.endswith("PASSWORD")]
    assert len(set(passwords)) == len(passwords), "one password per role"


def test_compose_postgres_and_redis_require_the_roles_credentials() -> None:
    """Postgres: scram, the superuser for initdb only, the owner and the DML-only runtime role
    from the image's script (which mirrors cluster/services.sh, test_manifests.py); Redis: the
    ACL of cluster/services.sh from a file, the default user off."""
    services = _compose()["services"]
    postgres = services["postgres"]
    assert postgres["environment"]["POSTGRES_USER"] == "postgres"
    assert "--auth-host=scram-sha-256" in postgres["environment"]["POSTGRES_INITDB_ARGS"]
    assert postgres["build"] == "docker/postgres"
    health = " ".join(postgres["healthcheck"]["test"])
    assert "-U orders_app" in health and "ORDERS_APP_DB_PASSWORD" in health
    image = (m.ROOT / "docker" / "postgres" / "Dockerfile").read_text()
    assert "COPY 10-orders-role.sh /docker-entrypoint-initdb.d/" in image
    assert '"postgresql-${PG_MAJOR}-partman=${PARTMAN_MAJOR}.*"' in image
    script = services["redis"]["command"][-1]
    assert f"'{m.local_redis_default_user()}'" in script
    assert "--maxmemory 1gb --maxmemory-policy volatile-lru" in script  # as cluster/services.sh
    user = urlsplit(_env_file(DEV_SECRETS)["REDIS_URL"]).username
    assert f'"user {user} on #$$hash {m.local_redis_app_rules()}"' in script
    assert "REDIS_PASSWORD" in script and ">$$REDIS_PASSWORD" not in script  # hashed, not argv


def _settings_of(args: list[str]) -> dict[str, str]:
    """`-c name=value` pairs of a postgres command line."""
    return dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "-c")


def test_compose_and_k8s_postgres_have_the_local_stacks_tuning() -> None:
    """cluster/services.sh tunes the local stack's Postgres for the write path (ALTER SYSTEM,
    and autovacuum_max_workers at start); compose's and the Kubernetes one ran on defaults: the
    outbox vacuumed once a minute under load, checkpoints every few minutes."""
    services = (m.ROOT / "cluster" / "services.sh").read_text()
    local = dict(re.findall(r"ALTER SYSTEM SET (\w+) = '([^']+)';", services))
    assert local.pop("password_encryption") == "scram-sha-256"  # Postgres 17's default
    local["autovacuum_max_workers"] = re.findall(r"PG_AUTOVACUUM_WORKERS:-(\d+)", services)[0]
    assert len(local) == 9, local
    compose = _settings_of(_compose()["services"]["postgres"]["command"])
    statefulset = m.resource("StatefulSet", "postgres")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    k8s = _settings_of(container["args"])
    # but for what the pod's size bounds: its WAL within its 2 Gi volume, its autovacuum within
    # its 512 Mi (eight workers of 16 MB beside 128 MB of shared buffers)
    pod = {**local, "max_wal_size": "1GB", "autovacuum_work_mem": "16MB"}
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "2Gi"
    }
    assert container["resources"]["limits"]["memory"] == "512Mi"
    for where, given, expected in (("compose", compose, local), ("k8s", k8s, pod)):
        assert {k: given.get(k) for k in expected} == expected, where


def test_compose_builds_each_image_once_and_the_k8s_manifests_run_them() -> None:
    services = _compose()["services"]
    builders = {name: spec["image"] for name, spec in services.items() if "build" in spec}
    assert builders == IMAGES
    assert services["ray-head"]["build"] == "."
    assert services["kafka"]["build"] == "docker/kafka"
    for kind, name in (("StatefulSet", "postgres"), ("StatefulSet", "kafka")):
        pod = m.resource(kind, name)["spec"]["template"]["spec"]
        assert pod["containers"][0]["image"] == builders[name]
    for name in APP_SERVICES:
        assert services[name]["image"] == IMAGE
        if name != "ray-head":
            assert services[name]["pull_policy"] == "never", name
    job = m.resource("Job", "orders-init")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    kafka_image = (m.ROOT / "docker" / "kafka" / "Dockerfile").read_text()
    assert "FROM apache/kafka:4.1.1" in kafka_image
    assert 'CMD ["bash", "/etc/orders/kafka-start.sh"]' in kafka_image


def test_third_party_images_are_pinned_to_a_patch_release_and_named_alike() -> None:
    """A floating tag (`redis:7.4`, `postgres:17`) or an unversioned package is a different
    server on each build or node: compose and k8s run one pinned Redis, the Postgres image is
    built from a pinned base and pg_partman of a pinned major (PGDG serves only its newest
    build, so a pinned patch release would stop building), and its tag names both (a new build
    is a new tag: k8s pulls with IfNotPresent)."""
    services = _compose()["services"]
    redis_pod = m.resource("StatefulSet", "redis")["spec"]["template"]["spec"]
    redis = services["redis"]["image"]
    assert redis == redis_pod["containers"][0]["image"]
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+(-[a-z0-9.]+)?", redis), redis
    dockerfile = (m.ROOT / "docker" / "postgres" / "Dockerfile").read_text()
    base = re.search(r"^FROM postgres:(\d+)\.(\d+)-([a-z]+)$", dockerfile, re.M)
    assert base, "docker/postgres/Dockerfile: FROM postgres:<major>.<minor>-<debian suite>"
    partman = re.search(r"^ARG PARTMAN_MAJOR=(\d+)$", dockerfile, re.M)
    assert partman, "docker/postgres/Dockerfile: ARG PARTMAN_MAJOR=<major>"
    assert '"postgresql-${PG_MAJOR}-partman=${PARTMAN_MAJOR}.*"' in dockerfile
    tag = f"ray-orders-postgres:{base[1]}.{base[2]}-partman{partman[1]}"
    postgres_pod = m.resource("StatefulSet", "postgres")["spec"]["template"]["spec"]
    assert services["postgres"]["image"] == postgres_pod["containers"][0]["image"] == tag
    assert f"-t {tag} docker/postgres" in dockerfile
    assert IMAGES["postgres"] == tag


def test_compose_runs_the_same_steps_as_make_up() -> None:
    """init migrates and seeds as the schema owner, as cluster/up.sh does; ray-head deploys."""
    services = _compose()["services"]
    head = services["ray-head"]["command"]
    script = (m.ROOT / head[-1]).read_text()
    init = " ".join(services["init"]["command"]).replace("$$", "$")
    up = (m.ROOT / "cluster" / "up.sh").read_text()
    owner = r'(DATABASE_URL="\$MIGRATION_DATABASE_URL" )?'
    as_owner = re.compile(owner + r"\S* ?-m cli\.main (\w+)")
    assert as_owner.findall(init) == [
        ('DATABASE_URL="$MIGRATION_DATABASE_URL" ', "migrate"),
        ('DATABASE_URL="$MIGRATION_DATABASE_URL" ', "seed"),
        ("", "topics"),
    ]
    steps = _cli_steps(init) + _cli_steps(script)
    # (`token`: the demo token make up prints with the dev secret, no step of the stack's)
    assert steps == [step for step in _cli_steps(up) if step != "token"]
    assert 'DATABASE_URL="$MIGRATION_DATABASE_URL" "$PY" -m cli.main migrate' in up
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
    """actionlint, built from its Go module (pinned) into .run/tools/bin if missing: with the
    machine's Go, or a pinned toolchain from the Go module proxy (tests/deploy/go_toolchain.py)."""
    tools = m.ROOT / ".run" / "tools"
    binary = tools / "bin" / "actionlint"
    if binary.exists():
        version = subprocess.run([binary, "-version"], capture_output=True, text=True, check=False)
        if version.stdout.startswith(ACTIONLINT_VERSION):
            return str(binary)
    module = f"github.com/rhysd/actionlint/cmd/actionlint@{ACTIONLINT_VERSION}"
    try:
        go, go_env = go_toolchain.go_command(ACTIONLINT_GO, tools)
        subprocess.run(
            [go, "install", module],
            env={**os.environ, **go_env, "GOBIN": str(binary.parent), "GOFLAGS": "-mod=mod"},
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"`go install {module}` failed: {exc.stderr}")
    except (OSError, go_toolchain.GoUnavailable) as exc:
        pytest.fail(f"cannot build actionlint with `go install {module}`: {exc}")
    return str(binary)


@pytest.mark.timeout(900)  # the first of them may build actionlint (and fetch a Go toolchain)
def test_ci_workflow_passes_actionlint() -> None:
    result = subprocess.run(
        [actionlint(), "-no-color", "-oneline", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(900)  # the first of them may build actionlint (and fetch a Go toolchain)
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
