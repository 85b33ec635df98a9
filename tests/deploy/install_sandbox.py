"""cluster/install.sh and cluster/install-node-tools.sh run in a checkout of a test's own: the
scripts copied into a temporary directory (so .venv, .run and the policy-rc.d are its own), with
a PATH of that checkout's bin/ alone, where fakes stand for apt-get, Python, pip, Maven and npm.
Each fake appends its command line to `calls`; marker files in the sandbox steer them (no
ensurepip, a failing or hanging pip or apt, a failing Maven). Nothing reaches a registry, the
machine's packages, the checkout's .venv or the running stack."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.deploy import stack_sandbox as sb
from tests.deploy.manifests import ROOT

# What the scripts run besides the fakes, linked into bin/ from the machine.
TOOLS = ["basename", "bash", "cat", "chmod", "cp", "cut", "date", "dirname", "env", "find", "grep"]
TOOLS += ["head", "ls", "mkdir", "mktemp", "mv", "od", "readlink", "realpath", "rm", "sed"]
TOOLS += ["sha1sum", "sleep", "sort", "stat", "tail", "touch", "tr"]
# What cluster/install.sh looks for on PATH before it calls apt-get.
INSTALLED = ("redis-server", "java", "mvn", "wrk", "curl", "ip", "nft")

LOG = 'echo "$(basename "$0") $*" >>"$SANDBOX/calls"\n'
# python3.11: `-m venv [--clear] DIR` makes a venv of the fake interpreter below (with pip unless
# ensurepip is missing); everything else is the real interpreter's.
PYTHON = """#!/bin/bash
{log}if [[ "$1 $2" == "-m venv" ]]; then
  shift 2
  if [[ "$1" == --clear ]]; then shift; rm -rf "$1"; fi
  [[ -e "$SANDBOX/no-ensurepip" ]] && {{ echo "ensurepip is not available" >&2; exit 1; }}
  mkdir -p "$1/bin" && cp "$SANDBOX/venv-python" "$1/bin/python" && touch "$1/bin/pip"
  exit 0
fi
[[ "$*" == *"import ensurepip"* && -e "$SANDBOX/no-ensurepip" ]] && exit 1
exec {python} "$@"
"""
# the venv's python: pip works while bin/pip is there
VENV_PYTHON = """#!/bin/bash
echo "venv-python $*" >>"$SANDBOX/calls"
case "$*" in
  "-m pip --version") [[ -e "$(dirname "$0")/pip" ]] || exit 1; echo "pip (fake)"; exit 0 ;;
  "-m pip install"*)
    [[ -e "$(dirname "$0")/pip" ]] || {{ echo "No module named pip"; exit 1; }}
    if [[ "$*" == *"--upgrade pip"* && -e "$SANDBOX/pip-upgrade-fails" ]]; then
      echo "no network"; exit 1
    fi
    if [[ -e "$SANDBOX/hang" ]]; then echo $$ >"$SANDBOX/child.pid"; exec sleep 60; fi
    exit 0 ;;
esac
exec {python} "$@"
"""
# java: 17, or 11 with the mark old-java (Ubuntu 22.04's default)
JAVA = """#!/bin/bash
{log}major=17; [[ -e "$SANDBOX/old-java" && "$0" != "$JVM_DIR"/* ]] && major=11
echo "openjdk version \\"$major.0.2\\" 2024-01-16" >&2
"""
# apt-get: installing python3.11-venv brings ensurepip, openjdk-17-jre-headless a Java 17 in JVM_DIR
# (the `-o NAME=VALUE` options every call carries, cluster/common.sh's apt_get, checked and left
# out of the call's record)
APT = """#!/bin/bash
args=()
while (( $# )); do
  if [[ "$1" == -o ]]; then
    [[ "$2" == *=* ]] || {{ echo "apt-get: -o $2 is not NAME=VALUE" >&2; exit 100; }}
    shift 2
  else args+=("$1"); shift; fi
done
set -- "${{args[@]}}"
{log}if [[ -e "$SANDBOX/hang" && "$1" == install ]]; then
  echo $$ >"$SANDBOX/child.pid"; exec sleep 60
fi
[[ "$*" == *python3.11-venv* ]] && rm -f "$SANDBOX/no-ensurepip"
if [[ "$*" == *openjdk-17-jre-headless* ]]; then
  mkdir -p "$JVM_DIR/java-17-openjdk/bin" && cp "$SANDBOX/bin/java" "$JVM_DIR/java-17-openjdk/bin/"
fi
exit 0
"""
# mvn: one jar per run into -DoutputDirectory; with maven-fails, a partial jar and a failure
MVN = """#!/bin/bash
{log}for arg; do [[ "$arg" == -DoutputDirectory=* ]] && out="${{arg#-DoutputDirectory=}}"; done
runs=$(( $(cat "$SANDBOX/mvn-runs" 2>/dev/null || echo 0) + 1 )); echo "$runs" >"$SANDBOX/mvn-runs"
mkdir -p "$out"
if [[ -e "$SANDBOX/maven-fails" ]]; then echo partial >"$out/partial.jar"; exit 1; fi
echo jar >"$out/kafka_2.13-run-$runs.jar"
"""
# npm: `ci --prefix DIR` installs DIR's lock file (node_modules made anew, with a newman)
NPM = """#!/bin/bash
{log}[[ "$1 $2" == "ci --prefix" ]] || exit 1
[[ -f "$3/package-lock.json" ]] || exit 1
rm -rf "$3/node_modules" && mkdir -p "$3/node_modules/.bin"
printf '#!/bin/sh\\necho 6.2.2\\n' >"$3/node_modules/.bin/newman"
chmod 755 "$3/node_modules/.bin/newman"
"""
STUB = "#!/bin/bash\n" + LOG + "exit 0\n"


@dataclass
class Sandbox:
    root: Path  # the checkout
    bin: Path

    @property
    def run(self) -> Path:
        return self.root / ".run"

    @property
    def venv(self) -> Path:
        return self.root / ".venv"

    @property
    def policy(self) -> Path:
        return self.root / "policy-rc.d"

    def mark(self, *names: str) -> None:
        for name in names:
            (self.root / name).touch()

    def calls(self) -> list[str]:
        path = self.root / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def forget_calls(self) -> None:
        (self.root / "calls").unlink(missing_ok=True)

    def fake(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(body)
        path.chmod(0o755)

    def env(self) -> dict[str, str]:
        return sb.env(
            self.run,
            PATH=str(self.bin),
            SANDBOX=str(self.root),
            POLICY_RC=str(self.policy),
            JVM_DIR=str(self.root / "jvm"),
        )

    def install(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.root / "cluster" / "install.sh"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def interrupt(self, sig: signal.Signals, *args: str) -> tuple[int, int]:
        """install.sh ARGS until its fake child (pip or apt, with `hang`) runs, then SIG: to
        install.sh's whole process group for SIGINT (a Ctrl-C), to install.sh alone for SIGTERM.
        -> (install.sh's exit status, the child's pid)."""
        self.mark("hang")
        proc = subprocess.Popen(
            [str(self.root / "cluster" / "install.sh"), *args],
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        child = self.root / "child.pid"
        try:
            sb.wait_until("the fake child", lambda: child.exists() and child.read_text() != "", 30)
            time.sleep(0.3)  # install.sh back in its loop
            if sig == signal.SIGINT:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
            return proc.wait(timeout=30), int(child.read_text())
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def running(pid: int) -> bool:
    """PID is a live process (a zombie, ended but not reaped yet, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop(pid: int) -> None:
    """Kills a fake child a test left running (its own process, from child.pid)."""
    if running(pid):
        os.kill(pid, signal.SIGKILL)


def make(tmp: Path, *, installed: tuple[str, ...] = INSTALLED, python: bool = True) -> Sandbox:
    """A checkout under tmp: cluster/install.sh, common.sh (with tls.sh) and
    install-node-tools.sh with what they read; install-kubectl.sh a stub; fakes for `installed`
    (on PATH, so nothing to install) and, with `python`, for python3.11."""
    root, bin_dir = tmp / "checkout", tmp / "checkout" / "bin"
    (root / "cluster" / "kafka").mkdir(parents=True)
    bin_dir.mkdir()
    for name in ("common.sh", "tls.sh", "install.sh", "install-node-tools.sh"):
        shutil.copy2(ROOT / "cluster" / name, root / "cluster" / name)
    shutil.copytree(ROOT / "cluster" / "node", root / "cluster" / "node")
    shutil.copy2(ROOT / "cluster" / "kafka" / "pom.xml", root / "cluster" / "kafka" / "pom.xml")
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy2(ROOT / name, root / name)
    (root / "cluster" / "install-kubectl.sh").write_text(STUB)
    (root / "cluster" / "install-kubectl.sh").chmod(0o755)
    box = Sandbox(root, bin_dir)
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} not found"
        (bin_dir / tool).symlink_to(found)
    for name in installed:
        fakes = {"mvn": MVN.format(log=LOG), "java": JAVA.format(log=LOG)}
        box.fake(name, fakes.get(name, STUB))
    box.fake("apt-get", APT.format(log=LOG))
    box.fake("npm", NPM.format(log=LOG))
    box.fake("node", STUB)
    (root / "venv-python").write_text(VENV_PYTHON.format(python=sys.executable))
    (root / "venv-python").chmod(0o755)
    if python:
        box.fake("python3.11", PYTHON.format(log=LOG, python=sys.executable))
    return box


def installed_venv(box: Sandbox) -> None:
    """The sandbox's venv as a finished install leaves it (fake interpreter, pip, the stamp)."""
    result = box.install("--venv-only")
    assert result.returncode == 0, result.stderr
    box.forget_calls()
