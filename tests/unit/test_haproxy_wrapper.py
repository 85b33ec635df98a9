"""cluster/haproxy.sh: the edits it makes to the configuration Ray writes before it runs HAProxy
(docs/security.md, "HAProxy"), on a file shaped like Ray's template; the running stack's file is
checked in tests/integration/test_ray_start_env.py. And where cluster/common.sh keeps HAProxy's
files: one directory per RUN_DIR, removed when that node's Ray stops."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RAY_CONFIG = """global
    log 127.0.0.1:514 local0 info
    stats socket /x/admin.sock mode 666 level admin expose-fd listeners
    maxconn 4096
defaults
    mode http
    log global
    option httplog
frontend prometheus
    bind :9101
frontend http_frontend
    bind 127.0.0.1:8080
listen stats
  bind *:8404
  stats enable
  stats uri /stats
"""


def _wrapped(tmp_path: Path, runs: int = 1, **env: str) -> str:
    config = tmp_path / "haproxy.cfg"
    config.write_text(RAY_CONFIG)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_SERVE_HAPROXY_")}
    for _ in range(runs):
        subprocess.run(
            ["bash", str(ROOT / "cluster/haproxy.sh"), "-db", "-f", str(config)],
            env={**clean, "ORDERS_HAPROXY_BIN": "/bin/true", "RAY_AUTH_TOKEN": "tok", **env},
            check=True,
            timeout=30,
        )
    return config.read_text()


def test_the_wrapper_drops_rays_default_log_target_and_tightens_the_rest(tmp_path: Path) -> None:
    text = _wrapped(tmp_path)
    assert "log 127.0.0.1:514" not in text
    assert "    log global\n" in text  # refers to the (now empty) global list: logs nothing
    assert "stats socket /x/admin.sock mode 600 " in text
    assert "    bind 127.0.0.1:9101\n" in text and "  bind 127.0.0.1:8404\n" in text
    assert "defaults\n    timeout http-request 10s\n" in text
    assert "  stats enable\n  stats auth ops:tok\n" in text


def test_an_operators_log_target_is_kept(tmp_path: Path) -> None:
    text = _wrapped(tmp_path, RAY_SERVE_HAPROXY_LOG_TARGET="127.0.0.1:514")
    assert "    log 127.0.0.1:514 local0 info\n" in text


def test_the_edits_are_idempotent(tmp_path: Path) -> None:
    once = _wrapped(tmp_path)
    assert _wrapped(tmp_path, runs=2) == once  # Ray passes the same file at every (re)start


def _haproxy_dir(run_dir: Path) -> Path:
    """cluster/common.sh's `haproxy_dir` for RUN_DIR; a node directory is made in it and
    `remove_haproxy_dir` run before the path comes back."""
    script = (
        'source cluster/common.sh; d="$(haproxy_dir)"; mkdir -p "$d/node"; remove_haproxy_dir; '
        'echo "$d"'
    )
    out = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env={**os.environ, "RUN_DIR": str(run_dir)},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return Path(out.stdout.strip())


def test_each_run_dir_has_its_haproxy_directory_and_it_goes_with_the_node(tmp_path: Path) -> None:
    short = Path("/tmp") / f"oh-{tmp_path.name[-6:]}"  # <dir>/<node id>/admin.sock fits 97
    try:
        assert _haproxy_dir(short) == short / "haproxy"
        assert not (short / "haproxy").exists()
    finally:
        subprocess.run(["rm", "-rf", str(short)], check=True)
    one, two = _haproxy_dir(tmp_path / "node-one"), _haproxy_dir(tmp_path / "node-two")
    assert one != two and len(str(one)) <= 29 and str(one).startswith("/tmp/orders-haproxy-")
    assert not one.exists() and not two.exists()
