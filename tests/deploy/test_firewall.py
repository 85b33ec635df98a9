"""`make firewall` (cluster/firewall.sh): the nftables rule set an operator loads on each machine
of a multi-host cluster, made from the stack's port settings. tests/multinode loads it on every
host of the namespace harness and runs the pipeline through it; here, what it prints."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.deploy import stack_sandbox as sb
from tests.deploy.manifests import ROOT

SCRIPT = ROOT / "cluster" / "firewall.sh"
# Every setting the rule set is made of, given (the caller's environment and the checkout's
# .env must not decide what these tests expect)
SETTINGS = {
    "PG_PORT": "5433",
    "REDIS_PORT": "6380",
    "KAFKA_PORT": "9094",
    "RAY_GCS_PORT": "7390",
    "RAY_NODE_MANAGER_PORT": "7391",
    "RAY_OBJECT_MANAGER_PORT": "7392",
    "RAY_RUNTIME_ENV_AGENT_PORT": "7393",
    "DASHBOARD_AGENT_GRPC_PORT": "7394",
    "DASHBOARD_PORT": "8266",
    "DASHBOARD_AGENT_PORT": "52366",
    "METRICS_EXPORT_PORT": "8091",
    "RAY_WORKER_PORTS": "21000-21099",
    "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": "32000",
    "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": "32100",
    "HTTP_PORT": "8081",
    "KAFKA_CONTROLLER_PORT": "9095",
    "RAY_CLIENT_SERVER_PORT": "10002",
    "OPEN_PORTS": "22",  # the default's value
}


def _firewall(run: Path, *members: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *members],
        env=sb.env(run, **{**SETTINGS, **extra}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _ports(rules: str, source: str, proto: str = "tcp") -> set[str]:
    """The ports of the accept rule for `source` ("" for anyone, "@members")."""
    prefix = f"ip saddr {source} " if source else ""
    rule = rf"^    {re.escape(prefix)}{proto} dport \{{ ([^}}]*) \}} accept$"
    found = re.search(rule, rules, re.M)
    assert found, rules
    return {p.strip() for p in found.group(1).split(",")}


def test_the_rule_set_admits_the_configured_ports_from_the_members_only(tmp_path: Path) -> None:
    result = _firewall(tmp_path, "10.0.0.10", "10.0.1.0/24")
    assert result.returncode == 0, result.stderr
    rules = result.stdout
    assert "elements = { 10.0.0.10, 10.0.1.0/24 }" in rules
    assert "policy drop;" in rules
    internal = {"5433", "6380", "9094", "7390", "7391", "7392", "7393", "7394", "8266"}
    internal |= {"52366", "8091", "21000-21099", "32000-32100"}
    assert _ports(rules, "@members") == internal
    # reached from the machine itself, or by nobody: dropped from the network
    assert _ports(rules, "") == {"8081", "22"}  # the API and SSH, from anyone
    assert "udp dport" not in rules


def test_open_ports_replace_ssh_and_may_be_none_or_udp(tmp_path: Path) -> None:
    rules = _firewall(tmp_path, "10.0.0.10", OPEN_PORTS="2222 tcp/443 udp/51820").stdout
    assert _ports(rules, "") == {"8081", "2222", "443"}
    assert _ports(rules, "", "udp") == {"51820"}
    none = _firewall(tmp_path, "10.0.0.10", OPEN_PORTS="").stdout
    assert _ports(none, "") == {"8081"}


def test_nft_takes_the_rule_set(tmp_path: Path) -> None:
    """`nft -c` parses and checks it against the kernel without loading it (make test installs
    nftables; root, as the multi-node tests), members that overlap too (a network and an
    address in it: the set merges them)."""
    nft = shutil.which("nft", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    assert nft, "nft is missing: make install installs nftables"
    for members in (["10.0.0.10", "192.168.7.0/24"], ["10.0.0.0/24", "10.0.0.10"]):
        rules = _firewall(tmp_path, *members, OPEN_PORTS="22 udp/51820").stdout
        check = subprocess.run([nft, "-c", "-f", "-"], input=rules, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


def test_bad_members_and_settings_are_refused(tmp_path: Path) -> None:
    usage = _firewall(tmp_path)
    assert usage.returncode == 2 and 'make firewall MEMBERS="' in usage.stderr
    for members, extra, words in (
        (["head.example"], {}, "head.example is not an IPv4 address or network"),
        (["10.0.0.10"], {"RAY_WORKER_PORTS": "20999"}, "RAY_WORKER_PORTS=20999 is not LOW-HIGH"),
        (["10.0.0.10"], {"OPEN_PORTS": "ssh"}, "OPEN_PORTS: ssh is not PORT, tcp/PORT or udp/PORT"),
    ):
        result = _firewall(tmp_path, *members, **extra)
        assert result.returncode == 1 and words in result.stderr, result.stderr
        assert "table" not in result.stdout
