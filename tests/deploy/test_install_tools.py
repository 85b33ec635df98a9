"""What cluster/install.sh fetches besides the venv, in a checkout of a test's own with fakes for
Maven and npm (tests/deploy/install_sandbox.py): the Kafka jars follow cluster/kafka/pom.xml (a
complete set only ever takes the place of the old one), and newman's whole dependency tree is
cluster/node/package-lock.json's, installed with `npm ci` once per lock. Also the README's list of
the packages apt installs."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy import install_sandbox as isb
from tests.deploy.manifests import ROOT

PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:"


@pytest.fixture
def box(tmp_path: Path) -> isb.Sandbox:
    box = isb.make(tmp_path)
    isb.installed_venv(box)
    return box


def _libs(box: isb.Sandbox) -> Path:
    common = (ROOT / "cluster" / "common.sh").read_text()
    version = re.search(r'KAFKA_VERSION="\$\{KAFKA_VERSION:-([^}]+)\}"', common)
    assert version
    return box.run / f"kafka-{version.group(1)}" / "libs"


def _jars(box: isb.Sandbox) -> list[str]:
    return sorted(p.name for p in _libs(box).glob("*.jar"))


def _mvn(box: isb.Sandbox) -> list[str]:
    return [c for c in box.calls() if c.startswith("mvn ")]


# --- Kafka ----------------------------------------------------------------------------------


def _common(box: isb.Sandbox, script: str) -> list[str]:
    """`script`'s words after sourcing the sandbox's common.sh, in its environment."""
    ran = subprocess.run(
        ["bash", "-c", f'source "{box.root}/cluster/common.sh"\n{script}'],
        env=box.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.split()


def _java_installs(box: isb.Sandbox) -> list[str]:
    return [c for c in box.calls() if c.startswith("apt-get install") and "jre" in c]


def test_a_java_older_than_kafkas_17_gets_openjdk_17_beside_it(box: isb.Sandbox) -> None:
    """Kafka 4.1's classes are Java 17's: Ubuntu 22.04's default Java (11) on PATH is not
    enough, and the broker then runs on the one apt put in JVM_DIR (common.sh's kafka_java)."""
    box.mark("old-java")
    assert box.install().returncode == 0
    assert _java_installs(box) == ["apt-get install -y openjdk-17-jre-headless"]
    jvm = box.root / "jvm" / "java-17-openjdk"
    assert _common(box, "kafka_java") == [str(jvm / "bin" / "java")]
    box.forget_calls()
    assert box.install().returncode == 0
    assert not _java_installs(box)


def test_java_17_on_path_is_kafkas(box: isb.Sandbox) -> None:
    assert box.install().returncode == 0
    assert not _java_installs(box)
    assert _common(box, "kafka_java; java_major $(kafka_java)") == [str(box.bin / "java"), "17"]


def test_kafka_jars_are_fetched_strictly_with_a_pinned_plugin_and_once(box: isb.Sandbox) -> None:
    assert box.install().returncode == 0
    (call,) = _mvn(box)
    args = call.split()
    assert "-B" in args and "-C" in args
    assert re.search(rf"{re.escape(PLUGIN)}\d+\.\d+\.\d+:copy-dependencies", call)
    assert _jars(box) == ["kafka_2.13-run-1.jar"] and (_libs(box) / ".complete").is_file()
    assert not list(_libs(box).parent.glob("libs.*")), "a temporary directory stayed"
    box.forget_calls()
    assert box.install().returncode == 0
    assert not _mvn(box)


def test_an_edited_pom_fetches_the_jars_again(box: isb.Sandbox) -> None:
    assert box.install().returncode == 0
    pom = box.root / "cluster" / "kafka" / "pom.xml"
    pom.write_text(pom.read_text().replace("<version>1</version>", "<version>2</version>"))
    box.forget_calls()
    assert box.install().returncode == 0
    assert len(_mvn(box)) == 1
    assert _jars(box) == ["kafka_2.13-run-2.jar"]  # the old set is gone


def test_an_interrupted_fetch_leaves_the_jars_as_they_were(box: isb.Sandbox) -> None:
    box.mark("maven-fails")
    result = box.install()
    assert result.returncode == 1 and "maven.log" in result.stderr
    assert not _libs(box).exists(), "a partial fetch took the place of the jars"
    (box.root / "maven-fails").unlink()
    assert box.install().returncode == 0
    pom = box.root / "cluster" / "kafka" / "pom.xml"
    pom.write_text(pom.read_text() + "\n")
    box.mark("maven-fails")
    assert box.install().returncode == 1
    assert _jars(box) == ["kafka_2.13-run-2.jar"] and (_libs(box) / ".complete").is_file()


# --- newman ---------------------------------------------------------------------------------


def _npm(box: isb.Sandbox) -> list[str]:
    return [c for c in box.calls() if c.startswith("npm ")]


def test_newman_is_installed_from_the_lock_file_once(box: isb.Sandbox) -> None:
    script = box.root / "cluster" / "install-node-tools.sh"
    found = subprocess.run(
        [str(script)], env=box.env(), capture_output=True, text=True, timeout=60, check=False
    )
    node = box.run / "node"
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == str(node / "node_modules" / ".bin" / "newman")
    assert _npm(box) == [f"npm ci --prefix {node} --no-audit --no-fund"]
    lock = box.root / "cluster" / "node" / "package-lock.json"
    assert (node / "package-lock.json").read_text() == lock.read_text()
    box.forget_calls()
    assert box.install().returncode == 0
    assert not _npm(box)
    data = json.loads(lock.read_text())
    data["name"] = "changed"
    lock.write_text(json.dumps(data))
    assert box.install().returncode == 0
    assert len(_npm(box)) == 1


def test_the_lock_file_pins_newman_and_every_package_it_brings() -> None:
    spec = json.loads((ROOT / "cluster" / "node" / "package.json").read_text())
    lock = json.loads((ROOT / "cluster" / "node" / "package-lock.json").read_text())
    (version,) = spec["dependencies"].values()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "newman's version is exact"
    packages = lock["packages"]
    assert packages[""]["dependencies"] == spec["dependencies"]
    assert packages["node_modules/newman"]["version"] == version
    for name, package in packages.items():
        if name:  # npm ci fetches each at this version and checks it against its hash
            assert re.fullmatch(r"\d+\.\d+\.\d+([-+][\w.-]+)?", package["version"]), name
            assert package["integrity"].startswith("sha512-"), name
            assert package.get("resolved", "https://registry.npmjs.org/").startswith(
                "https://registry.npmjs.org/"
            ), name


# --- the README -----------------------------------------------------------------------------


def _apt_packages() -> set[str]:
    """Every package the install scripts may ask apt for (pg_partman's with N for the major)."""
    text = "".join(
        (ROOT / "cluster" / name).read_text()
        for name in ("install.sh", "install-node-tools.sh", "install-kubectl.sh")
    )
    found: set[str] = set()
    lists = r"need_apt\+=\(([^)]*)\)|apt_get install -y(?: -qq)? ([^\n>|;]*)|\n\s*apt_late ([^\n]*)"
    for match in re.finditer(lists, text):
        words = (match.group(1) or match.group(2) or match.group(3) or "").split()
        found |= {w for w in words if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", w)}
    if "postgresql-$pg_major-partman" in text:
        found.add("postgresql-N-partman")
    return found


def test_the_readme_names_every_package_java_installs() -> None:
    readme = (ROOT / "README.md").read_text()
    prerequisites = readme[readme.index("## Prerequisites") :].split("\n## ")[0]
    tests = readme[readme.index("## Tests, chaos, benchmark") :].split("\n## ")[0]
    packages = _apt_packages()
    assert {"maven", "default-jre-headless", "nodejs", "npm", "kubernetes-client"} <= packages
    # the Python packages only where the venv is missing (cluster/preflight.sh names them first)
    python = {p for p in packages if p.startswith("python3")}
    for section, names in ((prerequisites, packages), (tests, packages - python)):
        missing = [p for p in sorted(names) if not re.search(rf"\b{re.escape(p)}\b", section)]
        assert not missing, missing


@pytest.mark.parametrize(
    ("says", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', "17"),
        ('openjdk version "21" 2023-09-19', "21"),
        ('java version "1.8.0_381"', "1"),
        ('Picked up JAVA_TOOL_OPTIONS: -Xss2m\nopenjdk version "11.0.22" 2024-01-16', "11"),
        ("Error: could not find libjava.so", ""),
    ],
)
def test_java_major_reads_the_version_line(tmp_path: Path, says: str, major: str) -> None:
    """JAVA_TOOL_OPTIONS (common in CI) makes Java's first line "Picked up ...": read from it,
    every Java seemed to have no version and make up stopped."""
    fake = tmp_path / "my jvm" / "bin" / "java"  # a space in the path, too
    fake.parent.mkdir(parents=True)
    fake.write_text(f"#!/bin/sh\ncat >&2 <<'EOF'\n{says}\nEOF\n")
    fake.chmod(0o755)
    ran = subprocess.run(
        ["bash", "-c", f'source "{ROOT}/cluster/common.sh"\njava_major "$1"', "-", str(fake)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (ran.returncode, ran.stdout.strip()) == (0, major), ran.stderr


def test_kafka_java_takes_the_newest_of_the_jvm_dir_past_an_old_one_on_path(
    tmp_path: Path,
) -> None:
    javas = {
        "path/java": "11.0.22",
        "j v m/jdk 17/bin/java": "17.0.1",
        "j v m/jdk 21/bin/java": "21",
    }
    for where, version in javas.items():
        fake = tmp_path / where
        fake.parent.mkdir(parents=True, exist_ok=True)
        fake.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\"' >&2\n")
        fake.chmod(0o755)
    env = {"PATH": f"{tmp_path / 'path'}:/usr/bin:/bin", "JVM_DIR": str(tmp_path / "j v m")}
    ran = subprocess.run(
        ["bash", "-c", f'source "{ROOT}/cluster/common.sh"\nkafka_java'],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ran.stdout.strip() == str(tmp_path / "j v m" / "jdk 21" / "bin" / "java"), ran.stderr
