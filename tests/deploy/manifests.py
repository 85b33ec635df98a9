"""Loading and schema helpers for the checks of the deployment files (k8s/, docker-compose.yml,
docker/), and what the local stack's scripts (cluster/) say those files must mirror."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
# KubeRay v1.7.0 CRDs (ray-operator/config/crd/bases of the v1.7.0 tag), vendored in the
# repository so the checks run in a fresh clone with nothing beside it and no network. They live
# under tests/, not k8s/, so that no `kubectl apply -f k8s/<folder>/` ever sends them.
KUBERAY_VERSION = "v1.7.0"
CRD_DIR = ROOT / "tests" / "deploy" / "schemas" / f"kuberay-{KUBERAY_VERSION}"
# A Kubernetes release that kubernetes-validate ships schemas for (Minikube's default is close).
K8S_VERSION = "1.34.0"
RAY_GROUP = "ray.io/"
COMPOSE = ROOT / "docker-compose.yml"
# What a Ray node must never hold: the schema owner's and the servers' own credentials
# (cluster/common.sh keeps them out of `ray start`'s environment, RAY_ENV_DROP).
OWNER_AND_SERVER_SECRETS = frozenset(
    {
        "ORDERS_DB_PASSWORD",
        "MIGRATION_DATABASE_URL",
        "POSTGRES_PASSWORD",
        "ORDERS_APP_DB_PASSWORD",
        "REDIS_PASSWORD",
    }
)
# What every Ray node needs in its own environment (never in runtime_env: cluster/deploy.py).
RUNTIME_SECRETS = frozenset({"JWT_SECRET", "DATABASE_URL", "REDIS_URL", "KAFKA_PASSWORD"})


def manifest_files() -> list[Path]:
    """Every manifest under k8s/ except the kustomization, which `kubectl apply -f` skips."""
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


@functools.cache
def resources() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object under k8s/ by `file:kind/name` (shared: copy before changing)."""
    found = {}
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[f"{path.relative_to(K8S)}:{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def resource(kind: str, name: str) -> dict[str, Any]:
    """The one object of `kind` named `name`."""
    found = [d for d in resources().values() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name} in k8s/, found {len(found)}"
    return found[0]


def is_kuberay(doc: dict[str, Any]) -> bool:
    return str(doc["apiVersion"]).startswith(RAY_GROUP)


def _strict(schema: Any) -> Any:
    """Reject unknown fields, as the API server does for `kubectl apply` (field validation
    Strict): objects with declared properties and no open map get additionalProperties=false."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    """A strict validator for a KubeRay kind, from its CRD's openAPIV3Schema."""
    group, version = api_version.split("/")
    path = CRD_DIR / f"{group}_{kind.lower()}s.yaml"  # the CRD files are named group_plural
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are ~1 MB each
    crd = yaml.load(path.read_text(), Loader=loader)
    assert crd["spec"]["names"]["kind"] == kind, f"{path} is not the CRD of {kind}"
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return jsonschema.Draft7Validator(_strict(v["schema"]["openAPIV3Schema"]))
    raise LookupError(f"{path} has no version {version} of {kind}")


def unknown_keys(model: type[BaseModel], data: Any, path: str = "") -> list[str]:
    """Keys of `data` that `model` (recursively) does not declare. Serve's config models
    ignore unknown keys, so a misspelt option would otherwise be dropped silently."""
    if not isinstance(data, dict):
        return []
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    fields.update(model.model_fields)
    found = []
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if key not in fields:
            found.append(where)
            continue
        for sub in _models_in(fields[key].annotation):
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                suffix = f"[{i}]" if isinstance(value, list) else ""
                found += unknown_keys(sub, item, where + suffix)
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        return [m for a in args for m in _models_in(a)]
    return []


def check_jsonschema(builtin: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Run check-jsonschema with one of its vendored schemas (offline)."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", builtin, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def is_ray_container(name: str) -> bool:
    """The readable names of `app_containers()` that are Ray nodes (not init steps)."""
    return name == "head" or name.startswith("worker:")


def app_containers() -> dict[str, dict[str, Any]]:
    """Every container of k8s/ that runs the project's image, by a readable name: the Ray head,
    its init containers, one per worker group, and the orders-init Job's."""
    cluster = resource("RayService", "orders")["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]["template"]["spec"]
    found = {
        "head": head["containers"][0],
        **{f"head-init:{c['name']}": c for c in head.get("initContainers", [])},
    }
    for group in cluster["workerGroupSpecs"]:
        found[f"worker:{group['groupName']}"] = group["template"]["spec"]["containers"][0]
    job = resource("Job", "orders-init")["spec"]["template"]["spec"]
    found["job:orders-init"] = job["containers"][0]
    return found


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The environment a container gets: ConfigMaps, Secrets and `$(VAR)` expansion."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(resource("ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda g: env[g.group(1)], var["value"])
        else:
            env[var["name"]] = secret_value(var["valueFrom"]["secretKeyRef"])
    return env


def secret_value(ref: dict[str, str]) -> str:
    value: str = resource("Secret", ref["name"])["stringData"][ref["key"]]
    return value


def secret_refs(container: dict[str, Any]) -> dict[str, dict[str, str]]:
    """env name -> the secretKeyRef it comes from."""
    return {
        v["name"]: v["valueFrom"]["secretKeyRef"]
        for v in container.get("env", [])
        if "secretKeyRef" in v.get("valueFrom", {})
    }


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def env_file(path: Path) -> dict[str, str]:
    pairs = (x.split("=", 1) for x in path.read_text().splitlines() if x and x[0] != "#")
    return dict(pairs)


def _interpolate(value: Any) -> str:
    """Compose's `${VAR:-default}` with nothing set in the environment."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def compose_env(service: str) -> dict[str, str]:
    """The environment a compose service's container gets with only the committed env files (the
    optional, git-ignored ones absent): env_file entries in order, then `environment`."""
    spec = compose()["services"][service]
    env: dict[str, str] = {}
    for entry in spec.get("env_file", []):
        path = ROOT / entry["path"]
        if path.exists() or entry.get("required", True):
            env.update(env_file(path))
    env.update({k: _interpolate(v) for k, v in spec.get("environment", {}).items()})
    return env


def _local_redis_acl(pattern: str, what: str) -> str:
    """The first group of `pattern` in the local stack's Redis ACL (cluster/services.sh)."""
    found = re.search(pattern, (ROOT / "cluster" / "services.sh").read_text())
    assert found, f"{what} not found in cluster/services.sh"
    return found.group(1)


def local_redis_default_user() -> str:
    """The ACL line of the default user in the local stack."""
    return _local_redis_acl(r'"(user default off [^"]+)"', "the Redis default user's ACL line")


def local_redis_app_rules() -> str:
    """The ACL rules of the platform's Redis user in the local stack."""
    return _local_redis_acl(r'"user \$REDIS_USER on #\$hash ([^"]+)"', "the Redis user's ACL line")


def local_pg_grants() -> list[str]:
    """The privilege statements of the local stack's roles (cluster/services.sh, pg_roles), with
    its variables replaced by the role and database names, one normalised statement each."""
    script = (ROOT / "cluster" / "services.sh").read_text()
    body = script[script.index("pg_roles() {") : script.index("\npg_start() {")]
    names = {"$PG_OWNER_USER": "orders", "$PG_APP_USER": "orders_app", "$PG_DATABASE": "orders"}
    for var, name in names.items():
        body = body.replace(var, name)
    return sql_statements(body, ("GRANT", "REVOKE", "ALTER DEFAULT PRIVILEGES"))


def sql_statements(text: str, starts: tuple[str, ...]) -> list[str]:
    """The statements of `text` that begin with one of `starts`, whitespace collapsed."""
    statements = []
    for chunk in " ".join(text.split()).split(";"):
        found = [m.start() for s in starts for m in re.finditer(rf"(?:^|(?<= )){s}\b", chunk)]
        if found:
            statements.append(chunk[min(found) :].strip())
    return statements
