"""`cluster/netns.sh down` (netns_down, cluster/netns-head.sh) is best-effort per step: a step that
fails (a cgroup that cannot go, a recorded pid already gone) is reported and the teardown goes
on to the namespaces, links, bridge and owner file, then fails naming what is left. Run here
with the system side replaced by shell functions that record their calls: no namespace, link
or cgroup of this machine is touched."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy import stack_sandbox as sb
from tests.deploy.manifests import ROOT

# After cluster/netns.sh's own set-up (its variables, common.sh, netns-lib.sh), `ip` and the
# cgroup directories are stand-ins: `ip` answers as if head and w1 existed and writes each call
# to $CALLS; a host's cgroup is $CG/<host>.
HARNESS = """
set -euo pipefail
ROOT={root} P={prefix} SUBNET=10.250.0 HEAD_IP=10.250.0.2
source "$ROOT/cluster/common.sh"
source "$ROOT/cluster/netns-lib.sh"
CALLS={calls} CG={cg}
ip() {{
  echo "ip $*" >>"$CALLS"
  [[ "$*" != "netns list" ]] || printf '%s\\n' "$P-head" "$P-w1"
}}
ns_exists() {{ ! grep -qx "ip netns del $1" "$CALLS" 2>/dev/null && [[ $1 == "$P"-* ]]; }}
cg_dirs() {{ echo "$CG/$1"; }}
netns_down
"""


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"t{os.getpid() % 100000}"
    yield name
    Path(f"/tmp/{name}-netns.owner").unlink(missing_ok=True)


def _down(tmp: Path, prefix: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    calls = tmp / "calls"
    calls.touch()
    script = HARNESS.format(root=ROOT, prefix=prefix, calls=calls, cg=tmp / "cg")
    result = sb.bash(tmp / "run", script)
    return result, calls.read_text().splitlines()


def test_down_goes_on_past_failed_steps_and_names_them(tmp_path: Path, prefix: str) -> None:
    run = tmp_path / "run"
    # w1's and the head's cgroups cannot be removed (not empty: as with a process still in it)
    for host in ("w1", "head"):
        (tmp_path / "cg" / host).mkdir(parents=True)
        (tmp_path / "cg" / host / "busy").touch()
    # Postgres's recorded pid is gone already (its kill used to fail the whole teardown)
    with sb.process() as proc:
        gone = proc.pid
    sb.record(run, "pg", gone)
    owner = Path(f"/tmp/{prefix}-netns.owner")
    owner.write_text(f"{run}\n")
    result, calls = _down(tmp_path, prefix)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "down: worker host w1 failed" in result.stdout
    assert "down: the head's cgroups failed" in result.stdout
    assert "netns harness down, except: worker host w1 the head's cgroups" in result.stdout
    # everything after the failures was still done
    for call in (
        f"ip netns del {prefix}-w1",
        f"ip netns del {prefix}-head",
        f"ip link del {prefix}br0",
    ):
        assert call in calls, calls
    assert not owner.exists()
    assert not (run / "pids").exists()


def test_down_of_what_is_already_gone_succeeds(tmp_path: Path, prefix: str) -> None:
    Path(f"/tmp/{prefix}-netns.owner").write_text(f"{tmp_path / 'run'}\n")
    result, calls = _down(tmp_path, prefix)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "netns harness down (logs in" in result.stdout
    assert f"ip link del {prefix}br0" in calls
    assert not Path(f"/tmp/{prefix}-netns.owner").exists()
