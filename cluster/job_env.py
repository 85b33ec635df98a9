"""What a deploy hands its actors through the job's runtime_env: the settings (never a secret),
and a fingerprint of them, by which a later deploy tells actors started with other settings.

Named actors are detached and adopted by the next deploy as they are (`get_if_exists`): an actor
keeps the environment it was created with. So `make up` after a changed setting left the running
actors on the old one without a word; the deploy now names them (`make redeploy` restarts them).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping

from core.settings import Settings

# Ray Serve's own knobs travel too (they configure the replicas the platform deploys).
_RAY_SERVE_PREFIX = "RAY_SERVE_"
# Secrets never travel: Ray keeps a job's runtime_env in its metadata (the dashboard's job and
# Serve pages show it). Every Ray process reads them from its own environment, the one its
# node's `ray start` was launched with: cluster/services.sh and cluster/join.sh, compose's
# env_file, a k8s Secret in the pods' env (docs/security.md).
_SECRET_SETTINGS = frozenset({"JWT_SECRET", "DATABASE_URL", "REDIS_URL"})
_SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "CREDENTIAL", "KEY")
_URL_WITH_PASSWORD = re.compile(r"://[^/@\s]*:[^/@\s]*@")
# Nor do paths of the deploying machine's own files: each node names its own copy (the stack's
# CA certificate is in each checkout's .run/tls/, cluster/tls.sh).
_NODE_LOCAL_SETTINGS = frozenset({"KAFKA_SSL_CAFILE"})
# The variable that carries the fingerprint to every actor the deploy creates.
DEPLOYED_WITH = "ORDERS_DEPLOYED_WITH"


def _is_secret(name: str, value: str) -> bool:
    return (
        name in _SECRET_SETTINGS
        or any(word in name for word in _SECRET_WORDS)
        or _URL_WITH_PASSWORD.search(value) is not None
    )


def env_vars() -> dict[str, str]:
    """The settings that travel to every actor through the job's runtime_env, so that a
    redeploy with other knobs reaches them: the variables `Settings` reads (derived from its
    fields, so a new setting can never be left behind), except secrets and connection URLs
    with a password, which the nodes' own environment provides, and paths of the deploying
    machine's files (`_NODE_LOCAL_SETTINGS`), which each node's environment names for itself."""
    names = {name.upper() for name in Settings.model_fields} - _NODE_LOCAL_SETTINGS
    return {
        k: v
        for k, v in os.environ.items()
        if (k in names or k.startswith(_RAY_SERVE_PREFIX)) and not _is_secret(k, v)
    }


def effective(settings: Settings, env: Mapping[str, str], niceness: int) -> dict[str, str]:
    """What the actors run with, secrets and node paths left out: every setting's value in
    effect (a value left at its default and the same value written out are one; `.env` counts),
    Ray Serve's knobs, and how far below the gateway the stages run (`STAGE_NICENESS`)."""
    values = {
        name.upper(): str(getattr(settings, name))
        for name in Settings.model_fields
        if name.upper() not in _NODE_LOCAL_SETTINGS
    }
    values |= {k: v for k, v in env.items() if k.startswith(_RAY_SERVE_PREFIX)}
    values["STAGE_NICENESS"] = str(niceness)
    return {k: v for k, v in values.items() if not _is_secret(k, v)}


def fingerprint(values: Mapping[str, str]) -> str:
    """A short digest of `values` (`effective`: no secret is in it)."""
    text = "\n".join(f"{k}={v}" for k, v in sorted(values.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stale(deployed_with: Mapping[str, str | None], current: str) -> list[str]:
    """The actors (name → the fingerprint each was created with; None: an actor of a version
    that does not say, or that did not answer) that do not run with the settings of
    `current`."""
    return sorted(name for name, given in deployed_with.items() if given != current)


def stale_message(names: list[str], total: int) -> str:
    shown = ", ".join(names[:4]) + ("…" if len(names) > 4 else "")
    return (
        f"actors: {len(names)} of {total} run with the settings of an earlier deploy ({shown}): "
        "running actors keep the settings they were created with; `make redeploy` (or "
        "`orders deploy --restart`) restarts them with this deploy's"
    )
