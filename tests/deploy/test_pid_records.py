"""The pid records of the local stack ($RUN/pids/NAME.pid, cluster/common.sh): a recorded pid
counts only while its process is still the one this RUN_DIR started, so a record that outlived
its process (a crash, a reboot) never gets another process stopped or taken for the stack's;
and a start that finds its service's process alive but not ready waits for it instead of
starting a second one (cluster/services.sh). Each case runs in a RUN_DIR of its own, with
processes it starts itself standing for the services."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.deploy import stack_sandbox as sb
from tests.deploy.manifests import ROOT


def _as_service(name: str, run: Path) -> tuple[tuple[str, ...], Path | None]:
    """Command-line arguments and working directory that make a process NAME's of `run`, as
    the real one has them (cluster/common.sh, pid_is)."""
    if name in ("pg", "redis"):
        (run / name).mkdir(parents=True, exist_ok=True)
        return (), run / name
    if name == "kafka":
        return (str(run / "kafka" / "server.properties"),), None
    return (f"--temp-dir={run / 'ray' / 't'}",), None


SERVICES = ["pg", "redis", "kafka", "ray", "ray-worker"]


@pytest.mark.parametrize("name", SERVICES)
def test_a_process_of_this_run_is_running_and_is_stopped(name: str, tmp_path: Path) -> None:
    args, cwd = _as_service(name, tmp_path)
    with sb.process(*args, cwd=cwd) as proc:
        pid_file = sb.record(tmp_path, name, proc.pid)
        assert sb.bash(tmp_path, f"pid_alive {name}").returncode == 0
        assert pid_file.exists()
        stopped = sb.bash(tmp_path, f"stop_pid {name} 10")
        assert stopped.returncode == 0, stopped.stderr
        assert f"stopping {name} (pid {proc.pid})" in stopped.stdout
        sb.wait_until("the process ends", lambda: not sb.alive(proc))
        assert not pid_file.exists()


@pytest.mark.parametrize("name", SERVICES)
def test_a_pid_that_is_another_process_now_is_stale(name: str, tmp_path: Path) -> None:
    """After a reboot the recorded pid may be any process's: it is neither running for the
    stack nor stopped by `make down`, and the record goes."""
    other_run = tmp_path / "another-checkout"
    args, cwd = _as_service(name, other_run)  # the same service, of another RUN_DIR
    run = tmp_path / "run"
    for proc_args, proc_cwd in (((), None), (args, cwd)):
        with sb.process(*proc_args, cwd=proc_cwd) as proc:
            pid_file = sb.record(run, name, proc.pid)
            checked = sb.bash(run, f"pid_alive {name}")
            assert checked.returncode == 1
            assert f"pid {proc.pid} in {pid_file} is another process now" in checked.stderr
            assert not pid_file.exists()
            sb.record(run, name, proc.pid)
            assert sb.bash(run, f"stop_pid {name} 1").returncode == 0
            assert sb.alive(proc) and not pid_file.exists()


def test_a_ray_node_started_before_its_temp_directory_moved_is_still_this_runs(
    tmp_path: Path,
) -> None:
    """Ray's temp directory moved from $RUN/ray into $RUN/ray/t (docs/security.md): a
    node still running from before is recognised, so that `make down` stops it."""
    with sb.process(f"--temp-dir={tmp_path / 'ray'}") as proc:
        sb.record(tmp_path, "ray", proc.pid)
        assert sb.bash(tmp_path, "pid_alive ray").returncode == 0
        assert sb.bash(tmp_path, "stop_pid ray 10").returncode == 0
        sb.wait_until("the process ends", lambda: not sb.alive(proc))


@pytest.mark.skipif(os.geteuid() != 0, reason="running a process as another user needs root")
@pytest.mark.parametrize("name", ["kafka", "ray", "ray-worker"])
def test_another_users_process_with_the_services_arguments_is_not_the_stacks(
    name: str, tmp_path: Path
) -> None:
    """Ray and Kafka are told by their arguments, which anyone chooses: a process of another
    user that took a stale record's pid with the same arguments is neither taken for the
    stack's (`make join` answered "already joined") nor signalled by `make down`."""
    args = _as_service(name, tmp_path)[0]
    theirs = subprocess.Popen(  # the shell keeps `args` in its command line while it waits
        ["sh", "-c", "echo ready; sleep 120", "sh", *args],
        user="nobody",
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert theirs.stdout is not None and theirs.stdout.readline() == "ready\n"
        pid_file = sb.record(tmp_path, name, theirs.pid)
        checked = sb.bash(tmp_path, f"pid_alive {name}")
        assert checked.returncode == 1 and "another process now" in checked.stderr
        assert not pid_file.exists()
        sb.record(tmp_path, name, theirs.pid)
        assert sb.bash(tmp_path, f"stop_pid {name} 1").returncode == 0
        assert sb.alive(theirs)
    finally:
        os.killpg(theirs.pid, signal.SIGKILL)
        theirs.wait(timeout=10)


def test_a_pid_whose_process_ended_is_stale(tmp_path: Path) -> None:
    with sb.process(*_as_service("kafka", tmp_path)[0]) as proc:
        pid = proc.pid
    pid_file = sb.record(tmp_path, "kafka", pid)
    checked = sb.bash(tmp_path, "pid_alive kafka")
    assert checked.returncode == 1 and "another process" not in checked.stderr
    assert not pid_file.exists()


def test_stop_pid_kills_a_process_that_ignores_term_and_sends_the_signal_asked(
    tmp_path: Path,
) -> None:
    args, _ = _as_service("ray", tmp_path)
    with sb.process(*args, code=sb.IGNORE_TERM) as proc:
        sb.record(tmp_path, "ray", proc.pid)
        assert sb.bash(tmp_path, "stop_pid ray 1").returncode == 0
        sb.wait_until("SIGKILL after the timeout", lambda: not sb.alive(proc), timeout=5)
        assert proc.returncode == -9
    with sb.process(*args, code=sb.IGNORE_TERM) as proc:
        sb.record(tmp_path, "ray", proc.pid)
        assert sb.bash(tmp_path, "stop_pid ray 30 INT").returncode == 0
        assert proc.wait(timeout=5) != -9  # (Python's default SIGINT handler: KeyboardInterrupt)


def _preflight(run: Path, http_port: int) -> subprocess.CompletedProcess[str]:
    ports = ["PG_PORT", "REDIS_PORT", "KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "DASHBOARD_PORT"]
    ports += ["RAY_GCS_PORT", "RAY_CLIENT_SERVER_PORT", "DASHBOARD_AGENT_PORT"]
    ports += ["RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT"]
    ports += ["RAY_NODE_MANAGER_PORT", "RAY_OBJECT_MANAGER_PORT", "RAY_RUNTIME_ENV_AGENT_PORT"]
    ports += ["DASHBOARD_AGENT_GRPC_PORT"]
    names = [*ports, "METRICS_EXPORT_PORT"]
    env = dict(zip(names, map(str, sb.free_ports(len(names))), strict=True))
    env["RAY_WORKER_PORTS"] = "20000-20999"  # (neither the caller's environment nor a .env)
    return subprocess.run(
        [str(ROOT / "cluster" / "preflight.sh"), "test"],
        env=sb.env(run, **env, HTTP_PORT=str(http_port)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="preflight wants root")
@pytest.mark.parametrize("ours", [True, False])
def test_preflight_takes_a_port_holder_for_the_stacks_only_by_a_live_record(
    ours: bool, tmp_path: Path
) -> None:
    port = sb.free_port()
    listen = f"import socket\ns = socket.socket()\ns.bind(('127.0.0.1', {port}))\ns.listen()"
    args = _as_service("ray", tmp_path)[0] if ours else ()
    with sb.process(*args, code=listen) as proc:
        sb.record(tmp_path, "ray", proc.pid)
        result = _preflight(tmp_path, port)
    if ours:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1
        assert f"port {port} (HTTP_PORT) is in use by " in result.stderr, result.stderr
        assert f"(pid {proc.pid}, user " in result.stderr


def _start_kafka(run: Path, port: int, timeout_s: int) -> subprocess.CompletedProcess[str]:
    # the stand-in broker takes no logins: with SCRAM asked for, the start would replace it
    return subprocess.run(
        [str(ROOT / "cluster" / "services.sh"), "start", "kafka"],
        env=sb.env(run, KAFKA_PORT=str(port), START_TIMEOUT_S=str(timeout_s), KAFKA_AUTH="none"),
        capture_output=True,
        text=True,
        timeout=timeout_s + 60,
        check=False,
    )


def test_a_start_waits_for_the_broker_already_starting(tmp_path: Path) -> None:
    """A second `make up` while the first one's broker is still coming up: no second broker,
    the first one is waited for."""
    port = sb.free_port()
    # ready at once (its pid recorded), listening 1.5 s later
    listen_later = (
        f"print('ready', flush=True)\nimport socket\ntime.sleep(1.5)\ns = socket.socket()\n"
        f"s.bind(('127.0.0.1', {port}))\ns.listen()"
    )
    args, _ = _as_service("kafka", tmp_path)
    with sb.process(*args, code=listen_later) as proc:
        pid_file = sb.record(tmp_path, "kafka", proc.pid)
        result = _start_kafka(tmp_path, port, 30)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"kafka: already starting (pid {proc.pid})" in result.stdout
        assert pid_file.read_text().strip() == str(proc.pid)
        assert not (tmp_path / "kafka").exists() and not (tmp_path / "logs" / "kafka.out").exists()


def test_a_start_gives_up_on_a_broker_that_never_gets_ready(tmp_path: Path) -> None:
    args, _ = _as_service("kafka", tmp_path)
    with sb.process(*args) as proc:
        pid_file = sb.record(tmp_path, "kafka", proc.pid)
        result = _start_kafka(tmp_path, sb.free_port(), 2)
        assert result.returncode == 1
        assert f"kafka (pid {proc.pid}, started earlier) is running but not ready after 2s" in (
            result.stderr
        )
        assert sb.alive(proc) and pid_file.read_text().strip() == str(proc.pid)
        assert not (tmp_path / "logs" / "kafka.out").exists()


def test_a_stop_that_has_to_kill_takes_the_whole_process_group(tmp_path: Path) -> None:
    """`ray start --block` runs under setsid with Ray's servers in its group: when it did not
    end on SIGTERM, the SIGKILL went to it alone, and the GCS, raylet, dashboard and HAProxy
    kept running on their ports with no record left to stop them by."""
    child_file = tmp_path / "child"
    script = f"trap '' TERM; sleep 300 & echo $! > {child_file}; wait"
    leader = subprocess.Popen(
        ["setsid", "bash", "-c", script, "bash", f"--temp-dir={tmp_path / 'ray'}"]
    )
    try:
        deadline = time.monotonic() + 10
        while not child_file.exists() or not child_file.read_text().strip():
            assert time.monotonic() < deadline, "the child did not start"
            time.sleep(0.05)
        child = int(child_file.read_text())
        sb.record(tmp_path, "ray", leader.pid)
        result = sb.bash(tmp_path, "stop_pid ray 1")
        assert result.returncode == 0, result.stderr
        leader.wait(timeout=10)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}").exists() and "Z" not in _state(child):
            assert time.monotonic() < deadline, "the group's other process outlived the stop"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat[stat.rfind(")") + 2]


def test_rays_temp_directory_is_private_and_a_planted_one_is_refused() -> None:
    """Ray makes its --temp-dir mode 777; its parent $RUN/ray stays 700. Before 2026-12-07 Ray
    made $RUN/ray itself 777: a `t` another user put there (a symlink to their directory) would
    take the sockets and the job code Ray unpacks; it stops the start instead."""
    tmp_path = Path(tempfile.mkdtemp(prefix="rt-"))  # short, as Ray's socket paths need
    try:
        _private_or_refused(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _private_or_refused(tmp_path: Path) -> None:
    made = sb.bash(tmp_path, "ray_temp_dir")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "ray").stat().st_mode & 0o777 == 0o700 and (tmp_path / "ray" / "t").is_dir()
    (tmp_path / "ray" / "t").rmdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "ray" / "t").symlink_to(tmp_path / "elsewhere")
    refused = sb.bash(tmp_path, "ray_temp_dir")
    assert refused.returncode != 0 and "is a symlink" in refused.stderr, refused.stderr


def test_a_run_dir_too_deep_for_rays_sockets_stops_with_what_to_do(tmp_path: Path) -> None:
    """Ray's socket paths under its temp directory must fit in 107 bytes; a deep checkout failed
    in Ray with an OSError about AF_UNIX."""
    deep = tmp_path / ("d" * (107 - len(str(tmp_path))))
    deep.mkdir()
    refused = sb.bash(deep, "ray_temp_dir")
    assert refused.returncode != 0 and "RUN_DIR=" in refused.stderr, refused.stderr
    assert not (deep / "ray").exists()
