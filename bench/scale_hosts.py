"""The namespace harness (cluster/netns.sh) from Python: hosts up and down, a worker host killed,
CPU per host from its cgroup, where Ray placed the actors. Used by `make bench-scale` and
tests/multinode."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.scale_cpu import Cgroups, HostCpu
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "cluster" / "netns.sh"
# The single-box stack's own locations and secrets (cluster/netns.sh drops them too).
_STACK_VARS = (
    *("DATABASE_URL", "MIGRATION_DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP", "RAY_ADDRESS"),
    *("ORDERS_DB_PASSWORD", "ORDERS_APP_DB_PASSWORD", "REDIS_PASSWORD", "CREDENTIALS_FILE"),
    *("RAY_AUTH_TOKEN", "RAY_AUTH_MODE", "JWT_SECRET", "RUN_DIR", "NODE_ADDRESS", "HEAD_ADDRESS"),
    *("KAFKA_AUTH", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_USERNAME"),
    "KAFKA_PASSWORD",
)


def default_run_dir(prefix: str = "orders") -> Path:
    """cluster/netns.sh's default RUN_DIR (one per checkout and prefix, short: socket paths)."""
    digest = hashlib.sha1(f"{ROOT}:{prefix}".encode()).hexdigest()[:8]
    return Path(f"/tmp/netns-{digest}")


def run_dir_refused(path: Path) -> str | None:
    """Why `path` may not be the harness's RUN_DIR (None: absent, or a directory of this user's,
    no symlink, mode at most 0755), as cluster/netns.sh checks it: the default is a predictable
    name in /tmp, and root writes the harness's logs, secrets and code there."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return f"{path} is a symlink or not a directory"
    if st.st_uid != os.geteuid():
        return f"{path} belongs to uid {st.st_uid}, not to this user ({os.geteuid()})"
    if mode & ~0o755:
        return f"{path} has mode {mode:04o}: others may write there"
    return None


class HarnessError(RuntimeError):
    """cluster/netns.sh failed; the message ends with the tail of its output."""


def unavailable() -> str | None:
    """Why the harness cannot run on this machine (None: it can)."""
    if os.geteuid() != 0:
        return (
            "the multi-node harness (cluster/netns.sh) needs root: it creates network "
            "namespaces, a bridge and cgroups; run the tests as root"
        )
    if shutil.which("ip") is None:
        return "the multi-node harness needs the `ip` command: apt-get install iproute2"
    sbin = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"  # (as cluster/common.sh adds them)
    if os.environ.get("NETNS_FIREWALL", "1") != "0" and shutil.which("nft", path=sbin) is None:
        return (
            "the multi-node harness loads a firewall in each host (cluster/firewall.sh): "
            "apt-get install nftables (make install does), or NETNS_FIREWALL=0"
        )
    return None


@dataclass(frozen=True)
class Actor:
    name: str
    class_name: str
    state: str
    node_ip: str


@dataclass
class Hosts:
    """One harness: `up()`, then the other calls, then always `down()`."""

    settings: dict[str, str] = field(default_factory=dict)  # platform settings (env names)
    cap: float = 0.5
    worker_cpus: int = 4
    run_dir: Path = field(default_factory=default_run_dir)
    info: dict[str, str] = field(default_factory=dict)

    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _STACK_VARS}
        env.update(self.settings)
        env.update(extra or {})
        env["NETNS_CPU_CAP"] = f"{self.cap:g}"
        env["NETNS_WORKER_CPUS"] = str(self.worker_cpus)
        env["NETNS_RUN_DIR"] = str(self.run_dir)
        return env

    def _run(self, *args: str, timeout: float = 300, extra: Mapping[str, str] | None = None) -> str:
        log = self.run_dir / "logs" / "harness.log"
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        if not self.run_dir.exists():
            with contextlib.suppress(FileExistsError):  # (lost a race: checked below)
                self.run_dir.mkdir(mode=0o755)
        why = run_dir_refused(self.run_dir)
        if why is not None:
            raise HarnessError(f"{why}: someone may have made it first; remove it and run again")
        log.parent.mkdir(exist_ok=True)
        try:
            proc = subprocess.run(
                [str(SCRIPT), *args],
                env=self._env(extra),
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=ROOT,
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(
                f"cluster/netns.sh {' '.join(args)}: no end after {timeout}s"
            ) from exc
        if args[0] != "env":
            with log.open("a") as f:
                f.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise HarnessError(
                f"cluster/netns.sh {' '.join(args)} exited {proc.returncode}:\n{tail}"
            )
        return proc.stdout

    def up(self, workers: int) -> None:
        """Bridge, head (services, Ray head, deploy) and `workers` worker hosts."""
        self._run("up", str(workers), timeout=1800)  # may first wait for another harness
        self.info = dict(
            line.split("=", 1) for line in self._run("env").splitlines() if "=" in line
        )

    def down(self) -> None:
        self._run("down", timeout=300)

    def worker(self, index: int) -> None:
        """Start worker host `index` and wait until it joined the cluster."""
        self._run("worker", str(index), timeout=300)

    def set_cap(self, index: int, cores: float) -> None:
        """Change worker `index`'s CPU quota (0: none)."""
        self._run("cap", str(index), f"{cores:g}", timeout=30)

    def status(self, index: int) -> str:
        """`make status` on worker `index`, as that machine's operator runs it (raises on exit 1:
        a part down)."""
        return self._run("status", str(index), timeout=120)

    def stacks(self, index: int) -> str:
        """`make stacks` on worker `index`, as that machine's operator runs it."""
        return self._run("stacks", str(index), timeout=180)

    def exec(self, host: str, *command: str) -> str:
        """What `command` prints on `host` (head, w1, ...): in its namespace and cgroup."""
        return self._run("exec", host, *command, timeout=60)

    def stop_worker(self, index: int) -> None:
        self._run("stop-worker", str(index), timeout=120)

    def kill(self, index: int, how: str = "raylet") -> float:
        """SIGKILL worker `index`'s raylet ("raylet") or every process of it ("host");
        returns the wall-clock time of the kill."""
        at = time.time()
        self._run("kill", str(index), how, timeout=30)
        return at

    def deploy(self, restart: bool = False, **settings: str) -> None:
        """Deploy again from the head with these settings on top (e.g. INVENTORY_SHARDS)."""
        self.settings.update(settings)
        self._run("deploy", *(["--restart"] if restart else []), timeout=600)

    def cpu(self) -> dict[str, HostCpu]:
        """CPU so far per host (head, w1, ...), from the host's cgroup."""
        return self.cgroups.read_all()

    @property
    def cgroups(self) -> Cgroups:
        return Cgroups.from_env(self.info)

    @property
    def gateway(self) -> str:
        return self.info["GATEWAY_URL"]

    @property
    def dsn(self) -> str:
        return self.info["DATABASE_URL"]

    @property
    def bootstrap(self) -> str:
        return self.info["KAFKA_BOOTSTRAP"]

    @property
    def dashboard(self) -> str:
        return self.info["DASHBOARD_URL"]

    def _secret(self, key: str) -> str:
        """A credential of this harness (RUN_DIR/credentials.env, root only)."""
        for line in (self.run_dir / "credentials.env").read_text().splitlines():
            if line.startswith(key + "="):
                return line.split("=", 1)[1]
        raise HarnessError(f"{key} missing from {self.run_dir / 'credentials.env'}")

    def platform_settings(self) -> Settings:
        """Settings that reach this harness's services (for tokens and direct checks)."""
        return Settings(
            jwt_secret=(self.run_dir / "jwt.env").read_text().strip(),
            database_url=self.dsn,
            redis_url=self.info["REDIS_URL"],
            kafka_bootstrap=self.bootstrap,
            # the head's broker takes SCRAM clients over TLS only (multi-host mode, ADR-011)
            kafka_security_protocol=self.info.get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT",
            kafka_sasl_mechanism=self.info.get("KAFKA_SASL_MECHANISM") or "SCRAM-SHA-512",
            kafka_username=self.info.get("KAFKA_USERNAME", ""),
            kafka_password=self._secret("KAFKA_PASSWORD"),
            kafka_ssl_cafile=self.info.get("KAFKA_SSL_CAFILE", ""),
        )

    def _state(self, kind: str) -> list[dict[str, Any]]:
        """Rows of Ray's state API (`nodes`, `actors`) on the head's dashboard."""
        resp = httpx.get(
            f"{self.dashboard}/api/v0/{kind}",
            params={"limit": 1000},
            headers={"Authorization": f"Bearer {self._secret('RAY_AUTH_TOKEN')}"},
            timeout=30,
        )
        resp.raise_for_status()
        rows: list[dict[str, Any]] = resp.json()["data"]["result"]["result"]
        return rows

    def nodes(self) -> dict[str, str]:
        """node id → address of every alive Ray node."""
        return {n["node_id"]: n["node_ip"] for n in self._state("nodes") if n["state"] == "ALIVE"}

    def actors(self) -> list[Actor]:
        """Every actor that is not dead, with the address of its node ("" when unplaced)."""
        ips = {n["node_id"]: n["node_ip"] for n in self._state("nodes")}
        return [
            Actor(
                a.get("name") or "",
                a["class_name"],
                a["state"],
                ips.get(a.get("node_id") or "", ""),
            )
            for a in self._state("actors")
            if a["state"] != "DEAD"
        ]

    def worker_ip(self, index: int) -> str:
        head = self.info["NODE_ADDRESS"]
        return head.rsplit(".", 1)[0] + f".{10 + index}"
