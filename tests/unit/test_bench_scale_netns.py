"""Checks of the namespace harness (cluster/netns.sh, cluster/netns-lib.sh) that are pure text
or file tests, run as the functions alone (taken out of the scripts: nothing of the harness
runs): its subnet refused when it overlaps a route, its RUN_DIR refused when another user or a
symlink may have made it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ROUTES = """default via 192.0.2.1 dev eth0
10.0.0.0/8 via 192.0.2.9 dev tun0
172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2
192.168.7.40 via 192.0.2.1 dev eth0
unreachable 10.99.5.0/24
"""


def _function(script: str, name: str) -> str:
    """The definition of shell function `name` in cluster/`script` (from `name() {` to the
    first line that is `}`)."""
    text = (ROOT / "cluster" / script).read_text()
    found = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", text, re.MULTILINE | re.DOTALL)
    assert found, f"{name} not in cluster/{script}"
    return found.group(0)


def _bash(script: str, stdin: str = "", *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script, "bash", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("subnet", "overlaps"),
    [
        ("10.77.0", True),  # inside 10.0.0.0/8
        ("172.17.3", True),  # inside docker's /16
        ("192.0.2", True),  # the /24 itself
        ("192.168.7", True),  # a host route inside it
        ("10.99.5", True),  # an unreachable route is a route
        ("172.18.0", False),
        ("192.168.8", False),  # only the default route covers it
    ],
)
def test_a_subnet_that_overlaps_a_route_is_refused(subnet: str, overlaps: bool) -> None:
    fn = _function("netns-lib.sh", "subnet_routed")
    got = _bash(f'{fn}\nsubnet_routed "$1"', ROUTES, subnet)
    assert got.returncode == (0 if overlaps else 1), got.stderr


def test_no_route_but_the_default_overlaps_nothing() -> None:
    fn = _function("netns-lib.sh", "subnet_routed")
    got = _bash(f'{fn}\nsubnet_routed "$1"', "default via 10.77.0.1 dev eth0\n", "10.77.0")
    assert got.returncode == 1


def _run_dir_check(path: Path) -> subprocess.CompletedProcess[str]:
    fn = _function("netns.sh", "run_dir_check")
    return _bash(f'set -euo pipefail\n{fn}\nrun_dir_check "$1"', "", str(path))


def test_a_run_dir_of_this_user_at_most_0755_is_taken(tmp_path: Path) -> None:
    for mode in (0o755, 0o700):
        d = tmp_path / f"d{mode:o}"
        d.mkdir()
        os.chmod(d, mode)
        got = _run_dir_check(d)
        assert got.returncode == 0, got.stderr


@pytest.mark.parametrize(
    "kind", ["symlink", "file", "group-writable", "sticky", "absent", "another user's"]
)
def test_a_run_dir_someone_else_may_have_made_is_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "real"
    target.mkdir(mode=0o755)
    d = tmp_path / "run"
    if kind == "symlink":
        d.symlink_to(target)
    elif kind == "file":
        d.write_text("")
    elif kind == "another user's":
        if os.geteuid() != 0:
            pytest.skip("giving a directory to another user needs root")
        d.mkdir(mode=0o755)
        os.chown(d, 65534, -1)
    elif kind != "absent":
        d.mkdir()
        os.chmod(d, 0o775 if kind == "group-writable" else 0o1755)
    got = _run_dir_check(d)
    assert got.returncode == 1 and "RUN_DIR" in got.stderr, got.stderr
