"""The servers of docker-compose.yml and k8s/ as their own start scripts and commands configure
them, run on this machine with the servers `make up` installs (tests/deploy/local_servers.py):
Kafka only with SCRAM and the Ray nodes' settings, Redis with the ACL of cluster/services.sh,
Postgres with a DML-only runtime role after the owner's migrations. What remains unchecked here
is the images themselves (no Docker daemon) and a cluster (no Kubernetes)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from adapters import kafka
from core.settings import get_settings
from domain.events import Topic
from tests.deploy import local_servers as ls
from tests.deploy import manifests as m

SOURCES = ("compose", "k8s")


def _k8s_container(kind: str, name: str) -> dict[str, Any]:
    container: dict[str, Any] = m.resource(kind, name)["spec"]["template"]["spec"]["containers"][0]
    return container


def _server_env(source: str, service: str) -> dict[str, str]:
    if source == "compose":
        return m.compose_env(service)
    return m.container_env(_k8s_container("StatefulSet", service))


def _ray_node_env(source: str) -> dict[str, str]:
    if source == "compose":
        return m.compose_env("ray-head")
    return m.container_env(m.app_containers()["head"])


@pytest.fixture
def app_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Settings read afresh from the variables a test sets, and forgotten after it."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


# --- Kafka: docker/kafka/start.sh -------------------------------------------------------------


def _start_kafka(source: str, tmp: Path, data: Path) -> tuple[list[str], dict[str, str], int]:
    """command, environment and the Ray nodes' listener port of the broker of `source`."""
    original = _server_env(source, "kafka")
    env, ports = ls.localize_kafka(original, data)
    listener = ls.listener_of(original, _ray_node_env(source)["KAFKA_BOOTSTRAP"])
    env.update(
        PATH=os.environ["PATH"],
        HOME=str(tmp),
        BROKER_HOME=str(tmp / "home"),
        BROKER_CONFIG_DIR=str(tmp / "conf"),
    )
    return ["bash", str(m.ROOT / "docker" / "kafka" / "start.sh")], env, ports[listener]


def _use_kafka(monkeypatch: pytest.MonkeyPatch, source: str, port: int, **override: str) -> None:
    node = _ray_node_env(source)
    for key in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_USERNAME"):
        monkeypatch.setenv(key, node[key])
    monkeypatch.setenv("KAFKA_PASSWORD", node["KAFKA_PASSWORD"])
    monkeypatch.setenv("KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    for key, value in override.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


async def _round_trip(bootstrap: str) -> list[bytes]:
    """Create the topics, publish one event and read it back, every client through
    adapters.kafka.client_options()."""
    await kafka.ensure_topics(bootstrap, 1)
    assert await kafka.missing_topics(bootstrap) == []
    producer = await kafka.start_producer(bootstrap, "deploy-check")
    try:
        await kafka.publish_rows(producer, [(Topic.ORDER_CREATED, "k", b"scram")])
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        Topic.ORDER_CREATED,
        bootstrap_servers=bootstrap,
        group_id="deploy-check",
        auto_offset_reset="earliest",
        **kafka.client_options(),
    )
    await consumer.start()
    try:  # the first poll of a new broker may wait for its group coordinator
        deadline, values = time.monotonic() + 90, list[bytes]()
        while not values and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=5_000)
            values = [r.value for records in batch.values() for r in records]
        return values
    finally:
        await consumer.stop()


def _refused(bootstrap: str) -> bool:
    try:
        asyncio.run(kafka.missing_topics(bootstrap))
    except (KafkaError, TimeoutError):
        return True
    return False


@pytest.mark.parametrize("source", SOURCES)
def test_kafka_serves_only_scram_clients_with_the_ray_nodes_settings(
    source: str, tmp_path: Path, app_settings: pytest.MonkeyPatch
) -> None:
    ls.kafka_home(tmp_path / "home")
    command, env, port = _start_kafka(source, tmp_path, tmp_path / "data")
    bootstrap = f"127.0.0.1:{port}"
    password = env["KAFKA_PASSWORD"]
    logs = tmp_path / "home" / "logs"
    with ls.server(command, env, port, tmp_path / "kafka.log", logs_dir=logs) as broker:
        _use_kafka(app_settings, source, port)
        assert asyncio.run(_round_trip(bootstrap)) == [b"scram"]
        _use_kafka(app_settings, source, port, KAFKA_PASSWORD="not-the-password")
        assert _refused(bootstrap), "a wrong password was accepted"
        _use_kafka(app_settings, source, port, KAFKA_SECURITY_PROTOCOL="PLAINTEXT")
        assert _refused(bootstrap), "a client without SASL was accepted"
        assert password not in ls.process_text(broker.pid)
        for name in ("server.properties", "client.properties"):
            assert (tmp_path / "conf" / name).stat().st_mode & 0o077 == 0, name
        if source == "compose":
            health = " ".join(m.compose()["services"]["kafka"]["healthcheck"]["test"][1:])
            health = (
                health.replace("/opt/kafka", str(tmp_path / "home"))
                .replace("kafka:19092", bootstrap)
                .replace("/tmp/orders-kafka", str(tmp_path / "conf"))
            )
            result = subprocess.run(["sh", "-c", health], timeout=120, check=False)
            assert result.returncode == 0, "the compose health check fails"


def test_kafka_keeps_its_scram_user_across_restarts(
    tmp_path: Path, app_settings: pytest.MonkeyPatch
) -> None:
    """The user is created when the volume is formatted; a restart formats nothing."""
    ls.kafka_home(tmp_path / "home")
    command, env, port = _start_kafka("compose", tmp_path, tmp_path / "data")
    _use_kafka(app_settings, "compose", port)
    for run in ("first", "second"):
        log = tmp_path / f"{run}.log"
        with ls.server(command, env, port, log, logs_dir=tmp_path / "home" / "logs"):
            missing = asyncio.run(kafka.missing_topics(f"127.0.0.1:{port}"))
            assert len(missing) == len(kafka.all_topics())
        assert ("formatting" in log.read_text()) is (run == "first")


def _kafka_client_calls(path: Path) -> list[str]:
    """The argument text of every aiokafka client built in `path`."""
    text, calls = path.read_text(), []
    for found in re.finditer(r"AIOKafka(?:Producer|Consumer|AdminClient)\(", text):
        depth, end = 1, found.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        calls.append(text[found.end() : end - 1])
    return calls


_CLIENT_FILES = sorted(
    str(p.relative_to(m.ROOT))
    for p in m.ROOT.glob("*/**/*.py")
    if p.parts[len(m.ROOT.parts)] not in {".venv", ".run"} and _kafka_client_calls(p)
)


@pytest.mark.parametrize(
    "path",
    _CLIENT_FILES,
)
def test_every_kafka_client_is_built_with_client_options(path: str) -> None:
    """ADR-011: one helper gives every producer, consumer and admin client its authentication,
    so SASL (the local stack's default, compose, k8s) reaches all of them, the tests' own
    included."""
    calls = _kafka_client_calls(m.ROOT / path)
    assert calls and all("client_options(" in call for call in calls), calls


# --- Redis: the command of docker-compose.yml and k8s/infra/redis.yaml -------------------------


def _redis(source: str, tmp: Path) -> tuple[list[str], dict[str, str], int, str]:
    """command, environment, port and the health check of `source`'s Redis, run locally: the
    image's entry point is a shim that runs redis-server with a local port and directory."""
    port = ls.free_port()
    ls.needed(Path(shutil.which("redis-server") or "/nonexistent"), "redis-server")
    if source == "compose":
        spec = m.compose()["services"]["redis"]
        command, check = spec["command"], " ".join(spec["healthcheck"]["test"][1:])
    else:
        container = _k8s_container("StatefulSet", "redis")
        command, check = container["command"], container["readinessProbe"]["exec"]["command"][-1]
    script = command[-1].replace("$$", "$").replace("/tmp/redis-acl.conf", str(tmp / "acl.conf"))
    env = {**_server_env(source, "redis"), "HOME": str(tmp)}
    env["PATH"] = ls.shims(
        tmp,
        {
            "docker-entrypoint.sh": f'exec "$@" --port {port} --bind 127.0.0.1 --dir {tmp}',
            "chown": "exit 0",
        },
    )
    check = check.replace("$$", "$").replace("redis-cli ", f"redis-cli -p {port} ", 1)
    return [*command[:-1], script], env, port, check


def _denied(client: redis.Redis, *command: str) -> bool:
    try:
        client.execute_command(*command)  # type: ignore[no-untyped-call]
    except redis.exceptions.NoPermissionError:
        return True
    return False


@pytest.mark.parametrize("source", SOURCES)
def test_redis_acl_is_the_local_stacks(source: str, tmp_path: Path) -> None:
    command, env, port, check = _redis(source, tmp_path)
    node = urlsplit(_ray_node_env(source)["REDIS_URL"])
    with ls.server(command, env, port, tmp_path / "redis.log") as server:
        app = redis.Redis(port=port, username=node.username, password=node.password)
        assert app.acl_whoami() == node.username
        assert app.set("idem:deploy-check", "1") and app.get("idem:deploy-check") == b"1"
        assert app.publish("order-status:deploy-check", "x") == 0
        for denied in (("CONFIG", "GET", "*"), ("FLUSHALL",), ("KEYS", "*"), ("INFO",)):
            assert _denied(app, *denied), denied
        # the platform's keys and channels only: not the GCS's tables (Kubernetes), nor others
        for denied in (("HGETALL", "RAYnamespace@KV"), ("SET", "x", "1"), ("PUBLISH", "c", "x")):
            assert _denied(app, *denied), denied
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port).ping()
        assert subprocess.run(["sh", "-c", check], env=env, check=False).returncode == 0
        assert node.password and node.password not in ls.process_text(server.pid)
        if source == "k8s":
            _check_gcs_user(port, env)


# A script's writes reach the append-only file as MULTI/EXEC; Redis replays it as the default
# user and checks that user's rights again at each EXEC (redis/redis#14541).
_SCRIPT = "redis.call('INCR', KEYS[1]); redis.call('PEXPIRE', KEYS[1], 600000); return 1"


@pytest.mark.parametrize("source", SOURCES)
def test_redis_keeps_a_scripts_writes_across_a_restart(source: str, tmp_path: Path) -> None:
    node = urlsplit(_ray_node_env(source)["REDIS_URL"])
    values = []
    for run in range(2):  # the same directory, hence the same append-only file
        command, env, port, _ = _redis(source, tmp_path)
        with ls.server(command, env, port, tmp_path / f"redis-{run}.log"):
            app = redis.Redis(port=port, username=node.username, password=node.password)
            if run == 0:
                app.eval(_SCRIPT, 1, "ratelimit:replay")
                app.set("fault:replay", "1")
            values.append((app.get("ratelimit:replay"), app.get("fault:replay")))
            app.close()
    assert values == [(b"1", b"1"), (b"1", b"1")]  # before: (None, b"1") after the restart
    assert "CRITICAL" not in (tmp_path / "redis-1.log").read_text()


def _check_gcs_user(port: int, env: dict[str, str]) -> None:
    """The Ray GCS's user: what the GCS sends (tests/deploy notes: INFO, DEL DUMMY, hashes
    under RAY*), nothing else."""
    gcs = redis.Redis(port=port, username=env["GCS_REDIS_USER"], password=env["GCS_REDIS_PASSWORD"])
    assert gcs.info("cluster") is not None and gcs.delete("DUMMY") == 0
    assert gcs.hset("RAYnamespace@KV", "k", "v") == 1
    for denied in (("SET", "orders", "x"), ("FLUSHALL",), ("PUBLISH", "c", "x"), ("KEYS", "*")):
        assert _denied(gcs, *denied), denied


# --- Postgres: docker/postgres/10-orders-role.sh ------------------------------------------------

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def _as_postgres(*args: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, cwd="/", timeout=120)


@pytest.fixture(scope="module")
def scratch_postgres() -> Iterator[dict[str, str]]:
    """A Postgres cluster initialised as the image's is (compose POSTGRES_INITDB_ARGS, the
    superuser's password), on a free port; yields the environment to run psql against it."""
    if os.geteuid() != 0:
        pytest.fail("needs root (as `make test`): the server runs as the postgres user")
    bin_dir = ls.needed(PG_BIN[-1] if PG_BIN else Path("/nonexistent"), "Postgres")
    env = m.compose_env("postgres")
    root = Path(tempfile.mkdtemp(prefix="orders-pg-", dir="/var/tmp"))
    shutil.chown(root, "postgres", "postgres")
    pwfile, data, port = root / "pw", root / "data", ls.free_port()
    pwfile.write_text(env["POSTGRES_PASSWORD"])
    shutil.chown(pwfile, "postgres")
    args = env["POSTGRES_INITDB_ARGS"].split()
    _as_postgres(
        f"{bin_dir}/initdb", "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}", *args
    )
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root}"
    pg_ctl = [f"{bin_dir}/pg_ctl", "-D", str(data)]
    _as_postgres(*pg_ctl, "-o", options, "-l", f"{root}/log", "-w", "start")
    try:
        yield {**os.environ, **env, "PGHOST": "127.0.0.1", "PGPORT": str(port)}
    finally:
        _as_postgres(*pg_ctl, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _local(url: str, env: dict[str, str]) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{env['PGPORT']}"
    return parts._replace(netloc=netloc).geturl()


def test_postgres_script_needs_only_what_compose_and_k8s_give_it() -> None:
    script = (m.ROOT / "docker" / "postgres" / "10-orders-role.sh").read_text()
    required = set(re.findall(r'"\$\{(\w+):\?', script))
    k8s = {v["name"] for v in _k8s_container("StatefulSet", "postgres")["env"]}
    assert required == {"ORDERS_DB_PASSWORD", "ORDERS_APP_DB_PASSWORD"}
    assert required <= m.compose_env("postgres").keys() and required <= k8s
    # the passwords reach psql through its environment, never its command line (`ps` shows it)
    assert not re.search(r"-v \w+=\"\$", script)
    assert all(f"\\getenv {v} {k}" in script for v, k in _ROLE_PASSWORDS)


_ROLE_PASSWORDS = (("owner_pw", "ORDERS_DB_PASSWORD"), ("app_pw", "ORDERS_APP_DB_PASSWORD"))


def test_postgres_runtime_role_reads_and_writes_rows_only(scratch_postgres: dict[str, str]) -> None:
    env, script = scratch_postgres, str(m.ROOT / "docker" / "postgres" / "10-orders-role.sh")
    for _ in range(2):  # idempotent: a second run (an existing volume) changes nothing
        subprocess.run(["bash", script], env=env, check=True, timeout=120)
    owner = _local(m.compose_env("init")["MIGRATION_DATABASE_URL"], env)
    for step in ("migrate", "seed"):
        subprocess.run(
            [str(m.ROOT / ".venv" / "bin" / "python"), "-m", "cli.main", step],
            env={**env, "DATABASE_URL": owner, "MIGRATION_DATABASE_URL": owner},
            cwd=m.ROOT,
            check=True,
            timeout=600,
        )
    app = _local(m.compose_env("ray-head")["DATABASE_URL"], env)
    with psycopg.connect(app, autocommit=True) as conn:
        rows = conn.execute(PRIVILEGES).fetchall()
        assert rows and all(r[1:] == (True, False) for r in rows), rows
        roles = conn.execute(ROLES).fetchall()
        assert roles == [("orders", False, False, False), ("orders_app", False, False, False)]
        conn.execute("SELECT * FROM retention_maintain('order_events', interval '30 days')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE deploy_check (id int)")
    for check in (
        " ".join(m.compose()["services"]["postgres"]["healthcheck"]["test"][1:]).replace("$$", "$"),
        _k8s_container("StatefulSet", "postgres")["readinessProbe"]["exec"]["command"][-1],
    ):
        assert subprocess.run(["sh", "-c", check], env=env, check=False).returncode == 0, check


# Every table and sequence of the schema: (name, may use it as the app needs, holds more).
PRIVILEGES = """
SELECT c.relname,
       CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'USAGE')
            ELSE has_table_privilege(c.oid, 'SELECT') AND has_table_privilege(c.oid, 'INSERT')
                 AND has_table_privilege(c.oid, 'UPDATE') AND has_table_privilege(c.oid, 'DELETE')
       END,
       CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'UPDATE')
            ELSE has_table_privilege(c.oid, 'TRUNCATE') OR has_table_privilege(c.oid, 'TRIGGER')
                 OR has_table_privilege(c.oid, 'REFERENCES') END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S') ORDER BY 1
"""
ROLES = """
SELECT rolname, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles
WHERE rolname IN ('orders', 'orders_app') ORDER BY 1
"""


def test_clean_data_removes_the_database_wherever_this_checkout_keeps_it() -> None:
    """A checkout the postgres user cannot enter (a root's home, a `mktemp -d` clone) keeps its
    database under /var/tmp: `services.sh pgdata` names it, and `make clean-data` removes it
    with the rest of `.run/` (it used to remove `.run/pg` only and leave that one behind)."""
    if os.geteuid() != 0:
        pytest.fail("needs root (as `make test`): the rule asks what the postgres user can reach")
    run = m.ROOT / ".run"
    reachable = subprocess.run(
        ["runuser", "-u", "postgres", "--", "test", "-x", str(run)], cwd="/", check=False
    )
    digest = hashlib.sha1(str(m.ROOT).encode()).hexdigest()[:10]
    expected = run / "pg" if reachable.returncode == 0 else Path(f"/var/tmp/ray-orders-pg-{digest}")
    named = subprocess.run(
        ["cluster/services.sh", "pgdata"], cwd=m.ROOT, capture_output=True, text=True, check=True
    )
    assert Path(named.stdout.strip()) == expected
    plan = subprocess.run(
        ["make", "-n", "clean-data"], cwd=m.ROOT, capture_output=True, text=True, check=True
    )
    assert "pgdata=$(cluster/services.sh pgdata) && " in plan.stdout
    assert 'run="${RUN_DIR:-.run}"' in plan.stdout  # RUN_DIR's data, not always .run's
    assert 'rm -rf "$run/pg" "$run/redis" "$run/kafka" "$run/ray" "$pgdata"' in plan.stdout
