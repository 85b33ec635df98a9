"""Offline checks of k8s/: schemas (Kubernetes, KubeRay CRDs, Ray Serve) and the wiring
between the objects that a cluster would only reveal at run time."""

from __future__ import annotations

import copy
import importlib
import re
import shutil
import subprocess
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from core.settings import Settings
from tests.deploy import manifests as m

RESOURCES = m.resources()
BUILTIN = {k: v for k, v in RESOURCES.items() if not m.is_kuberay(v)}
KUBERAY = {k: v for k, v in RESOURCES.items() if m.is_kuberay(v)}
APP_IMAGE = "ray-orders:0.1.0"


def _rayservice() -> dict[str, Any]:
    return m.resource("RayService", "orders")


def _serve_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(_rayservice()["spec"]["serveConfigV2"])
    return config


def _cluster() -> dict[str, Any]:
    cluster: dict[str, Any] = _rayservice()["spec"]["rayClusterConfig"]
    return cluster


def _app_containers() -> dict[str, dict[str, Any]]:
    """Every container that runs the project's image, by a readable name."""
    head = _cluster()["headGroupSpec"]["template"]["spec"]
    found = {
        "head": head["containers"][0],
        **{f"head-init:{c['name']}": c for c in head.get("initContainers", [])},
    }
    for group in _cluster()["workerGroupSpecs"]:
        found[f"worker:{group['groupName']}"] = group["template"]["spec"]["containers"][0]
    found["job:orders-init"] = m.resource("Job", "orders-init")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return found


def _env(container: dict[str, Any]) -> dict[str, str]:
    """The environment a container gets: ConfigMaps, Secrets and `$(VAR)` expansion."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(m.resource("ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda g: env[g.group(1)], var["value"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = m.resource("Secret", ref["name"])["stringData"][ref["key"]]
    return env


def _port(container: dict[str, Any], name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert name in ports, f"container {container['name']} has no port named {name!r}"
    return int(ports[name])


def test_kustomization_lists_every_manifest_exactly_once() -> None:
    listed = yaml.safe_load((m.K8S / "kustomization.yaml").read_text())["resources"]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(str(p.relative_to(m.K8S)) for p in m.manifest_files())


@pytest.mark.parametrize("rid", sorted(BUILTIN))
def test_builtin_kind_is_valid_kubernetes_strictly(rid: str) -> None:
    kubernetes_validate.validate(BUILTIN[rid], m.K8S_VERSION, strict=True)


def test_kubernetes_validate_rejects_an_unknown_field() -> None:
    service = copy.deepcopy(m.resource("Service", "api-gateway"))
    service["spec"]["port"] = 80
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, m.K8S_VERSION, strict=True)


@pytest.mark.parametrize("rid", sorted(KUBERAY))
def test_kuberay_kind_matches_its_crd_schema(rid: str) -> None:
    doc = KUBERAY[rid]
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in m.crd_validator(doc["kind"], doc["apiVersion"]).iter_errors(doc)
    ]
    assert not errors, "\n".join(errors)


def test_crd_validation_rejects_a_misspelt_worker_group_field() -> None:
    doc = copy.deepcopy(_rayservice())
    doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplica"] = 3
    assert not m.crd_validator(doc["kind"], doc["apiVersion"]).is_valid(doc)


def test_every_object_lives_in_the_orders_namespace() -> None:
    assert m.resource("Namespace", "orders")
    outside = [
        rid
        for rid, d in RESOURCES.items()
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != "orders"
    ]
    assert not outside


def test_serve_config_matches_rays_schema_without_unknown_keys() -> None:
    config = _serve_config()
    ServeDeploySchema.model_validate(config)
    assert m.unknown_keys(ServeDeploySchema, config) == []
    config["applications"][0]["deployments"][0]["autoscaling_config"]["max_replica"] = 2
    assert m.unknown_keys(ServeDeploySchema, config) != []


def test_serve_import_path_imports_and_declares_the_configured_deployments() -> None:
    (application,) = _serve_config()["applications"]
    assert (application["name"], application["route_prefix"]) == ("orders", "/")
    module, attr = application["import_path"].split(":")
    app = getattr(importlib.import_module(module), attr)
    configured = {d["name"] for d in application["deployments"]}
    assert configured <= {app._bound_deployment.name}


def test_head_has_no_cpus_and_workers_autoscale_in_tree() -> None:
    cluster = _cluster()
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["rayVersion"] == importlib.import_module("ray").__version__
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    for group in cluster["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["maxReplicas"] > group["minReplicas"]
    (deployment,) = _serve_config()["applications"][0]["deployments"]
    scaling = deployment["autoscaling_config"]
    assert scaling["max_replicas"] > scaling["min_replicas"] >= 1
    # Replicas need CPU so that the KubeRay autoscaler sees demand and adds workers.
    assert deployment["ray_actor_options"]["num_cpus"] > 0


def test_api_gateway_service_reaches_the_serve_proxies_on_port_80() -> None:
    service = m.resource("Service", "api-gateway")
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    serve_port = _serve_config()["http_options"]["port"]
    assert serve_port == Settings.model_fields["http_port"].default == 8080
    pods = [_cluster()["headGroupSpec"]["template"]]
    pods += [g["template"] for g in _cluster()["workerGroupSpecs"]]
    kuberay_labels = {"ray.io/is-ray-node": "yes", "ray.io/serve": "true"}
    for pod in pods:
        container = pod["spec"]["containers"][0]
        assert _port(container, port["targetPort"]) == serve_port
        labels = {**pod["metadata"]["labels"], **kuberay_labels}
        assert service["spec"]["selector"].items() <= labels.items()


def test_ray_metrics_port_is_the_apps_and_not_the_serve_port() -> None:
    serve_port = _serve_config()["http_options"]["port"]
    default = Settings.model_fields["metrics_export_port"].default
    app_port = int(_env(_app_containers()["head"]).get("METRICS_EXPORT_PORT", default))
    for group in [_cluster()["headGroupSpec"], *_cluster()["workerGroupSpecs"]]:
        container = group["template"]["spec"]["containers"][0]
        # KubeRay defaults metrics-export-port to 8080 when it is not set.
        metrics = int(group["rayStartParams"].get("metrics-export-port", 8080))
        assert metrics == app_port != serve_port
        assert _port(container, "metrics") == metrics


def test_app_containers_share_image_and_settings_that_load() -> None:
    containers = _app_containers()
    assert {c["image"] for c in containers.values()} == {APP_IMAGE}
    envs = {name: _env(c) for name, c in containers.items()}
    first = next(iter(envs.values()))
    assert all(env == first for env in envs.values()), "app containers differ in env"
    fields = Settings.model_fields
    settings = Settings(**{k.lower(): v for k, v in first.items() if k.lower() in fields})
    assert settings.http_host == "0.0.0.0"
    for url, service, port in [
        (settings.database_url, "postgres", 5432),
        (settings.redis_url, "redis", 6379),
        (f"//{settings.kafka_bootstrap}", "kafka", 9092),
    ]:
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == (service, port)
        assert m.resource("Service", service)["spec"]["ports"][0]["port"] == port


def test_init_job_prepares_schema_catalog_and_topics_in_order() -> None:
    command = " ".join(_app_containers()["job:orders-init"]["command"])
    steps = re.findall(r"python -m cli\.main (\w+)", command)
    assert steps == ["migrate", "seed", "topics"]
    assert "&&" in command


def test_kustomize_builds_every_object() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(
        [kubectl, "kustomize", str(m.K8S)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    built = [d for d in yaml.safe_load_all(out) if d]
    assert len(built) == len(RESOURCES)
