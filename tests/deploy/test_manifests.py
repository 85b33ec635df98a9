"""Offline checks of k8s/: schemas (Kubernetes, KubeRay CRDs, Ray Serve) and the wiring
between the objects that a cluster would only reveal at run time."""

from __future__ import annotations

import copy
import importlib
import json
import re
import subprocess
from pathlib import Path
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
    (group,) = [g for g in _cluster()["workerGroupSpecs"] if g["groupName"] == name]
    return group


def _deployment() -> dict[str, Any]:
    (deployment,) = _serve_config()["applications"][0]["deployments"]
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
    settings = Settings(**{k.lower(): v for k, v in env.items() if k.lower() in fields})
    assert settings.actor_num_cpus > 0
    pipeline = _group("pipeline")
    assert "num-cpus" not in pipeline["rayStartParams"] and not _custom_resources(pipeline)
    cpu = float(pipeline["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
    assert cpu * 10 >= 11 * settings.actor_num_cpus * 10  # 11 actors at the defaults fit a pod
    others = [_cluster()["headGroupSpec"], _group("gateway")]
    assert all(g["rayStartParams"]["num-cpus"] == "0" for g in others)


def test_api_gateway_is_the_rayservices_serve_service_on_port_80() -> None:
    """KubeRay creates `api-gateway` and keeps it on the active cluster's serving pods, so
    `kubectl -n orders port-forward svc/api-gateway 8080:80` works; k8s/ has no such Service
    of its own (it would select the pods of both clusters)."""
    service = _rayservice()["spec"]["serveService"]
    assert (service["metadata"]["name"], service["metadata"]["namespace"]) == (
        "api-gateway",
        "orders",
    )
    (port,) = service["spec"]["ports"]
    assert port == {"name": "serve", "port": 80, "targetPort": "serve"}
    assert "selector" not in service["spec"]  # KubeRay sets it
    assert not [
        d
        for d in RESOURCES.values()
        if d["kind"] == "Service" and d["metadata"]["name"] == "api-gateway"
    ]
    serve_port = _serve_config()["http_options"]["port"]
    assert serve_port == Settings.model_fields["http_port"].default == 8080
    head = _cluster()["headGroupSpec"]["template"]["spec"]["containers"][0]
    gateway = _group("gateway")["template"]["spec"]["containers"][0]
    assert _port(head, "serve") == _port(gateway, "serve") == serve_port
    # Pipeline pods run no Serve proxy: no `serve` port keeps them out of the Service (named
    # targetPort), and their own readiness probe keeps KubeRay from adding a proxy check.
    pipeline = _group("pipeline")["template"]["spec"]["containers"][0]
    assert "serve" not in {p["name"] for p in pipeline["ports"]}
    assert pipeline["readinessProbe"]["httpGet"] == {"path": "/api/healthz", "port": 52365}
    assert "readinessProbe" not in gateway


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


def test_gcs_fault_tolerance_uses_the_external_redis_with_its_secret() -> None:
    options = _cluster()["gcsFaultToleranceOptions"]
    host, port = options["redisAddress"].split(":")
    assert m.resource("Service", host)["spec"]["ports"][0]["port"] == int(port)
    redis = m.resource("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    redis_env = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in redis["env"]}
    assert options["redisUsername"]["valueFrom"]["secretKeyRef"] == redis_env["REDIS_USER"]
    assert options["redisPassword"]["valueFrom"]["secretKeyRef"] == redis_env["REDIS_PASSWORD"]
    assert "--user default off" in " ".join(redis["args"])


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


def test_secrets_reach_pods_only_as_secret_env() -> None:
    """Secrets go Secret -> env on the head and every worker, never into serveConfigV2 (which
    the Ray dashboard shows) or the ConfigMap."""
    secrets = {
        value
        for d in RESOURCES.values()
        if d["kind"] == "Secret"
        for key, value in d["stringData"].items()
        if key != "username"
    }
    config = _rayservice()["spec"]["serveConfigV2"]
    assert "runtime_env" not in config and not [v for v in secrets if v in config]
    config_map = m.resource("ConfigMap", "orders-config")["data"]
    assert not [v for v in secrets if v in config_map.values()]
    for name, container in _app_containers().items():
        refs = {v["name"] for v in container["env"] if "valueFrom" in v}
        assert {"JWT_SECRET", "POSTGRES_PASSWORD", "REDIS_APP_PASSWORD"} <= refs, name


def test_postgres_app_role_is_not_the_superuser() -> None:
    """The app connects as `orders`, created by the image's first-start script without
    superuser rights; the superuser's password is another Secret key, given to Postgres only."""
    postgres = m.resource("StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"][0]
    env = {v["name"]: v.get("value", v.get("valueFrom")) for v in postgres["env"]}
    assert env["POSTGRES_USER"] != "orders"
    assert env["ORDERS_DB_PASSWORD"]["secretKeyRef"] == {
        "name": "postgres-credentials",
        "key": "password",
    }
    assert env["POSTGRES_PASSWORD"]["secretKeyRef"]["key"] != "password"
    assert "scram-sha-256" in env["POSTGRES_INITDB_ARGS"]
    for name, container in _app_containers().items():
        refs = {
            v["name"]: v["valueFrom"]["secretKeyRef"] for v in container["env"] if "valueFrom" in v
        }
        assert refs["POSTGRES_PASSWORD"] == env["ORDERS_DB_PASSWORD"]["secretKeyRef"], name
        assert urlsplit(_env(container)["DATABASE_URL"]).username == "orders", name


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
# The seed's apply sequence (README, Kubernetes).
APPLY_SEQUENCE = ["00-namespace.yaml", "infra/", "services/", "hpa/"]


def test_kustomize_builds_every_object(tmp_path: Path) -> None:
    result = _kubectl(tmp_path, "kustomize", "k8s/")
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted(f"{d['kind']}/{d['metadata']['name']}" for d in built) == sorted(
        f"{d['kind']}/{d['metadata']['name']}" for d in RESOURCES.values()
    )


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
