"""The launcher's CPU priority for the pipeline's actors (cluster/priority.py, ADR-007): the
worker setup hook moves every thread of a stage's process, threads started later follow, and a
worker without the variable keeps its niceness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import typer

from cluster import priority
from core.settings import SettingsError

# A worker process: one thread running before the hook, one started after it.
_WORKER = """
import json, os, threading
from cluster.priority import on_worker_start

def nices():
    seen = set()
    for t in os.listdir("/proc/self/task"):
        try:
            seen.add(os.getpriority(os.PRIO_PROCESS, int(t)))
        except ProcessLookupError:  # a thread that ended since the listing (a joined one)
            pass
    return sorted(seen)

stop = threading.Event()
before = threading.Thread(target=stop.wait, daemon=True)
before.start()
start = os.getpriority(os.PRIO_PROCESS, 0)
on_worker_start()
later = []
thread = threading.Thread(target=lambda: later.append(os.getpriority(os.PRIO_PROCESS, 0)))
thread.start()
thread.join()
print(json.dumps({"start": start, "threads": nices(), "later": later[0]}))
stop.set()
before.join()
"""


def _worker(env: dict[str, str]) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if k != priority.STAGE_NICENESS_ENV}
    out = subprocess.run(
        [sys.executable, "-c", _WORKER],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **env},
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_a_stage_worker_moves_every_thread_and_later_threads_follow() -> None:
    r = _worker({priority.STAGE_NICENESS_ENV: "3"})
    assert r["threads"] == [r["start"] + 3]
    assert r["later"] == r["start"] + 3


@pytest.mark.parametrize("env", [{}, {priority.STAGE_NICENESS_ENV: "0"}])
def test_any_other_worker_keeps_its_niceness(env: dict[str, str]) -> None:
    r = _worker(env)
    assert r["threads"] == [r["start"]]
    assert r["later"] == r["start"]


def test_the_stage_niceness_defaults_to_five_and_reaches_the_actors_env() -> None:
    assert priority.stage_niceness({}) == 5
    assert priority.stage_runtime_env(5) == {"env_vars": {priority.STAGE_NICENESS_ENV: "5"}}
    assert priority.stage_runtime_env(0) == {}  # nothing to set: the hook leaves them alone


@pytest.mark.parametrize("raw", ["-1", "20", "five", ""])
def test_a_stage_niceness_out_of_range_is_refused_with_its_name(raw: str) -> None:
    with pytest.raises(SettingsError, match="STAGE_NICENESS"):
        priority.stage_niceness({"STAGE_NICENESS": raw})


def test_deploy_stops_on_a_bad_stage_niceness_before_it_connects_to_ray(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import deploy

    monkeypatch.setenv("STAGE_NICENESS", "high")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing there, should it try
    with pytest.raises(typer.Exit) as stopped:
        deploy(restart=False)
    assert stopped.value.exit_code == 2
    assert "STAGE_NICENESS must be an integer from 0 to 19, not 'high'" in capsys.readouterr().err
