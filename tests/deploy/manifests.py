"""Loading and schema helpers for the offline checks of the deployment files."""

from __future__ import annotations

import functools
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
