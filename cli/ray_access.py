"""Where the local stack's Ray is, and its token, for a command run as the README shows it
(`.venv/bin/orders status`: without the environment cluster/common.sh exports): each from the
environment, else the stack's generated `.run/credentials.env` (RAY_AUTH_TOKEN) and
`.run/node.env` (NODE_ADDRESS, and RAY_GCS_PORT and DASHBOARD_PORT as `make up` had them),
else `.env` (RAY_GCS_PORT, DASHBOARD_PORT), else the stack's
defaults; read as core.settings reads its connection URLs (an unreadable file skipped with a
warning)."""

from __future__ import annotations

import os
import socket

from pydantic_settings import SettingsConfigDict

from core.settings import DOTENV, RUN_DIR, ReadableFiles


class RayAccess(ReadableFiles):
    """RAY_ADDRESS (else NODE_ADDRESS:RAY_GCS_PORT), the dashboard, RAY_AUTH_TOKEN."""

    # of the env files a later one wins, the environment over all of them
    model_config = SettingsConfigDict(
        env_file=(DOTENV, RUN_DIR / "node.env", RUN_DIR / "credentials.env"),
        extra="ignore",
        frozen=True,
    )

    ray_address: str = ""
    node_address: str = "127.0.0.1"
    ray_gcs_port: int = 6390
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8265
    ray_auth_token: str = ""

    @property
    def address(self) -> str:
        """The GCS's `host:port`."""
        return self.ray_address or f"{self.node_address}:{self.ray_gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://{self.dashboard_host}:{self.dashboard_port}"


def unreachable(address: str, timeout_s: float) -> str | None:
    """Why nothing answers on the GCS's `host:port` (None when its port accepts a connection):
    a driver's `ray.init` would retry such an address for ever."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def driver_address() -> str:
    """The address a driver's `ray.init(address="auto")` connects to: RAY_ADDRESS (which
    cluster/common.sh exports), else where this checkout's stack runs."""
    return os.environ.get("RAY_ADDRESS") or RayAccess().address
