from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_dev_mode_accepts_the_demo_secret() -> None:
    assert Settings(app_env="dev", jwt_secret="devsecret").jwt_secret == "devsecret"


@pytest.mark.parametrize("secret", ["devsecret", "short-but-not-default", "x" * 31])
def test_non_dev_modes_refuse_weak_secrets(secret: str) -> None:
    with pytest.raises(ValueError, match="JWT_SECRET"):
        Settings(app_env="prod", jwt_secret=secret)


_OWN: dict[str, Any] = {
    "database_url": "postgresql://orders_app:s3cr3t-of-our-own@db:5432/orders",
    "redis_url": "redis://orders:an0ther-one@redis:6379/0",
}


def test_prod_accepts_a_strong_secret() -> None:
    assert Settings(app_env="prod", jwt_secret="k" * 32, **_OWN).app_env == "prod"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("database_url", "postgresql://orders:orders@127.0.0.1:5432/orders"),  # the default
        ("database_url", "postgresql://orders_app:orders-app-dev@postgres:5432/orders"),
        ("redis_url", "redis://orders:redis-dev@redis:6379/0"),
        ("kafka_password", "kafka-scram-dev"),
    ],
)
def test_prod_refuses_the_passwords_committed_for_demos(name: str, value: str) -> None:
    """docker/secrets.dev.env and k8s/infra/secrets.yaml are public: a deployment switched to
    APP_ENV=prod with them kept its databases open to anyone who read the repository."""
    with pytest.raises(ValueError, match=name.upper()):
        Settings(app_env="prod", jwt_secret="k" * 32, **{**_OWN, name: value})


def test_bad_values_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_SHARDS", "0")
    with pytest.raises(ValueError, match="inventory_shards"):
        Settings()


SECRETS = {"JWT_SECRET", "DATABASE_URL", "REDIS_URL", "KAFKA_PASSWORD"}
NODE_LOCAL = {"KAFKA_SSL_CAFILE"}  # a path on each node's own disk (cluster/tls.sh)


def test_every_setting_but_the_secrets_and_node_paths_travels_to_the_actors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cluster.job_env import env_vars

    for name in Settings.model_fields:
        monkeypatch.setenv(name.upper(), "x")
    monkeypatch.setenv("RAY_SERVE_ENABLE_HA_PROXY", "1")
    monkeypatch.setenv("UNRELATED_VARIABLE", "1")
    sent = env_vars()
    assert {name.upper() for name in Settings.model_fields} - SECRETS - NODE_LOCAL == set(sent) - {
        "RAY_SERVE_ENABLE_HA_PROXY"
    }
    assert sent["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and "UNRELATED_VARIABLE" not in sent


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JWT_SECRET", "x"),
        ("DATABASE_URL", "postgresql://orders_app@db/orders"),
        ("KAFKA_BOOTSTRAP", "kafka://user:hunter2@broker:9092"),
        ("RAY_SERVE_SOME_TOKEN", "x"),
        ("RAY_SERVE_PROXY_URL", "http://admin:hunter2@proxy"),
    ],
)
def test_secrets_never_travel_in_the_runtime_env(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    from cluster.job_env import env_vars

    monkeypatch.setenv(name, value)
    assert name not in env_vars()


def test_a_setting_that_is_gone_is_named_in_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from core.settings import get_settings

    monkeypatch.setenv("CONSUMERS_PER_GROUP", "2")
    get_settings.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="core.settings"):
            get_settings()
    finally:
        get_settings.cache_clear()
    assert any(
        "CONSUMERS_PER_GROUP is no longer used" in r.getMessage()
        and "INVENTORY_SHARDS" in r.getMessage()
        for r in caplog.records
    ), caplog.text


def _settings_in(cwd: Path, run_dir: Path, **env: str) -> dict[str, object]:
    """DATABASE_URL, REDIS_URL and HTTP_PORT as a fresh interpreter's Settings reads them with
    `cwd`'s `.env` in the place of the checkout's (`DOTENV`), RUN_DIR=run_dir (its
    credentials.env) and only `env` set of the settings' variables."""
    clean = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    code = (
        "import json, pathlib; from core import settings as m; "
        "s = m.Settings(_env_file=(pathlib.Path('.env').resolve(), m.CREDENTIALS)); "
        "print(json.dumps({'db': s.database_url, 'redis': s.redis_url, 'port': s.http_port}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), "RUN_DIR": str(run_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, object] = json.loads(result.stdout)
    return found


def test_generated_credentials_win_over_a_copied_env_file(tmp_path: Path) -> None:
    """A `.env` copied from .env.example carries the demo URLs: the stack's generated
    credentials win over it, the environment over both, and `.env` still sets the rest."""
    run = tmp_path / "run"
    run.mkdir()
    generated = "postgresql://orders_app:generated@127.0.0.1:5432/orders"
    (run / "credentials.env").write_text(
        f"ORDERS_APP_DB_PASSWORD=generated\nDATABASE_URL={generated}\n"
        "REDIS_URL=redis://orders:generated@127.0.0.1:6379/0\n"
    )
    (tmp_path / ".env").write_text(
        "DATABASE_URL=postgresql://orders:orders@127.0.0.1:5432/orders\n"
        "REDIS_URL=redis://127.0.0.1:6379/0\nHTTP_PORT=8181\n"
    )
    read = _settings_in(tmp_path, run)
    assert read == {
        "db": generated,
        "redis": "redis://orders:generated@127.0.0.1:6379/0",
        "port": 8181,
    }
    given = "postgresql://someone:else@db.example:5432/orders"
    assert _settings_in(tmp_path, run, DATABASE_URL=given)["db"] == given
    # without the stack's file (a container, a pod): `.env` counts
    demo = "postgresql://orders:orders@127.0.0.1:5432/orders"
    assert _settings_in(tmp_path, tmp_path / "none")["db"] == demo


def test_settings_that_would_break_the_gateway_are_refused() -> None:
    """Streams holding every request slot (orders then queue into 503s), Ray's metrics agent on
    the gateway's port, partition maintenance rarer than the 7 days made ahead."""
    with pytest.raises(ValueError, match="SSE_MAX_STREAMS=64"):
        Settings(_env_file=None, sse_max_streams=64, max_ongoing_requests=64)
    with pytest.raises(ValueError, match="METRICS_EXPORT_PORT=8080"):
        Settings(_env_file=None, metrics_export_port=8080, http_port=8080)
    with pytest.raises(ValueError, match="partition_maintenance_s"):
        Settings(_env_file=None, partition_maintenance_s=1_000_000)
    assert Settings(_env_file=None, max_ongoing_requests=64).sse_streams_cap == 16
    assert Settings(_env_file=None, max_ongoing_requests=1).sse_streams_cap == 0  # no stream
    assert Settings(_env_file=None, sse_max_streams=5).sse_streams_cap == 5


def test_every_password_committed_for_demos_is_refused_in_prod() -> None:
    """Each password value in the committed demo files is in `DEMO_PASSWORDS` (the compose
    owner's `orders-dev` and the GCS Redis user's were missing)."""
    import re

    from core.demo_passwords import DEMO_PASSWORDS

    root = Path(__file__).resolve().parents[2]
    found: set[str] = set()
    for env in (root / "docker").glob("*.env"):
        found |= set(re.findall(r"^\w*PASSWORD=(\S+)$", env.read_text(), re.M))
    secrets = (root / "k8s/infra/secrets.yaml").read_text()
    found |= set(re.findall(r"^\s+[\w-]*password:\s*(\S+)$", secrets, re.M))
    assert len(found) >= 8, found
    assert found - DEMO_PASSWORDS == set()


def test_an_env_file_this_user_cannot_read_is_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The stack's credentials file is root's, mode 600: a user's `orders status` or `make
    token` beside it failed with PermissionError (reported as "the stack does not answer")."""
    private, shared = tmp_path / "credentials.env", tmp_path / "shared.env"
    private.write_text("HTTP_PORT=9001\n")
    shared.write_text("METRICS_EXPORT_PORT=9002\n")
    real_access = os.access
    monkeypatch.setattr(
        "core.settings.os.access",
        lambda path, mode: Path(path) != private and real_access(path, mode),
    )
    for key in ("HTTP_PORT", "METRICS_EXPORT_PORT"):
        monkeypatch.delenv(key, raising=False)
    with caplog.at_level(logging.WARNING):
        settings = Settings(_env_file=(shared, private))
    assert (settings.http_port, settings.metrics_export_port) == (8080, 9002)
    assert "not readable" in caplog.text and str(private) in caplog.text


def test_the_fingerprint_follows_the_settings_not_their_order() -> None:
    from cluster import job_env

    one = job_env.fingerprint({"CREDIT_LIMIT": "500", "HOLD_TTL_S": "60"})
    assert one == job_env.fingerprint({"HOLD_TTL_S": "60", "CREDIT_LIMIT": "500"})
    assert one != job_env.fingerprint({"CREDIT_LIMIT": "900", "HOLD_TTL_S": "60"})
    assert one != job_env.fingerprint({"CREDIT_LIMIT": "500"})


def test_the_fingerprint_is_of_the_settings_in_effect_without_secrets() -> None:
    """A default written out is the default (make test's cleanup deploys with INVENTORY_SHARDS=1
    spelled out; a plain make up after it must not call the actors stale)."""
    from cluster import job_env

    base = Settings(jwt_secret="s" * 32)
    same = Settings(jwt_secret="t" * 32, inventory_shards=base.inventory_shards)
    values = job_env.effective(base, {"RAY_SERVE_X": "1", "PATH": "/bin"}, 5)
    assert values["STAGE_NICENESS"] == "5" and values["RAY_SERVE_X"] == "1"
    assert "PATH" not in values and "KAFKA_SSL_CAFILE" not in values
    assert not {"JWT_SECRET", "DATABASE_URL", "REDIS_URL", "KAFKA_PASSWORD"} & set(values)
    assert job_env.fingerprint(values) == job_env.fingerprint(
        job_env.effective(same, {"RAY_SERVE_X": "1"}, 5)
    )
    for other in (
        job_env.effective(Settings(jwt_secret="s" * 32, hold_ttl_s=901), {"RAY_SERVE_X": "1"}, 5),
        job_env.effective(base, {"RAY_SERVE_X": "2"}, 5),
        job_env.effective(base, {"RAY_SERVE_X": "1"}, 0),
    ):
        assert job_env.fingerprint(other) != job_env.fingerprint(values)


def test_actors_created_with_other_settings_are_named() -> None:
    from cluster import job_env

    given = {"relay": "aaa", "inventory-shard-0": "bbb", "shipping": None, "notification": "bbb"}
    assert job_env.stale(given, "bbb") == ["relay", "shipping"]  # None: a version that says not
    assert job_env.stale(given, "bbb") and not job_env.stale({"relay": "bbb"}, "bbb")
    said = job_env.stale_message(["relay", "shipping"], 4)
    assert said.startswith("actors: 2 of 4 run with the settings of an earlier deploy")
    assert "make redeploy" in said


def test_every_actor_reads_the_variable_the_deploy_sets() -> None:
    """actors/base.py names it itself (the actors do not import the deploy's module)."""
    import inspect

    from actors.base import Inspectable
    from cluster import job_env

    assert f'"{job_env.DEPLOYED_WITH}"' in inspect.getsource(Inspectable.deployed_with)


def test_the_dotenv_file_is_the_checkouts_wherever_a_command_runs() -> None:
    """`.env` was read relative to the working directory: `orders` run from elsewhere (the
    README activates the virtualenv and runs it) silently ignored the checkout's settings."""
    from cli.ray_access import RayAccess
    from core.settings import DOTENV, ROOT, Settings

    assert DOTENV == ROOT / ".env" and DOTENV.is_absolute()
    assert (ROOT / ".env.example").is_file()  # the checkout's own root
    for model in (Settings, RayAccess):
        files = model.model_config.get("env_file")
        assert isinstance(files, tuple) and files[0] == DOTENV, files
