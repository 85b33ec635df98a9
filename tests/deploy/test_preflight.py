"""cluster/preflight.sh, which `make up` and `make test` run first: each problem a new user can
meet (a busy port, another OS, not root, another Python) is named with what to do about it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy import stack_sandbox as sb
from tests.deploy.manifests import ROOT

SCRIPT = ROOT / "cluster" / "preflight.sh"


def _run(
    script: Path, env: dict[str, str], user: str | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(script), "test"]
    if user:
        assignments = [f"{k}={v}" for k, v in env.items()]
        command = ["runuser", "-u", user, "--", "env", *assignments, *command]
    return subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def bare_checkout() -> Iterator[Path]:
    """The two scripts alone in a checkout without .venv that any user may use (the cases
    point the stack's ports at free ones, so that only the problem a case creates shows)."""
    root = Path(tempfile.mkdtemp(prefix="preflight-"))
    try:
        (root / "cluster").mkdir()
        for name in ("common.sh", "tls.sh", "preflight.sh"):
            shutil.copy2(ROOT / "cluster" / name, root / "cluster" / name)
        for path in (root, root / "cluster"):
            path.chmod(0o777)
        yield root / "cluster" / "preflight.sh"
    finally:
        shutil.rmtree(root)


def _free_ports(avoid: frozenset[int] = frozenset()) -> dict[str, str]:
    """A distinct free port for every port setting, none in `avoid`, and the workers' range
    given too (neither the caller's environment nor a .env decides them)."""
    names = ["PG_PORT", "REDIS_PORT", "KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "HTTP_PORT"]
    names += ["DASHBOARD_PORT", "RAY_GCS_PORT", "RAY_CLIENT_SERVER_PORT", "DASHBOARD_AGENT_PORT"]
    names += [
        "METRICS_EXPORT_PORT",
        "RAY_SERVE_HAPROXY_STATS_PORT",
        "RAY_SERVE_HAPROXY_METRICS_PORT",
    ]
    names += ["RAY_NODE_MANAGER_PORT", "RAY_OBJECT_MANAGER_PORT", "RAY_RUNTIME_ENV_AGENT_PORT"]
    names += ["DASHBOARD_AGENT_GRPC_PORT"]
    ports = dict(zip(names, map(str, sb.free_ports(len(names), avoid)), strict=True))
    return ports | {"RAY_WORKER_PORTS": "20000-20999"}  # (below the kernel's ephemeral ports)


@pytest.mark.parametrize(
    "variable", ["HTTP_PORT", "RAY_SERVE_HAPROXY_STATS_PORT", "RAY_NODE_MANAGER_PORT"]
)
def test_a_busy_port_names_the_port_the_process_and_the_variable(variable: str) -> None:
    """HAProxy's ports too: a busy one made `make up` time out at the gateway with no hint."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = _run(SCRIPT, {**_free_ports(frozenset({port + 1})), variable: str(port)})
    assert result.returncode == 1
    line = next(x for x in result.stderr.splitlines() if f"port {port} " in x)
    assert f"({variable})" in line
    assert f"pid {os.getpid()}" in line
    assert f"{variable}={port + 1} make test" in line


def test_the_advice_for_a_busy_port_skips_the_stacks_other_ports() -> None:
    """A busy 6390 advised RAY_GCS_PORT=6391, the node manager's port (pinned since
    2026-12-07): Ray would then refuse its start after the other servers had started."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        taken = {"RAY_GCS_PORT": str(port), "RAY_NODE_MANAGER_PORT": str(port + 1)}
        result = _run(SCRIPT, {**_free_ports(frozenset({port + 1, port + 2})), **taken})
    line = next(x for x in result.stderr.splitlines() if f"port {port} " in x)
    assert f"RAY_GCS_PORT={port + 2} make test" in line


def test_two_settings_on_one_port_or_one_in_the_workers_range_are_refused() -> None:
    ports = _free_ports()
    both = _run(SCRIPT, {**ports, "RAY_NODE_MANAGER_PORT": ports["RAY_GCS_PORT"]})
    assert both.returncode == 1
    assert f"RAY_GCS_PORT and RAY_NODE_MANAGER_PORT are both port {ports['RAY_GCS_PORT']}" in (
        both.stderr
    )
    http = int(ports["HTTP_PORT"])
    inside = _run(SCRIPT, {**ports, "RAY_WORKER_PORTS": f"{http - 5}-{http + 5}"})
    assert inside.returncode == 1
    assert f"HTTP_PORT={http} is in RAY_WORKER_PORTS ({http - 5}-{http + 5})" in inside.stderr


def _ancestors(pid: int) -> set[int]:
    found = set()
    while pid > 1:
        found.add(pid)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        pid = int(next(x.split()[1] for x in status.splitlines() if x.startswith("PPid:")))
    return found


def test_the_checkouts_own_running_stack_is_not_a_conflict() -> None:
    """A port held by this checkout's stack (a recorded pid or a child of one, as Ray's GCS,
    dashboard and Serve proxy are) is fine: `make up` reuses it."""
    recorded = {int(p.read_text()) for p in (ROOT / ".run" / "pids").glob("*.pid") if p.read_text()}
    if not recorded:
        pytest.skip("this checkout's stack is not running")
    result = _run(SCRIPT, {})
    reported = [int(x) for x in re.findall(r"in use by \S+ \(pid (\d+),", result.stderr)]
    assert not [pid for pid in reported if _ancestors(pid) & recorded], result.stderr
    assert result.returncode == 0, result.stderr  # it ran its checks and found no conflict


def test_another_os_is_named(bare_checkout: Path, tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('ID=fedora\nPRETTY_NAME="Fedora Linux 40"\n')
    result = _run(bare_checkout, {**_free_ports(), "OS_RELEASE": str(release)})
    assert result.returncode == 1
    assert "unsupported OS: Fedora Linux 40" in result.stderr
    assert "docker compose" in result.stderr


def test_another_python_is_named(bare_checkout: Path, tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3.11").write_text("#!/bin/sh\necho 3.12.3\n")
    (fake / "python3.11").chmod(0o755)
    env = {**_free_ports(), "PATH": f"{fake}:/usr/sbin:/usr/bin:/sbin:/bin"}
    result = _run(bare_checkout, env)
    assert result.returncode == 1
    assert f"wrong Python: {fake}/python3.11 is 3.12.3, the project needs 3.11" in result.stderr


def _path_without_python311(tmp_path: Path, candidate: str) -> str:
    """A PATH of the machine's tools but python3.11, with an apt-cache whose python3.11
    candidate is `candidate` ("(none)": apt has none), and a python3 that is 3.12. The
    apt-cache writes a long version table after the candidate, as a real one may: read through
    a pipe into `grep -q`, it died of SIGPIPE, and pipefail turned "apt has it" into "no"."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for directory in (Path("/usr/sbin"), Path("/usr/bin")):
        for tool in directory.iterdir():
            if not tool.name.startswith("python") and not (tools / tool.name).exists():
                (tools / tool.name).symlink_to(tool)
    fakes = {
        "python3": "#!/bin/sh\necho 3.12.3\n",
        "apt-cache": f"#!/bin/sh\nprintf 'python3.11:\\n  Candidate: {candidate}\\n'\n"
        + "seq -f '  Version table line %g' 20000\n",
    }
    for name, body in fakes.items():
        (tools / name).unlink(missing_ok=True)
        (tools / name).write_text(body)
        (tools / name).chmod(0o755)
    return str(tools)


def test_a_python311_that_apt_has_is_left_to_install(bare_checkout: Path, tmp_path: Path) -> None:
    """`make test` on a fresh Debian 12 without python3.11: install.sh installs it from apt, so
    preflight does not stop there (it did, though the README says make test installs all)."""
    env = {**_free_ports(), "PATH": _path_without_python311(tmp_path, "3.11.2-6+deb12u6")}
    result = _run(bare_checkout, env)
    assert "python3.11: not installed, apt has it" in result.stdout
    assert result.returncode == 0, result.stderr


def test_no_python311_anywhere_is_named(bare_checkout: Path, tmp_path: Path) -> None:
    env = {**_free_ports(), "PATH": _path_without_python311(tmp_path, "(none)")}
    result = _run(bare_checkout, env)
    assert result.returncode == 1
    assert "wrong Python:" in result.stderr and "is 3.12.3, the project needs 3.11" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_not_root_is_named(bare_checkout: Path) -> None:
    result = _run(bare_checkout, _free_ports(), "nobody")
    assert result.returncode == 1, result.stderr
    assert "not root (uid 65534)" in result.stderr
    assert "sudo -E make test" in result.stderr


def test_make_token_needs_only_the_venv(tmp_path: Path) -> None:
    """`make -s token` prints a token without apt, Maven, npm or kubectl (each would leave a
    mark here), once .venv is there."""
    marks = tmp_path / "called"
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("apt-get", "mvn", "npm", "node", "kubectl", "java"):
        (fake / tool).write_text(f'#!/bin/sh\necho {tool} >>"{marks}"\nexit 1\n')
        (fake / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["make", "-s", "token"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().split(".")) == 3, result.stdout
    assert not marks.exists(), marks.read_text()
