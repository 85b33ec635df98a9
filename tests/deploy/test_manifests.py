"""Offline checks of k8s/: schemas (Kubernetes, KubeRay CRDs, Ray Serve) and the wiring
between the objects that a cluster would only reveal at run time."""

from __future__ import annotations

import copy
import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast
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
KUSTOMIZATION: dict[str, Any] = yaml.safe_load((m.K8S / "kustomization.yaml").read_text())
# The objects `kubectl apply -k` names after a hash of their content: the ConfigMap and Secrets.
GENERATED = {"ConfigMap", "Secret"}
# The Service of the seed's `kubectl -n orders port-forward svc/api-gateway 8080:80`.
API_GATEWAY = "api-gateway"


def _rayservice() -> dict[str, Any]:
    return m.resource("RayService", "orders")


def _serve_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(_rayservice()["spec"]["serveConfigV2"])
    return config


def _cluster() -> dict[str, Any]:
    cluster: dict[str, Any] = _rayservice()["spec"]["rayClusterConfig"]
    return cluster


_app_containers = m.app_containers
_env = m.container_env


def _port(container: dict[str, Any], name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert name in ports, f"container {container['name']} has no port named {name!r}"
    return int(ports[name])


def test_kustomization_lists_every_manifest_exactly_once() -> None:
    """Every manifest is a resource of the kustomization, or the content of a generated object
    (the ConfigMap and the Secrets: a patch of the empty object its generator makes)."""
    patches = list(KUSTOMIZATION["patchesStrategicMerge"])
    listed = KUSTOMIZATION["resources"] + patches
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(str(p.relative_to(m.K8S)) for p in m.manifest_files())
    patched = {
        (d["kind"], d["metadata"]["name"], d["metadata"]["namespace"])
        for rid, d in RESOURCES.items()
        if rid.split(":")[0] in patches
    }
    generators = {
        (kind, g["name"], g["namespace"])
        for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator"))
        for g in KUSTOMIZATION[key]
    }
    every = {
        (d["kind"], d["metadata"]["name"], d["metadata"]["namespace"])
        for d in RESOURCES.values()
        if d["kind"] in GENERATED
    }
    assert patched == generators == every


@pytest.mark.parametrize("rid", sorted(BUILTIN))
def test_builtin_kind_is_valid_kubernetes_strictly(rid: str) -> None:
    kubernetes_validate.validate(BUILTIN[rid], m.K8S_VERSION, strict=True)


def test_kubernetes_validate_rejects_an_unknown_field() -> None:
    service = copy.deepcopy(m.resource("Service", "postgres"))
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


def _group(name: str) -> dict[str, Any]:
    groups: list[dict[str, Any]] = _cluster()["workerGroupSpecs"]
    (group,) = [g for g in groups if g["groupName"] == name]
    return group


def _deployment() -> dict[str, Any]:
    deployments: list[dict[str, Any]] = _serve_config()["applications"][0]["deployments"]
    (deployment,) = deployments
    return deployment


def _custom_resources(group: dict[str, Any]) -> dict[str, float]:
    """rayStartParams.resources, KubeRay's quoted JSON ('"{\\"gateway\\": 1}"')."""
    raw = group["rayStartParams"].get("resources", '"{}"')
    resources: dict[str, float] = json.loads(json.loads(raw))
    return resources


def test_worker_groups_autoscale_in_tree_and_the_head_has_no_cpus() -> None:
    cluster = _cluster()
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["rayVersion"] == importlib.import_module("ray").__version__
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert {g["groupName"] for g in cluster["workerGroupSpecs"]} == {"gateway", "pipeline"}
    for group in cluster["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["maxReplicas"] > group["minReplicas"]


def test_gateway_replicas_go_only_to_gateway_pods_one_per_pod() -> None:
    gateway, deployment = _group("gateway"), _deployment()
    assert gateway["rayStartParams"]["num-cpus"] == "0"
    per_pod = _custom_resources(gateway)["gateway"]
    options = deployment["ray_actor_options"]
    assert options["num_cpus"] == 0 and options["resources"] == {"gateway": per_pod}
    assert deployment["max_replicas_per_node"] == 1
    scaling = deployment["autoscaling_config"]
    # Every gateway pod holds a replica (so it is ready and serves), and the autoscaler adds a
    # pod for each replica that does not fit.
    assert scaling["min_replicas"] == gateway["minReplicas"] >= 2
    assert scaling["max_replicas"] == gateway["maxReplicas"] > scaling["min_replicas"]


def test_pipeline_actors_go_only_to_pipeline_pods() -> None:
    """The actors ask for ACTOR_NUM_CPUS each; only pipeline pods offer CPUs to Ray."""
    env = _env(_app_containers()["head"])
    fields = Settings.model_fields
    settings = Settings(
        **cast(dict[str, Any], {k.lower(): v for k, v in env.items() if k.lower() in fields})
    )
    assert settings.actor_num_cpus > 0
    pipeline = _group("pipeline")
    assert "num-cpus" not in pipeline["rayStartParams"] and not _custom_resources(pipeline)
    cpu = float(pipeline["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
    assert cpu * 10 >= 11 * settings.actor_num_cpus * 10  # 11 actors at the defaults fit a pod
    others = [_cluster()["headGroupSpec"], _group("gateway")]
    assert all(g["rayStartParams"]["num-cpus"] == "0" for g in others)


def test_the_serve_service_is_kuberays_own_and_not_api_gateway() -> None:
    """The RayService's serveService (`orders-serve`) is KubeRay's: it sets the selector to the
    active cluster's pods labelled ray.io/serve=true, which every worker of a RayService is, the
    pipeline's too (KubeRay v1.7.0, BuildPod and BuildServeService). So it is not `api-gateway`,
    which would be taken over (api-gateway.yaml selects the gateway pods only), and no manifest
    defines a Service of its name. Its named targetPort keeps the pipeline pods, which declare no
    `serve` port, out of its endpoints, which the RayService's Ready condition counts."""
    spec = _rayservice()["spec"]
    service = spec["serveService"]
    name = service["metadata"]["name"]
    assert (name, service["metadata"]["namespace"]) == ("orders-serve", "orders")
    assert name != API_GATEWAY
    (port,) = service["spec"]["ports"]
    assert port == {"name": "serve", "port": 80, "targetPort": "serve"}
    assert "selector" not in service["spec"]  # KubeRay sets it
    assert not [d for d in _services() if d["metadata"]["name"] == name]
    assert spec["excludeHeadPodFromServeSvc"] is True
    serve_port = _serve_config()["http_options"]["port"]
    assert serve_port == Settings.model_fields["http_port"].default == 8080
    head = _cluster()["headGroupSpec"]["template"]["spec"]["containers"][0]
    gateway = _group("gateway")["template"]["spec"]["containers"][0]
    assert _port(head, "serve") == _port(gateway, "serve") == serve_port
    # Pipeline pods run no Serve proxy: no `serve` port, and their own readiness probe keeps
    # KubeRay from adding its Serve-proxy check; the gateway's is KubeRay's, with that check.
    pipeline = _group("pipeline")["template"]["spec"]["containers"][0]
    assert "serve" not in {p["name"] for p in pipeline["ports"]}
    assert pipeline["readinessProbe"]["httpGet"] == {"path": "/api/healthz", "port": 52365}
    assert "readinessProbe" not in gateway


# Labels of KubeRay v1.7.0 that a pod template cannot set: labelPod skips them in the template's
# labels (ray-operator/controllers/ray/common/pod.go).
KUBERAY_FIXED_LABELS = ("ray.io/node-type", "ray.io/group", "ray.io/cluster")


def _services() -> list[dict[str, Any]]:
    return [d for d in RESOURCES.values() if d["kind"] == "Service"]


def _kuberay_pod_labels(
    group: dict[str, Any], node_type: str, cluster: str, via_rayservice: bool = True
) -> dict[str, str]:
    """The labels KubeRay v1.7.0 gives a pod of `group` in the RayCluster `cluster` (pod.go:
    labelPod, then BuildPod's ray.io/serve for a RayService's pods: "true" on every worker,
    "false" on the head until the RayService controller says otherwise)."""
    group_name = "headgroup" if node_type == "head" else group["groupName"]
    labels = {
        "ray.io/is-ray-node": "yes",
        "ray.io/cluster": cluster,
        "ray.io/node-type": node_type,
        "ray.io/group": group_name,
        "ray.io/identifier": f"{cluster}-{node_type}",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    template = {
        **group["template"].get("metadata", {}).get("labels", {}),
        **group.get("labels", {}),
    }
    labels.update({k: v for k, v in template.items() if k not in KUBERAY_FIXED_LABELS})
    if via_rayservice:
        labels["ray.io/serve"] = "false" if node_type == "head" else "true"
    return labels


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _target_port(service_port: dict[str, Any], container: dict[str, Any]) -> int:
    """The container port a Service port reaches on a pod, as `kubectl port-forward svc/...`
    resolves it (LookupContainerPortNumberByServicePort): a named targetPort must be a port
    the pod declares ("Pod ... does not have a named port ...")."""
    target = service_port.get("targetPort", service_port["port"])
    if isinstance(target, int):
        return target
    return _port(container, target)


def test_api_gateway_selects_only_the_gateway_pods_and_targets_their_serve_port() -> None:
    """`kubectl -n orders port-forward svc/api-gateway 8080:80` (the seed's sequence) takes one
    pod of the Service's selector, not of its endpoints, and resolves the targetPort on that
    pod: every pod the selector can match must be a gateway pod that declares it. The selector
    may use only labels every gateway pod of every cluster of this RayService carries: not the
    generated RayCluster's name (ray.io/cluster, ray.io/identifier), which changes with each
    cluster, nor a label a template could set in place of KubeRay's."""
    service = m.resource("Service", API_GATEWAY)
    spec = service["spec"]
    assert service["metadata"]["namespace"] == "orders"
    assert spec.get("type", "ClusterIP") == "ClusterIP"
    assert not spec.get("publishNotReadyAddresses")  # ready gateway pods only
    selector = spec["selector"]
    assert (selector.get("ray.io/node-type"), selector.get("ray.io/group")) == ("worker", "gateway")
    assert not {"ray.io/cluster", "ray.io/identifier"} & selector.keys()
    cluster = _cluster()
    pods = {"head": _kuberay_pod_labels(cluster["headGroupSpec"], "head", "orders-x7k2q")}
    for group in cluster["workerGroupSpecs"]:
        for name in ("orders-x7k2q", "orders-b9m4t"):  # the cluster KubeRay creates, and the next
            pods[f"{group['groupName']}@{name}"] = _kuberay_pod_labels(group, "worker", name)
    matched = {pod.split("@")[0] for pod, labels in pods.items() if _selects(selector, labels)}
    assert matched == {"gateway"}, matched
    assert all(_selects(selector, pods[f"gateway@{c}"]) for c in ("orders-x7k2q", "orders-b9m4t"))
    # Not selected: the gateway group of another project's RayService (no part-of label), nor
    # the pods of a RayCluster made from these templates without the RayService (no serve label).
    foreign = {**_group("gateway"), "template": {"metadata": {"labels": {}}}}
    assert not _selects(selector, _kuberay_pod_labels(foreign, "worker", "other-abcde"))
    plain = _kuberay_pod_labels(_group("gateway"), "worker", "orders-test", via_rayservice=False)
    assert not _selects(selector, plain)
    (port,) = spec["ports"]
    assert port["port"] == 80 and port.get("protocol", "TCP") == "TCP"
    gateway = _group("gateway")["template"]["spec"]["containers"][0]
    assert _target_port(port, gateway) == _serve_config()["http_options"]["port"]
    # The pipeline's container could not serve it: no `serve` port (a numeric targetPort would
    # reach no proxy there either); the selector above is what keeps kubectl off those pods.
    pipeline = _group("pipeline")["template"]["spec"]["containers"][0]
    assert "serve" not in {p["name"] for p in pipeline["ports"]}
    # The Service spans every cluster's gateway pods, unlike KubeRay's serveService: one
    # cluster at a time only because no upgrade starts a second one beside the first.
    assert _rayservice()["spec"]["upgradeStrategy"] == {"type": "None"}
    # The Service and the gateway's disruption budget name the same pods.
    budget = m.resource("PodDisruptionBudget", "orders-ray-gateway")["spec"]["selector"]
    assert _selects(budget["matchLabels"], pods["gateway@orders-x7k2q"])
    assert {k: v for k, v in selector.items() if k != "ray.io/serve"} == budget["matchLabels"]


def test_readme_port_forwards_to_api_gateway_as_the_seed_does() -> None:
    """The seed's last step works as written, and the README says it rather than the head's
    Service (which sends every request through the head's proxy)."""
    port = m.resource("Service", API_GATEWAY)["spec"]["ports"][0]["port"]
    readme = (m.ROOT / "README.md").read_text()
    assert f"kubectl -n orders port-forward svc/{API_GATEWAY} 8080:{port}" in readme
    assert not re.search(r"port-forward svc/orders-head-svc 8080:", readme)


def test_serve_options_have_one_source_of_truth() -> None:
    """serveConfigV2 overrides the deployment's options, so the ConfigMap must not pretend
    to set them."""
    config = m.resource("ConfigMap", "orders-config")["data"]
    owned = {"MAX_ONGOING_REQUESTS", "MAX_QUEUED_REQUESTS", "GATEWAY_REPLICAS", "SERVE_ACCESS_LOG"}
    assert not owned & config.keys()
    deployment = _deployment()
    for option in ("max_ongoing_requests", "max_queued_requests", "autoscaling_config"):
        assert option in deployment


def test_upgrades_cannot_deadlock_on_the_shards_ownership_locks() -> None:
    """No second cluster beside the first (docs/adr/ADR-010-kuberay-upgrades.md)."""
    assert _rayservice()["spec"]["upgradeStrategy"] == {"type": "None"}
    adr = (m.ROOT / "docs" / "adr" / "ADR-010-kuberay-upgrades.md").read_text()
    assert "upgradeStrategy" in adr and "advisory lock" in adr


def test_kuberay_admission_rules_hold() -> None:
    """Rules the KubeRay v1.7.0 operator enforces beyond the CRD schema (ValidateRayClusterSpec,
    ValidateRayServiceSpec), which would otherwise show only as a rejected RayService."""
    cluster = _cluster()
    head = cluster["headGroupSpec"]
    head_env = {v["name"] for v in head["template"]["spec"]["containers"][0].get("env", [])}
    if "gcsFaultToleranceOptions" in cluster:
        # With GCS fault tolerance the operator owns these (it sets them from the options).
        assert not {"REDIS_PASSWORD", "RAY_REDIS_ADDRESS"} & head_env
        assert "redis-password" not in head["rayStartParams"]
        assert "ray.io/ft-enabled" not in _rayservice()["metadata"].get("annotations", {})
    assert "REDIS_USERNAME" not in head_env and "redis-username" not in head["rayStartParams"]
    for group in [head, *cluster["workerGroupSpecs"]]:
        params = group["rayStartParams"]
        assert "labels" not in params
        uses_params = any(k in params for k in ("num-cpus", "num-gpus", "memory", "resources"))
        assert not (uses_params and group.get("resources")), "resources in two places"
    strategy = _rayservice()["spec"]["upgradeStrategy"]["type"]
    assert strategy in {"None", "NewCluster", "NewClusterWithIncrementalUpgrade"}


def test_disruption_budgets_allow_drains() -> None:
    budgets = [d for d in RESOURCES.values() if d["kind"] == "PodDisruptionBudget"]
    groups = {g["groupName"]: g for g in _cluster()["workerGroupSpecs"]}
    covered = set()
    for budget in budgets:
        spec = budget["spec"]
        selector = spec["selector"]["matchLabels"]
        assert selector.get("ray.io/node-type") == "worker", "no budget may pin the head"
        # Pods of a RayCluster (no scale subresource): only an integer minAvailable works.
        assert "maxUnavailable" not in spec and isinstance(spec["minAvailable"], int)
        group = groups[selector["ray.io/group"]]
        assert spec["minAvailable"] < group["minReplicas"], "no eviction would be allowed"
        assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        covered.add(selector["ray.io/group"])
    assert covered == set(groups)


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


def _kubectl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl with a kubeconfig whose server cannot answer: whatever these checks prove, they
    prove offline (and never reach a local service on kubectl's default localhost:8080)."""
    binary = subprocess.run(
        [str(m.ROOT / "cluster" / "install-kubectl.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout.split()[-1]
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump(OFFLINE_KUBECONFIG))
    return subprocess.run(
        [binary, "--kubeconfig", str(config), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=m.ROOT,
    )


OFFLINE_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
    "contexts": [
        {"name": "none", "context": {"cluster": "none", "user": "none", "namespace": "orders"}}
    ],
    "current-context": "none",
    "users": [{"name": "none", "user": {"token": "offline"}}],  # kubectl 1.20 asks otherwise
}
# The seed's per-folder `kubectl apply -f` sequence: not the install any more (README,
# Kubernetes: `kubectl apply -k k8s/`), still read below so that each folder holds exactly its
# manifests (no stray file, no CRD schema) for whoever applies one with -f.
APPLY_SEQUENCE = ["00-namespace.yaml", "infra/", "services/", "hpa/"]


def _build(tmp_path: Path, folder: Path = m.K8S) -> list[dict[str, Any]]:
    """`kubectl kustomize <folder>`: the objects `kubectl apply -k` would send."""
    result = _kubectl(tmp_path, "kustomize", str(folder))
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _kustomize_major(tmp_path: Path) -> int:
    """The major version of the kustomize inside the kubectl the checks run."""
    out = _kubectl(tmp_path, "version", "--client").stdout
    found = re.search(r"Kustomize Version: v(\d+)", out)
    return int(found.group(1)) if found else 2  # kubectl 1.20 does not print it (v2.0.3)


def _built(built: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in built if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _unhashed(name: str) -> str:
    """A generated object's name without kustomize's hash suffix."""
    base, _, suffix = name.rpartition("-")
    assert base and re.fullmatch(r"[a-z0-9]{10}", suffix), f"{name} has no hash suffix"
    return base


def _references(node: Any) -> list[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret an object refers to, wherever it does: env,
    envFrom, volumes, and the RayService's own fields (gcsFaultToleranceOptions)."""
    keys = {
        "configMapRef": ("ConfigMap", "name"),
        "configMapKeyRef": ("ConfigMap", "name"),
        "secretRef": ("Secret", "name"),
        "secretKeyRef": ("Secret", "name"),
    }
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, dict):
                kind, field = keys[key]
                found.append((kind, value[field]))
            elif key == "configMap" and isinstance(value, dict) and "name" in value:
                found.append(("ConfigMap", value["name"]))
            elif key == "secret" and isinstance(value, dict) and "secretName" in value:
                found.append(("Secret", value["secretName"]))
            else:
                found += _references(value)
    elif isinstance(node, list):
        for item in node:
            found += _references(item)
    return found


def test_kustomize_builds_every_object(tmp_path: Path) -> None:
    built = sorted(f"{d['kind']}/{_source_name(d)}" for d in _build(tmp_path))
    assert built == sorted(f"{d['kind']}/{d['metadata']['name']}" for d in RESOURCES.values())


def _source_name(doc: dict[str, Any]) -> str:
    """A built object's name in k8s/'s files."""
    name: str = doc["metadata"]["name"]
    return _unhashed(name) if doc["kind"] in GENERATED else name


def test_kustomize_hashes_the_settings_and_secrets_and_rewrites_every_reference(
    tmp_path: Path,
) -> None:
    """A Ray pod reads orders-config and its Secrets once, at start. `kubectl apply -k` names them
    after their content and points every reference at those names, the RayService's nested pod
    templates and GCS options included (k8s/kustomizeconfig.yml): a pod the running cluster adds
    after a changed apply reads the objects the cluster started with, not the new values
    (docs/adr/ADR-010-kuberay-upgrades.md)."""
    built = _build(tmp_path)
    generated = {
        (d["kind"], _unhashed(d["metadata"]["name"])): d for d in built if d["kind"] in GENERATED
    }
    for (kind, name), doc in generated.items():
        source = m.resource(kind, name)
        field = "data" if kind == "ConfigMap" else "stringData"
        assert doc[field] == source[field]
        assert doc["metadata"]["labels"] == source["metadata"]["labels"]
    existing = {(d["kind"], d["metadata"]["name"]) for d in built}
    referenced = {ref for d in built for ref in _references(d)}
    assert {kind for kind, _ in referenced} == GENERATED
    assert referenced <= existing, "a reference kept an unhashed name"
    rayservice = _built(built, "RayService", "orders")
    refs = set(_references(rayservice))
    assert {(k, _unhashed(n)) for k, n in refs} == set(generated), "RayService misses one"
    gcs = rayservice["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert ("Secret", gcs["redisPassword"]["valueFrom"]["secretKeyRef"]["name"]) in existing
    # A changed value is a new name, which every reference follows; the other objects keep theirs.
    changed = tmp_path / "k8s"
    shutil.copytree(m.K8S, changed)
    config = changed / "services" / "config.yaml"
    config.write_text(config.read_text().replace('INVENTORY_SHARDS: "2"', 'INVENTORY_SHARDS: "3"'))
    secrets = changed / "infra" / "secrets.yaml"
    secrets.write_text(secrets.read_text().replace("JWT_SECRET: devsecret", "JWT_SECRET: other"))
    rebuilt = _build(tmp_path, changed)
    renamed = {
        (d["kind"], d["metadata"]["name"]) for d in rebuilt if d["kind"] in GENERATED
    } - existing
    expected = {("ConfigMap", "orders-config"), ("Secret", "orders-jwt")}
    if _kustomize_major(tmp_path) < 3:
        # kustomize v2 (Debian 12's kubectl 1.20) hashes a Secret's `data` only, not the
        # `stringData` secrets.yaml carries: there, only the ConfigMap follows its content
        # (README, "Kubernetes": kubectl >= 1.21 for the Secrets)
        expected = {("ConfigMap", "orders-config")}
    assert {(k, _unhashed(n)) for k, n in renamed} == expected
    new_refs = set(_references(_built(rebuilt, "RayService", "orders")))
    assert renamed <= new_refs and not renamed & refs
    assert set(_references(_built(rebuilt, "Job", "orders-init"))) >= renamed


def _image_entry(name: str) -> dict[str, str]:
    (entry,) = [e for e in KUSTOMIZATION["images"] if e["name"] == name]
    return dict(entry)


def _app_image() -> str:
    """The image kustomize's `images:` gives the app's containers: the one place of its tag."""
    entry = _image_entry("ray-orders")
    return f"{entry.get('newName', entry['name'])}:{entry['newTag']}"


def test_one_kustomize_entry_sets_the_image_of_every_app_container(tmp_path: Path) -> None:
    """Every app container runs one image, whose tag `images:` in k8s/kustomization.yaml sets
    (a new image needs a new tag: imagePullPolicy IfNotPresent keeps a node's copy of a tag)."""
    entry = _image_entry("ray-orders")
    sources = {name: c["image"] for name, c in _app_containers().items()}
    assert {image.rpartition(":")[0] for image in sources.values()} == {entry["name"]}
    assert {c["imagePullPolicy"] for c in _app_containers().values()} == {"IfNotPresent"}
    built = _build(tmp_path)
    apps = [_built(built, "RayService", "orders"), _built(built, "Job", "orders-init")]
    images = [c["image"] for d in apps for c in _containers(d)]
    assert len(images) == len(sources) and set(images) == {_app_image()}
    others = [c["image"] for d in built if d not in apps for c in _containers(d)]
    assert others and not [i for i in others if i.startswith(entry["name"] + ":")]


def test_the_images_built_beside_the_app_are_named_in_kustomize_too(tmp_path: Path) -> None:
    """Postgres's and Kafka's images are built here too (README's `minikube image build` lines):
    `images:` names them, with the tags those lines build, so a registry's name is set in one
    place for all three."""
    readme = (m.ROOT / "README.md").read_text()
    built_here = dict(re.findall(r"minikube image build -t (ray-orders[\w-]*):(\S+)", readme))
    assert {"ray-orders-postgres", "ray-orders-kafka"} <= built_here.keys(), built_here
    for name, tag in built_here.items():
        assert _image_entry(name)["newTag"] == tag, name
    images = {c["image"] for d in _build(tmp_path) for c in _containers(d)}
    assert {f"{n}:{t}" for n, t in built_here.items()} <= images, images


def _containers(node: Any) -> list[dict[str, Any]]:
    """Every container and init container anywhere in an object."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found += value
            else:
                found += _containers(value)
    elif isinstance(node, list):
        for item in node:
            found += _containers(item)
    return found


@pytest.mark.parametrize("target", APPLY_SEQUENCE)
def test_each_folder_of_the_apply_sequence_reads_as_kubectl_apply_reads_it(
    tmp_path: Path, target: str
) -> None:
    """`kubectl apply -f k8s/<target>` offline: a client-side dry run of `apply` needs the API
    server's discovery even with --validate=false (checked below), so this reads the folder
    with the same file and object decoding as `apply -f` (`annotate --local --dry-run=client`)
    and checks that it yields exactly the objects of those files, nothing else (no stray file,
    no CRD schema: they live under tests/). Schema validity is checked above, per object."""
    result = _kubectl(
        tmp_path,
        "annotate",
        "--local",
        "--dry-run=client",
        "-o",
        "name",
        "-f",
        f"k8s/{target}",
        "ray-orders/checked=offline",
    )
    assert result.returncode == 0, result.stderr
    kinds = {d["kind"]: d for d in RESOURCES.values()}
    expected = sorted(
        f"{d['kind'].lower()}{_group_suffix(d)}/{d['metadata']['name']}"
        for rid, d in RESOURCES.items()
        if rid.split(":")[0].startswith(target.rstrip("/"))
    )
    assert kinds and sorted(result.stdout.split()) == expected


def test_apply_dry_run_without_a_server_needs_discovery(tmp_path: Path) -> None:
    """Why the check above reads instead of applying: kubectl cannot map kinds offline."""
    result = _kubectl(
        tmp_path, "apply", "--dry-run=client", "--validate=false", "-f", "k8s/00-namespace.yaml"
    )
    assert result.returncode != 0


def _group_suffix(doc: dict[str, Any]) -> str:
    """kubectl's `-o name` form: kind.group, no group for the core API."""
    group = doc["apiVersion"].rpartition("/")[0]
    return f".{group}" if group else ""


# --- Secure by default (issue 15): what the local stack does (cluster/*.sh), in k8s too -------


def _ray_containers() -> dict[str, dict[str, Any]]:
    return {n: c for n, c in _app_containers().items() if m.is_ray_container(n)}


def _secret_values() -> set[str]:
    """Every value of every Secret in k8s/ except user names."""
    return {
        value
        for d in RESOURCES.values()
        if d["kind"] == "Secret"
        for key, value in d["stringData"].items()
        if "username" not in key
    }


def test_every_ray_node_has_the_runtime_secrets_from_secrets() -> None:
    """The head and every worker group run actors or replicas, which read their settings from
    their own node's environment (cluster/deploy.py keeps secrets out of runtime_env): each gets
    JWT_SECRET, DATABASE_URL, REDIS_URL and the Kafka password, built from Secrets only."""
    groups = {g["groupName"] for g in _cluster()["workerGroupSpecs"]}
    ray = _ray_containers()
    assert set(ray) == {"head", *(f"worker:{g}" for g in groups)}
    for name, container in ray.items():
        refs = m.secret_refs(container)
        env = _env(container)
        assert env.keys() >= m.RUNTIME_SECRETS, name
        assert {"JWT_SECRET", "KAFKA_PASSWORD"} <= refs.keys(), name
        for url in ("DATABASE_URL", "REDIS_URL"):
            (var,) = [v for v in container["env"] if v["name"] == url]
            used = set(re.findall(r"\$\((\w+)\)", var["value"]))
            assert used and used <= refs.keys(), f"{name}: {url} not from Secrets"
            assert urlsplit(env[url]).password in _secret_values(), name


def test_ray_nodes_run_as_the_dml_only_role_and_only_the_job_migrates() -> None:
    """Ray pods connect as orders_app with its Secret key; the schema owner's credentials (and
    the superuser's) reach the orders-init Job and Postgres only."""
    postgres = m.resource("StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"][0]
    pg = m.secret_refs(postgres)
    assert pg["ORDERS_APP_DB_PASSWORD"] != pg["ORDERS_DB_PASSWORD"] != pg["POSTGRES_PASSWORD"]
    for name, container in _app_containers().items():
        env, refs = _env(container), m.secret_refs(container)
        assert urlsplit(env["DATABASE_URL"]).username == "orders_app", name
        assert refs["ORDERS_APP_DB_PASSWORD"] == pg["ORDERS_APP_DB_PASSWORD"], name
        owner_refs = [
            r for r in refs.values() if r in (pg["ORDERS_DB_PASSWORD"], pg["POSTGRES_PASSWORD"])
        ]
        if name == "job:orders-init":
            assert urlsplit(env["MIGRATION_DATABASE_URL"]).username == "orders"
            assert refs["ORDERS_DB_PASSWORD"] == pg["ORDERS_DB_PASSWORD"]
        else:
            assert (
                not owner_refs
                and not m.OWNER_AND_SERVER_SECRETS - {"ORDERS_APP_DB_PASSWORD"} & env.keys()
            ), f"{name} holds the schema owner's or a server's credentials"
    assert (
        "scram-sha-256"
        in {v["name"]: v.get("value", "") for v in postgres["env"]}["POSTGRES_INITDB_ARGS"]
    )


def test_app_containers_share_image_and_settings_that_load() -> None:
    containers = _app_containers()
    assert len({c["image"] for c in containers.values()}) == 1
    envs = {name: _env(c) for name, c in containers.items()}
    ray = envs.pop("head")
    assert all(env == ray for n, env in envs.items() if n != "job:orders-init"), "env differs"
    job = envs["job:orders-init"]
    assert {k: v for k, v in job.items() if k not in ray}.keys() == {
        "ORDERS_DB_PASSWORD",
        "MIGRATION_DATABASE_URL",
    } and all(job[k] == v for k, v in ray.items())
    fields = Settings.model_fields
    settings = Settings(
        **cast(dict[str, Any], {k.lower(): v for k, v in ray.items() if k.lower() in fields})
    )
    assert settings.http_host == "0.0.0.0"
    assert settings.kafka_security_protocol == "SASL_PLAINTEXT"
    for url, service, port in [
        (settings.database_url, "postgres", 5432),
        (settings.redis_url, "redis", 6379),
        (f"//{settings.kafka_bootstrap}", "kafka", 9092),
    ]:
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == (service, port)
        assert m.resource("Service", service)["spec"]["ports"][0]["port"] == port


def test_init_job_migrates_and_seeds_as_the_owner_then_creates_topics() -> None:
    command = " ".join(_app_containers()["job:orders-init"]["command"])
    steps = re.findall(r"(\S*) python -m cli\.main (\w+)", command)
    owner = 'DATABASE_URL="$MIGRATION_DATABASE_URL"'
    assert steps == [(owner, "migrate"), (owner, "seed"), ("&&", "topics")]
    assert command.count("&&") == 2


def test_no_secret_is_written_outside_a_secret() -> None:
    """Secret values appear only in Secrets: not in a ConfigMap, not in serveConfigV2 (the Ray
    dashboard shows it), not in any env value, command or argument; every variable named like a
    secret is a secretKeyRef or a `$(VAR)` composition of them."""
    secrets = _secret_values()
    texts = []
    for rid, doc in RESOURCES.items():
        if doc["kind"] != "Secret":
            texts.append((rid, json.dumps(doc)))
    leaked = [(rid, v) for rid, text in texts for v in secrets if v in text]
    assert not leaked, leaked
    config = _rayservice()["spec"]["serveConfigV2"]
    assert "runtime_env" not in config
    for rid, doc in RESOURCES.items():
        for var in _all_env(doc):
            secret_like = re.search(r"PASSWORD|SECRET|TOKEN|_URL$", var["name"])
            if secret_like and "value" in var:
                assert re.fullmatch(r"[^:]+://[^@]*\$\(\w+\)@.+", var["value"]), (rid, var)


def _all_env(node: Any) -> list[dict[str, Any]]:
    """Every env entry of every container anywhere in an object."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if isinstance(node.get("env"), list) and "image" in node:
            found += node["env"]
        for value in node.values():
            found += _all_env(value)
    elif isinstance(node, list):
        for item in node:
            found += _all_env(item)
    return found


def test_ray_token_authentication_is_on() -> None:
    """KubeRay v1.7.0 `authOptions` (in the vendored CRD): token mode, the token generated by
    the operator and set as RAY_AUTH_MODE/RAY_AUTH_TOKEN on every Ray container, never set
    (or turned off) by a manifest; the probes' paths stay public under token authentication."""
    from ray.dashboard.http_server_agent import PUBLIC_EXACT_PATHS

    cluster = _cluster()
    assert cluster["authOptions"] == {"mode": "token"}
    major, minor = (int(x) for x in cluster["rayVersion"].split(".")[:2])
    assert (major, minor) >= (2, 52), "KubeRay refuses token mode before Ray 2.52"
    for rid, doc in RESOURCES.items():
        assert not [v for v in _all_env(doc) if v["name"].startswith("RAY_AUTH")], rid
    for name, container in _ray_containers().items():
        probe = container.get("readinessProbe", {}).get("httpGet")
        assert probe is None or probe["path"] in PUBLIC_EXACT_PATHS, name
    broken = copy.deepcopy(_rayservice())
    broken["spec"]["rayClusterConfig"]["authOptions"]["mode"] = "tokens"
    assert not m.crd_validator(broken["kind"], broken["apiVersion"]).is_valid(broken)


def _redis_acl() -> dict[str, str]:
    """user name (as the Secret's key names it) -> its ACL rules, from the Redis command."""
    redis = m.resource("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    script = redis["command"][-1]
    users = {v["name"]: v["valueFrom"]["secretKeyRef"]["key"] for v in redis["env"]}
    found = dict(re.findall(r'"user \$(\w+) on #\$\$\(sha "\$\w+"\) ([^"]+)"', script))
    return {users[var]: rules for var, rules in found.items()}


def test_redis_users_the_app_as_locally_and_the_gcs_limited_to_rays_keys() -> None:
    redis = m.resource("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    script = redis["command"][-1]
    assert f"'{m.local_redis_default_user()}'" in script
    assert "exec docker-entrypoint.sh redis-server /tmp/redis-acl.conf" in script
    acl = _redis_acl()
    assert acl["username"] == m.local_redis_app_rules()
    assert acl["gcs-username"] == "~RAY* ~DUMMY resetchannels +@all -@admin -@dangerous +info"
    # GCS fault tolerance logs in as the GCS user, the app as its own
    options = _cluster()["gcsFaultToleranceOptions"]
    host, port = options["redisAddress"].split(":")
    assert m.resource("Service", host)["spec"]["ports"][0]["port"] == int(port)
    refs = m.secret_refs(redis)
    assert options["redisUsername"]["valueFrom"]["secretKeyRef"] == refs["GCS_REDIS_USER"]
    assert options["redisPassword"]["valueFrom"]["secretKeyRef"] == refs["GCS_REDIS_PASSWORD"]
    head = m.secret_refs(_app_containers()["head"])
    assert head["REDIS_APP_USER"] == refs["REDIS_USER"]
    assert head["REDIS_APP_PASSWORD"] == refs["REDIS_PASSWORD"]


def test_postgres_image_creates_the_roles_as_the_local_stack_does() -> None:
    """docker/postgres/10-orders-role.sh (compose and k8s) grants what cluster/services.sh and
    cluster/pg_partman.sql grant locally, to the same two roles, neither a superuser."""
    script = (m.ROOT / "docker" / "postgres" / "10-orders-role.sh").read_text()
    starts = ("GRANT", "REVOKE", "ALTER DEFAULT PRIVILEGES")
    image = set(m.sql_statements(script, starts))
    partman = (m.ROOT / "cluster" / "pg_partman.sql").read_text().replace(':"owner_role"', "orders")
    assert set(m.local_pg_grants()) | set(m.sql_statements(partman, starts)) == image
    for role in ("orders", "orders_app"):
        assert f"ALTER ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" in script
    mode = subprocess.run(
        ["git", "ls-files", "-s", "docker/postgres/10-orders-role.sh"],
        cwd=m.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert mode.startswith("100755"), "the entry point sources a script that is not executable"


def test_kafka_requires_scram_from_every_client() -> None:
    """Every listener but the controller's is SASL (docs/adr/ADR-011-kafka-auth.md); the
    controller listens inside the pod only; the clients' settings and the broker's SCRAM user
    come from one Secret."""
    sts = m.resource("StatefulSet", "kafka")["spec"]["template"]["spec"]
    (broker,) = sts["containers"]
    assert broker["image"] == "ray-orders-kafka:4.1.1" and sts["enableServiceLinks"] is False
    env = {v["name"]: v.get("value") for v in broker["env"]}
    protocols = dict(x.split(":") for x in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = dict(x.split("://") for x in env["KAFKA_LISTENERS"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert listeners[controller].startswith("localhost:")
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@{listeners[controller]}"
    clients = {name: protocols[name] for name in listeners if name != controller}
    assert clients and set(clients.values()) == {"SASL_PLAINTEXT"}
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in clients
    app = _env(_app_containers()["head"])
    assert app["KAFKA_SECURITY_PROTOCOL"] in clients.values()
    assert app["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    refs, head = m.secret_refs(broker), m.secret_refs(_app_containers()["head"])
    assert refs["KAFKA_USERNAME"] == head["KAFKA_USERNAME"]
    assert refs["KAFKA_PASSWORD"] == head["KAFKA_PASSWORD"]


def test_postgres_frees_a_dead_owners_lock_within_about_30_seconds() -> None:
    """A shard owns its SKUs or ledgers through an advisory lock on a session it keeps; when its
    node dies without closing that session, only TCP keepalives end it. The OS default (~2 h)
    would keep the shard's replacement waiting for hours (docs/adr/ADR-010-kuberay-upgrades.md)."""
    postgres = m.resource("StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"][0]
    args = postgres["args"]
    assert args[::2] == ["-c"] * (len(args) // 2) and len(args) % 2 == 0
    settings = dict(a.split("=", 1) for a in args[1::2])
    keepalive = {k: int(v) for k, v in settings.items() if k.startswith("tcp_keepalives_")}
    assert keepalive == {
        "tcp_keepalives_idle": 10,
        "tcp_keepalives_interval": 5,
        "tcp_keepalives_count": 3,
    }
    idle, interval, count = keepalive.values()
    assert idle + interval * count <= 30


# --- The head's wait for the orders-init Job (a head replaced while Kafka is down) -------------

# What the head's init container gives an unanswering Kafka before it starts Ray anyway: well
# inside the 600 s KubeRay gives the workers to reach a GCS again (with GCS fault tolerance),
# after which their raylets exit.
KAFKA_WAIT_S = 120
WORKER_GCS_RECONNECT_S = 600


def kubernetes_expand(text: str, env: dict[str, str]) -> tuple[str, list[str]]:
    """A container command as the kubelet runs it (k8s.io/kubernetes third_party expansion):
    `$$` is `$`, `$(NAME)` is NAME's value (left as it is when NAME is not defined); with the
    names it referred to."""
    out: list[str] = []
    refs: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            following = text[i + 1]
            end = text.find(")", i + 2) if following == "(" else -1
            if following == "$":
                out.append("$")
            elif end != -1:
                name = text[i + 2 : end]
                refs.append(name)
                out.append(env.get(name, f"$({name})"))
                i = end + 1
                continue
            else:
                out.append("$" + following)
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out), refs


def test_kubernetes_expand_reads_commands_as_the_kubelet_does() -> None:
    assert kubernetes_expand("a $$(date) $(X) $(Y) $x $((1+2))", {"X": "1"}) == (
        "a $(date) 1 $(Y) $x $((1+2))",
        ["X", "Y", "(1+2"],
    )


def _head_wait_script() -> str:
    """The head's init container's script as bash gets it, refusing any `$(...)` the kubelet
    would read as a reference (a shell `$(...)` must be written `$$(...)`)."""
    head = _cluster()["headGroupSpec"]["template"]["spec"]
    (init,) = head["initContainers"]
    command = init["command"]
    assert command[:2] == ["bash", "-c"] and len(command) == 3, command
    script, refs = kubernetes_expand(command[2], _env(init))
    assert not refs, f"the kubelet would expand {refs}: write $$ for the shell's $"
    return script


def _cli_exit(monkeypatch: pytest.MonkeyPatch, argv: list[str], target: str, stand_in: Any) -> int:
    """`python -m cli.main ARGV`'s exit code (its line goes to stderr, which the caller's capsys
    reads), with `stand_in` for the function `target` names."""
    import sys

    from cli.main import app

    monkeypatch.setattr(target, stand_in)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # typer sets its own
    with pytest.raises(SystemExit) as exit_:
        app(argv)
    return int(exit_.value.code or 0)


def _cli_topics_check(monkeypatch: pytest.MonkeyPatch, answer: list[str] | Exception) -> int:
    """`topics --check`'s exit code with the broker's answer to `missing_topics` standing in:
    the topics it lacks, or the exception of a broker that does not answer."""

    async def missing_topics(bootstrap: str) -> list[str]:
        if isinstance(answer, Exception):
            raise answer
        return answer

    return _cli_exit(
        monkeypatch, ["topics", "--check"], "adapters.kafka.missing_topics", missing_topics
    )


def _cli_migrate_check(monkeypatch: pytest.MonkeyPatch, answer: tuple[str, ...] | Exception) -> int:
    """`migrate --check`'s exit code with the database's answer standing in: the revisions its
    `alembic_version` holds, or the exception of a Postgres that does not answer."""

    def database_revisions(dsn: str, timeout_s: int = 10) -> tuple[str, ...]:
        if isinstance(answer, Exception):
            raise answer
        return answer

    argv, target = ["migrate", "--check"], "cli.revision.database_revisions"
    return _cli_exit(monkeypatch, argv, target, database_revisions)


def _stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


# `python -m cli.main <check>` as the stand-in answers it: from the file of answers of its kind,
# each printing the real CLI's output for it and exiting with its code (`ok`: exit 0 silently);
# `down` also takes the CLI's bound on an unanswering server (10 s: Kafka's, Postgres's connect)
_PYTHON_STUB = """case "$*" in
  "-m cli.main topics --check") kind=topics ;;
  "-m cli.main migrate --check") kind=schema ;;
  *) echo "unexpected: $*" >&2; exit 99 ;;
esac
echo >>"$STUB/$kind.calls"
answer=$(head -n 1 "$STUB/$kind.answers"); sed -i 1d "$STUB/$kind.answers"
[ -n "$answer" ] || { echo "no answer left" >&2; exit 98; }
[ "$answer" = ok ] && exit 0
[ "$answer" = down ] && echo $(( $(cat "$STUB/clock") + 10 )) >"$STUB/clock"
cat "$STUB/$kind.$answer.out" >&2
exit "$(cat "$STUB/$kind.$answer.code")"
"""


def _calls(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def _run_head_wait(
    tmp_path: Path,
    answers: list[str],
    outputs: dict[str, tuple[int, str]],
    schema: tuple[str, ...] | list[str] = ("ok",),
) -> dict[str, Any]:
    """Run the head's wait with `python`, `date` and `sleep` standing in, on a simulated clock:
    each `python -m cli.main topics --check` gives the next of `answers` (`ok`, `missing`:
    Kafka answered without the topics, `down`: Kafka did not answer), each `python -m cli.main
    migrate --check` the next of `schema` (`ok`: at the head, `behind`, `unknown`, `down`:
    Postgres did not answer), with the real CLI's exit code and output for it (`outputs`, keyed
    `topics.<answer>` and `schema.<answer>`)."""
    stubs = tmp_path / "bin"
    stubs.mkdir(parents=True)
    (tmp_path / "clock").write_text("1000\n")
    (tmp_path / "topics.answers").write_text("".join(f"{a}\n" for a in answers))
    (tmp_path / "schema.answers").write_text("".join(f"{a}\n" for a in schema))
    for answer, (code, output) in outputs.items():
        (tmp_path / f"{answer}.code").write_text(f"{code}\n")
        (tmp_path / f"{answer}.out").write_text(output)
    _stub(stubs, "date", '[ "$*" = "+%s" ] || exit 97\ncat "$STUB/clock"\n')
    _stub(stubs, "sleep", 'echo $(( $(cat "$STUB/clock") + $1 )) >"$STUB/clock"\n')
    _stub(stubs, "python", _PYTHON_STUB)
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "STUB": str(tmp_path),
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        ["bash", "-c", _head_wait_script()],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return {
        "rc": result.returncode,
        "out": result.stdout + result.stderr,
        "calls": _calls(tmp_path / "topics.calls"),
        "schema_calls": _calls(tmp_path / "schema.calls"),
        "waited": int((tmp_path / "clock").read_text()) - 1000,
    }


def _topics_outputs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, tuple[int, str]]:
    """The real `topics --check`'s exit codes and output for a broker without the topics and
    one that does not answer."""
    from aiokafka.errors import KafkaConnectionError

    code = _cli_topics_check(monkeypatch, ["order.created", "order.created.dlq"])
    missing = capsys.readouterr().err
    assert code == 1 and re.search(r"^missing topics: order\.created", missing, re.M), missing
    code = _cli_topics_check(monkeypatch, KafkaConnectionError("Unable to bootstrap"))
    down = capsys.readouterr().err
    assert code == 1 and not re.search(r"^missing topics: ", down, re.M), down
    return {"topics.missing": (1, missing), "topics.down": (1, down)}


def test_the_head_waits_for_the_topics_only_while_kafka_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The head's init container runs on every start of a head pod, a replacement's too. A head
    replaced while Kafka is down must still start its GCS before the workers give up on it
    (KubeRay: 600 s), since orders are accepted without Kafka (the outbox keeps them; the relay
    and the consumers reconnect by themselves): it waits for an unanswering Kafka at most
    KAFKA_WAIT_S. Kafka answering without the topics is the first install, before orders-init
    has created them: that wait has no limit (no worker runs yet). Run with the CLI's real
    messages for both."""
    outputs = _topics_outputs(monkeypatch, capsys)
    assert KAFKA_WAIT_S + 30 < WORKER_GCS_RECONNECT_S

    # the topics exist: Ray starts at once
    run = _run_head_wait(tmp_path / "ok", ["ok"], outputs)
    assert (run["rc"], run["calls"], run["waited"]) == (0, 1, 0), run
    # Kafka down for good: Ray starts after KAFKA_WAIT_S (and one more check and pause)
    run = _run_head_wait(tmp_path / "down", ["down"] * 100, outputs)
    assert run["rc"] == 0 and run["calls"] < 100, run
    assert KAFKA_WAIT_S <= run["waited"] <= KAFKA_WAIT_S + 15, run
    assert f"has not answered for {KAFKA_WAIT_S} s" in run["out"]
    # the first install: Kafka starting, then answering without the topics for long past the
    # bound, then the Job has created them
    answers = ["down"] * 3 + ["missing"] * 100 + ["ok"]
    run = _run_head_wait(tmp_path / "first", answers, outputs)
    assert (run["rc"], run["calls"]) == (0, len(answers)), run
    assert run["waited"] > 3 * KAFKA_WAIT_S
    assert "waiting for job/orders-init" in run["out"]
    assert "not waiting for it" not in run["out"]


def _schema_outputs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, tuple[int, str]], str, str]:
    """The real `migrate --check`'s exit codes and lines for a database behind this code's
    head, at a revision it does not know, and not answering; with the head and the revision
    before it."""
    import psycopg
    from alembic.script import ScriptDirectory

    from adapters.revisions import MIGRATIONS

    scripts = ScriptDirectory(str(MIGRATIONS))
    head = scripts.get_current_head()
    assert head is not None
    previous = scripts.get_revision(head).down_revision
    assert isinstance(previous, str)
    outputs: dict[str, tuple[int, str]] = {}
    answers: dict[str, tuple[str, ...] | Exception] = {
        "ok": (head,),
        "behind": (previous,),
        "unknown": ("ffffffff",),
        "down": psycopg.OperationalError("connection failed: Connection refused"),
    }
    for name, answer in answers.items():
        code = _cli_migrate_check(monkeypatch, answer)
        outputs[f"schema.{name}"] = (code, capsys.readouterr().err)
    assert outputs["schema.ok"][0] == 0, outputs
    # every other answer is nonzero and a line naming this code's head; "behind" and "down"
    # differ by the code, which is what the script reads
    assert len({code for code, _ in outputs.values()}) == len(outputs), outputs
    for _, line in outputs.values():
        assert f"this code's head {head}" in line.splitlines()[-1], line
    assert f"database at {previous}," in outputs["schema.behind"][1]
    return outputs, head, previous


def test_the_head_waits_for_the_schema_at_its_images_head_only_while_postgres_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new image started without its migration (ADR-010's procedure skipped, or the cluster
    deleted by hand) would run new code on the old schema: the head waits, however long, for
    the schema at its image's head, naming both revisions, while Postgres says it is behind
    (no worker of the new image runs yet). A Postgres that does not answer is waited for at
    most KAFKA_WAIT_S from the container's start, Kafka's time included, as for Kafka (a
    replaced head must reach its GCS before the workers give up), unless it said "behind"
    before. A schema newer than the image (the upgrade's Job migrated it while the old cluster
    runs, whose head may be replaced meanwhile) does not hold the head. Run with the CLI's real
    exit codes and lines."""
    outputs, head, previous = _schema_outputs(monkeypatch, capsys)
    outputs.update(_topics_outputs(monkeypatch, capsys))

    # at the head: Ray starts at once
    run = _run_head_wait(tmp_path / "head", ["ok"], outputs, ["ok"])
    assert (run["rc"], run["schema_calls"], run["waited"]) == (0, 1, 0), run
    # behind for long past the bound, then the Job has migrated it
    run = _run_head_wait(tmp_path / "behind", ["ok"], outputs, ["behind"] * 100 + ["ok"])
    assert (run["rc"], run["schema_calls"]) == (0, 101), run
    assert run["waited"] > 3 * KAFKA_WAIT_S
    assert f"database at {previous}, this code's head {head}" in run["out"]
    assert "waiting for job/orders-init" in run["out"]
    assert "starting Ray" not in run["out"], run
    # Postgres down for good: Ray starts after the bound (and one more check and pause)
    run = _run_head_wait(tmp_path / "down", ["ok"], outputs, ["down"] * 100)
    assert run["rc"] == 0 and run["schema_calls"] < 100, run
    assert KAFKA_WAIT_S <= run["waited"] <= KAFKA_WAIT_S + 15, run
    assert f"no schema revision read within {KAFKA_WAIT_S} s" in run["out"]
    # Kafka and Postgres both down: one bound for both
    run = _run_head_wait(tmp_path / "both", ["down"] * 100, outputs, ["down"] * 100)
    assert run["rc"] == 0 and run["schema_calls"] >= 1, run
    assert KAFKA_WAIT_S <= run["waited"] <= KAFKA_WAIT_S + 25, run
    # behind, then Postgres down past the bound: still waits for the migration
    schema = ["behind"] + ["down"] * 30 + ["ok"]
    run = _run_head_wait(tmp_path / "behind-down", ["ok"], outputs, schema)
    assert (run["rc"], run["schema_calls"]) == (0, len(schema)), run
    assert run["waited"] > 2 * KAFKA_WAIT_S
    # a revision the image does not know: Ray starts at once, saying so
    run = _run_head_wait(tmp_path / "unknown", ["ok"], outputs, ["unknown"])
    assert (run["rc"], run["schema_calls"], run["waited"]) == (0, 1, 0), run
    assert "does not know" in run["out"] and "starting Ray" in run["out"]


# --- The install and every change: one kustomization -------------------------------------------


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def _readme_section(title: str) -> str:
    text = (m.ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _commands(block: str) -> list[str]:
    """Each command of a bash block: comments dropped, a line continued with `\\` joined, and
    the `&&` that chains a command to the next one left out."""
    lines = [x.strip() for x in block.replace("\\\n", " ").splitlines()]
    commands = [re.sub(r"\s+#.*$", "", x) for x in lines if x and x[0] != "#"]
    return [re.sub(r"\s*&&$", "", c).strip() for c in commands]


ADR_010 = m.ROOT / "docs" / "adr" / "ADR-010-kuberay-upgrades.md"
ADR_011 = m.ROOT / "docs" / "adr" / "ADR-011-kafka-auth.md"


def test_the_install_and_every_change_apply_the_kustomization() -> None:
    """`kubectl apply -f` names orders-config and the Secrets as the files do; the first
    `apply -k` after it renames every reference, which the orders-init Job refuses and which
    rolls the server StatefulSets: the README installs with `apply -k` as ADR-010 applies every
    change, and no block of either applies a folder or file of k8s/ with `-f`."""
    k8s = _readme_section("Kubernetes")
    blocks = _bash_blocks(k8s) + _bash_blocks(ADR_010.read_text())
    applies = [c for b in blocks for c in _commands(b) if c.startswith("kubectl apply")]
    assert applies and set(applies) == {"kubectl apply -k k8s/"}, applies
    install = next(b for b in _bash_blocks(k8s) if "rayservice/orders" in b)  # the first
    steps = _commands(install)
    crd = next(i for i, c in enumerate(steps) if "crd/rayservices.ray.io" in c)
    apply = steps.index("kubectl apply -k k8s/")
    ready = next(i for i, c in enumerate(steps) if "condition=Ready rayservice/orders" in c)
    assert crd < apply < ready
    # an upgrade replaces the cluster only after its migrations: chained, so that a failed or
    # timed-out Job stops the block before new code starts on the old schema
    upgrades = [b for b in blocks if "delete raycluster" in b]
    assert len(upgrades) == 2, upgrades  # the README's and ADR-010's
    for block in upgrades:
        lines = [re.sub(r"\s+#.*$", "", x).strip() for x in block.splitlines()]
        steps = [x for x in lines if x and not x.startswith("#")]
        assert all(x.endswith("&&") for x in steps[:-1]), steps
    # the kustomization holds every object the per-folder sequence sent (checked above with
    # kubectl), the namespace included, which kustomize sends first
    assert KUSTOMIZATION["resources"][0] == "00-namespace.yaml"


# --- Changing Kafka's SCRAM password ------------------------------------------------------------


def _kafka_configs(block: str) -> dict[str, str]:
    """The options of the one kafka-configs.sh command of a bash block."""
    (command,) = [c for c in _commands(block) if "kafka-configs.sh" in c]
    words = command.split()
    at = next(i for i, w in enumerate(words) if w.endswith("/kafka-configs.sh"))
    options: dict[str, str] = {"prefix": " ".join(words[:at]), "tool": words[at]}
    rest = words[at + 1 :]
    for i, word in enumerate(rest):
        if word.startswith("--"):
            value = rest[i + 1] if i + 1 < len(rest) and not rest[i + 1].startswith("--") else ""
            options[word] = value
    return options


def test_the_kafka_password_change_logs_in_where_the_broker_listens() -> None:
    """Kafka 4's kafka-configs.sh needs a bootstrap address (no ZooKeeper), and the broker
    accepts SCRAM clients only: ADR-011's commands, compose's and k8s', reach a SASL listener of
    their broker from inside its container with the client.properties start.sh writes there."""
    start = (m.ROOT / "docker" / "kafka" / "start.sh").read_text()
    conf = re.search(r'^conf="\$\{BROKER_CONFIG_DIR:-([^}]+)\}"$', start, re.M)
    assert conf and '>"$conf/client.properties"' in start
    properties = f"{conf[1]}/client.properties"
    mechanism = re.search(r"^mechanism=(\S+)$", start, re.M)
    assert mechanism
    section = ADR_011.read_text()
    section = section[section.index("## Changing the SCRAM password") :]
    compose_block, k8s_block = [b for b in _bash_blocks(section) if "kafka-configs.sh" in b]
    for block in (compose_block, k8s_block):
        options = _kafka_configs(block)
        assert options["tool"] == "/opt/kafka/bin/kafka-configs.sh"
        assert options["--command-config"] == properties
        assert "--alter" in options and options["--entity-type"] == "users"
        assert options["--add-config"] == f"'{mechanism[1]}=[password=NEW]'"
        assert "--zookeeper" not in options
    # compose: in the kafka service, at the address its health check (and every container) uses
    service = m.compose()["services"]["kafka"]
    options = _kafka_configs(compose_block)
    assert options["prefix"] == "docker compose exec kafka"
    health = " ".join(service["healthcheck"]["test"])
    assert f"--bootstrap-server {options['--bootstrap-server']} " in health
    assert f"--command-config {properties}" in health
    advertised = dict(
        x.split("://") for x in service["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    assert advertised["SASL"] == options["--bootstrap-server"]
    # k8s: in the broker's pod, at the kafka Service's port, the SASL listener's
    sts = m.resource("StatefulSet", "kafka")
    (broker,) = sts["spec"]["template"]["spec"]["containers"]
    env = {v["name"]: v.get("value") for v in broker["env"]}
    listeners = dict(x.split("://") for x in env["KAFKA_LISTENERS"].split(","))
    options = _kafka_configs(k8s_block)
    assert options["prefix"] == f"kubectl -n orders exec {sts['metadata']['name']}-0 -c kafka --"
    host, port = options["--bootstrap-server"].split(":")
    (service_port,) = m.resource("Service", host)["spec"]["ports"]
    assert int(port) == service_port["port"] == int(listeners["SASL"].rpartition(":")[2])
    protocols = dict(x.split(":") for x in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols["SASL"] == "SASL_PLAINTEXT"
    # where the other files point for it
    for path in ("README.md", "k8s/infra/secrets.yaml", "docs/adr/ADR-010-kuberay-upgrades.md"):
        words = " ".join((m.ROOT / path).read_text().replace("#", " ").split())
        assert '"Changing the SCRAM password"' in words, path


def test_redis_memory_is_capped_below_its_limit_evicting_only_keys_with_a_ttl() -> None:
    """Idempotency entries (24 h each) had no cap: at a few keyed orders a second the pod
    passed its 256 Mi limit within the day and was killed, taking the GCS's tables (GCS fault
    tolerance) with it. Now Redis evicts the least recently used key with a TTL past a cap
    below the limit; the GCS's keys and the breaker's state have none, so they stay."""
    redis = m.resource("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    script = redis["command"][-1]
    cap = re.search(r"--maxmemory (\d+)mb --maxmemory-policy volatile-lru\b", script)
    assert cap, script
    limit = redis["resources"]["limits"]["memory"]
    assert limit.endswith("Mi") and int(cap[1]) * 10**6 <= 0.7 * int(limit[:-2]) * 2**20


def _pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod specs of an object: a workload's template, a RayService's head and groups."""
    if doc["kind"] in ("StatefulSet", "Deployment", "Job"):
        return [doc["spec"]["template"]["spec"]]
    if doc["kind"] == "RayService":
        cluster = doc["spec"]["rayClusterConfig"]
        groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
        return [g["template"]["spec"] for g in groups]
    return []


def test_every_container_requests_cpu_and_memory_and_caps_memory() -> None:
    """A namespace with a ResourceQuota on requests refuses a pod with a container that has
    none (the head's init container had none), and a container without a memory limit may take
    the node's."""
    for name, doc in m.resources().items():
        for spec in _pod_specs(doc):
            for container in spec.get("initContainers", []) + spec["containers"]:
                res = container.get("resources", {})
                where = f"{name}: {container['name']}"
                assert {"cpu", "memory"} <= set(res.get("requests", {})), where
                assert "memory" in res.get("limits", {}), where
