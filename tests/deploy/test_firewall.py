"""`make firewall` (cluster/firewall.sh): the nftables rule set an operator loads on each machine
of a multi-host cluster, made from the stack's port settings. tests/multinode loads it on every
host of the namespace harness and runs the pipeline through it; here, what it prints."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.deploy import stack_sandbox as sb
from tests.deploy.manifests import ROOT

SCRIPT = ROOT / "cluster" / "firewall.sh"


def _firewall(run: Path, *members: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *members],
        env=sb.env(run, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _ports(rules: str, source: str) -> set[str]:
    """The ports of the accept rule for `source` ("" for anyone, "@members")."""
    prefix = f"ip saddr {source} " if source else ""
    found = re.search(rf"^    {re.escape(prefix)}tcp dport \{{ ([^}}]*) \}} accept$", rules, re.M)
    assert found, rules
    return {p.strip() for p in found.group(1).split(",")}


def test_the_rule_set_admits_the_configured_ports_from_the_members_only(tmp_path: Path) -> None:
    settings = {"PG_PORT": "5433", "RAY_NODE_MANAGER_PORT": "7391", "HTTP_PORT": "8081"}
    result = _firewall(
        tmp_path, "10.0.0.10", "10.0.1.0/24", RAY_WORKER_PORTS="21000-21099", **settings
    )
    assert result.returncode == 0, result.stderr
    rules = result.stdout
    assert "elements = { 10.0.0.10, 10.0.1.0/24 }" in rules
    assert "policy drop;" in rules
    internal = _ports(rules, "@members")
    assert {"5433", "6379", "9092", "6390", "7391", "6392", "6394", "21000-21099"} <= internal
    # reached from the machine itself, or by nobody: dropped from the network
    assert not {"5432", "9093", "6393", "10001", "8080", "8081"} & internal
    assert _ports(rules, "") == {"8081", "22"}  # the API and SSH, from anyone


def test_open_ports_replace_ssh_and_may_be_none(tmp_path: Path) -> None:
    rules = _firewall(tmp_path, "10.0.0.10", OPEN_PORTS="2222 443").stdout
    assert _ports(rules, "") == {"8080", "2222", "443"}
    none = _firewall(tmp_path, "10.0.0.10", OPEN_PORTS="").stdout
    assert _ports(none, "") == {"8080"}


def test_nft_takes_the_rule_set(tmp_path: Path) -> None:
    """`nft -c` parses and checks it against the kernel without loading it (make test installs
    nftables; root, as the multi-node tests)."""
    nft = shutil.which("nft")
    assert nft, "nft is missing: make install installs nftables"
    rules = _firewall(tmp_path, "10.0.0.10", "192.168.7.0/24").stdout
    check = subprocess.run([nft, "-c", "-f", "-"], input=rules, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_bad_members_and_settings_are_refused(tmp_path: Path) -> None:
    usage = _firewall(tmp_path)
    assert usage.returncode == 2 and 'make firewall MEMBERS="' in usage.stderr
    for members, extra, words in (
        (["head.example"], {}, "head.example is not an IPv4 address or network"),
        (["10.0.0.10"], {"RAY_WORKER_PORTS": "20999"}, "RAY_WORKER_PORTS=20999 is not LOW-HIGH"),
        (["10.0.0.10"], {"OPEN_PORTS": "ssh"}, "OPEN_PORTS: ssh is not a port"),
    ):
        result = _firewall(tmp_path, *members, **extra)
        assert result.returncode == 1 and words in result.stderr, result.stderr
        assert "table" not in result.stdout
