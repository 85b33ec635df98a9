"""cluster/install.sh in a checkout of a test's own, with fakes for apt-get, Python, pip and Maven
(tests/deploy/install_sandbox.py): a broken venv is made anew, a failure says where to look, a
Ctrl-C stops what it started, Debian's python3.11-venv comes with apt, the Kafka jars follow
cluster/kafka/pom.xml and only a complete set takes the place of the old, and a policy-rc.d a
killed run left is removed. Also: the pins (pip, setuptools, Maven's dependency plugin) and the
README's list of the packages apt installs."""

from __future__ import annotations

import re
import signal
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy import install_sandbox as isb
from tests.deploy import stack_sandbox as sb
from tests.deploy.manifests import ROOT

INSTALL = ROOT / "cluster" / "install.sh"


@pytest.fixture
def box(tmp_path: Path) -> isb.Sandbox:
    return isb.make(tmp_path)


def _index(calls: list[str], fragment: str) -> int:
    return next(i for i, call in enumerate(calls) if fragment in call)


# --- the venv -------------------------------------------------------------------------------


def test_a_venv_without_pip_is_made_anew(box: isb.Sandbox) -> None:
    (box.venv / "bin").mkdir(parents=True)
    (box.venv / "bin" / "python").symlink_to(box.root / "venv-python")  # runs; no pip
    result = box.install("--venv-only")
    assert result.returncode == 0, result.stderr
    calls = box.calls()
    assert _index(calls, "-m venv --clear") < _index(calls, "--upgrade pip==")
    assert (box.venv / "bin" / "pip").exists()


def test_a_stamped_venv_whose_interpreter_is_gone_is_made_anew(box: isb.Sandbox) -> None:
    isb.installed_venv(box)
    python = box.venv / "bin" / "python"
    python.unlink()
    python.symlink_to(box.root / "gone" / "python3.11")  # its base Python removed
    result = box.install("--venv-only")
    assert result.returncode == 0, result.stderr
    assert any("-m venv --clear" in c for c in box.calls())
    assert any("-e" in c and "pip install" in c for c in box.calls())


def test_a_fresh_venv_is_left_alone(box: isb.Sandbox) -> None:
    isb.installed_venv(box)
    result = box.install("--venv-only")
    assert result.returncode == 0, result.stderr
    assert not [c for c in box.calls() if "-m pip" in c or "-m venv" in c], box.calls()


def test_a_failing_pip_upgrade_names_its_log(box: isb.Sandbox) -> None:
    box.mark("pip-upgrade-fails")
    result = box.install("--venv-only")
    assert result.returncode == 1
    assert f"see {box.run}/logs/pip.log" in result.stderr
    assert "no network" in (box.run / "logs" / "pip.log").read_text()


def test_no_python_at_all_is_named(tmp_path: Path) -> None:
    box = isb.make(tmp_path, python=False)
    result = box.install("--venv-only")
    assert result.returncode == 1
    assert "no python3.11 or python3 on PATH" in result.stderr


def test_debians_python_venv_module_comes_with_apt(box: isb.Sandbox) -> None:
    box.mark("no-ensurepip")
    result = box.install()
    assert result.returncode == 0, result.stderr
    calls = box.calls()
    apt = _index(calls, "apt-get install")
    assert "python3.11-venv" in calls[apt].split()
    assert apt < _index(calls, "-m venv")


def test_a_package_an_interrupted_install_left_unconfigured_is_finished_first(
    box: isb.Sandbox,
) -> None:
    """An install killed midway leaves packages unpacked, not configured: their files are in
    place, so the checks skipped apt (or apt refused: "dpkg was interrupted"), and the server
    whose postinst makes the postgres user never got it."""
    box.fake(
        "dpkg",
        "#!/bin/bash\n" + isb.LOG + '[[ "$1" == --audit && -e "$SANDBOX/half-configured" ]] '
        '&& echo " postgresql-15  not configured"\n'
        '[[ "$1" == --configure ]] && rm -f "$SANDBOX/half-configured"\nexit 0\n',
    )
    box.mark("half-configured", "no-ensurepip")
    result = box.install()
    assert result.returncode == 0, result.stderr
    calls = box.calls()
    assert _index(calls, "dpkg --configure -a") < _index(calls, "apt-get install")
    box.forget_calls()
    assert box.install().returncode == 0
    assert not [c for c in box.calls() if c.startswith("dpkg --configure")]  # nothing left


def test_apt_waits_for_the_dpkg_lock_and_retries() -> None:
    """apt-get failed at once while unattended-upgrades held the lock on a fresh machine."""
    common = (ROOT / "cluster" / "common.sh").read_text()
    body = common[common.index("apt_get() {") :].split("\n}\n")[0]
    assert "-o DPkg::Lock::Timeout=600" in body and "for try in 1 2 3" in body
    for script in ("install.sh", "install-node-tools.sh", "install-kubectl.sh"):
        text = re.sub(r'"[^"\n]*"', '""', (ROOT / "cluster" / script).read_text())
        code = re.sub(r"(^|\s)#.*", "", text)  # (messages and comments may name apt-get)
        assert not re.search(r"apt-get", code), script


def test_without_apt_a_missing_venv_module_says_what_to_install(box: isb.Sandbox) -> None:
    box.mark("no-ensurepip")
    result = box.install("--venv-only")  # no apt in this mode
    assert result.returncode == 1
    assert "apt-get install python3.11-venv" in result.stderr
    assert not [c for c in box.calls() if c.startswith("apt-get")]


def test_the_venv_pins_pip_to_the_version_of_the_checkouts_venv(box: isb.Sandbox) -> None:
    pinned = re.search(r"^PIP_VERSION=(\S+)", INSTALL.read_text(), re.M)
    assert pinned and re.fullmatch(r"\d+(\.\d+)+", pinned.group(1))
    assert box.install("--venv-only").returncode == 0
    assert any(c.endswith(f"install -q --upgrade pip=={pinned.group(1)}") for c in box.calls())
    ours = ROOT / ".venv" / "bin" / "python"
    if ours.exists():
        found = subprocess.run(
            [str(ours), "-m", "pip", "--version"], capture_output=True, text=True, check=True
        )
        assert found.stdout.split()[1] == pinned.group(1)


def test_the_build_backend_is_pinned_exactly() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert requires and all(re.fullmatch(r"[\w.-]+==[\w.]+", r) for r in requires), requires


# --- Ctrl-C ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_pip_stops_with_the_script(
    box: isb.Sandbox, sig: signal.Signals, status: int
) -> None:
    code, child = box.interrupt(sig, "--venv-only")
    try:
        assert code == status
        assert not isb.running(child), "pip still runs after install.sh ended"
    finally:
        isb.stop(child)


def test_an_interrupted_apt_stops_and_its_policy_rc_goes(tmp_path: Path) -> None:
    box = isb.make(tmp_path, installed=("redis-server", "java", "mvn", "curl", "ip"))  # wrk: apt
    code, child = box.interrupt(signal.SIGINT)
    try:
        assert code == 130
        assert not isb.running(child), "apt-get still runs after install.sh ended"
        assert not box.policy.exists(), "the policy-rc.d outlived install.sh"
    finally:
        isb.stop(child)


# --- a policy-rc.d left by a killed run -----------------------------------------------------


def _policy(box: isb.Sandbox, pid: int) -> None:
    box.policy.write_text(
        f"#!/bin/sh\n# cluster/install.sh (pid {pid}): no service starts while it installs;"
        " removed when it ends\nexit 101\n"
    )


def test_a_policy_rc_of_a_killed_run_is_removed(box: isb.Sandbox) -> None:
    isb.installed_venv(box)
    _policy(box, 4_999_999)  # above any pid_max: no such process
    result = box.install()
    assert result.returncode == 0, result.stderr
    assert not box.policy.exists()
    assert "left by cluster/install.sh pid 4999999" in result.stdout


@pytest.fixture
def other_install() -> Iterator[int]:
    """A running process with cluster/install.sh in its command line."""
    with sb.process("cluster/install.sh") as proc:
        yield proc.pid


def test_the_policy_rc_of_a_running_install_and_a_foreign_one_stay(
    box: isb.Sandbox, other_install: int
) -> None:
    isb.installed_venv(box)
    _policy(box, other_install)
    assert box.install().returncode == 0
    assert box.policy.exists()
    box.policy.write_text("#!/bin/sh\n# the image's own\nexit 101\n")
    assert box.install().returncode == 0
    assert box.policy.read_text() == "#!/bin/sh\n# the image's own\nexit 101\n"
