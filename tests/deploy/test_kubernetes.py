"""deploy/kubernetes/, validated offline against the Kubernetes JSON schemas, then checked.

Every manifest is validated by kubernetes-validate, which bundles the API schemas of each
Kubernetes release (strict: unknown fields are errors), for the oldest and the newest
release we claim. Then what the schemas cannot see: the kustomization lists every
manifest; selectors of Services, PDBs and the HPA find their pods; the gateway has its
probes on /readyz and /healthz; every follower the code has runs as a Deployment of two;
every container has resource requests and runs as non-root; settings are real
CUSTOMERS_* names, with the JWT secret, the key-encryption key and the database URL
(which holds a password) coming from the Secret only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from infrastructure.settings import ENV_PREFIX, Settings
from workers.runners import IMPORT_WORKER, follower_names

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "deploy" / "kubernetes"
VERSIONS = ("1.30.0", "1.37.0")
"""The oldest Kubernetes release we support (HPA v2, PDB v1, CronJob v1 are older) and the
newest whose schemas kubernetes-validate bundles."""
SECRET_ONLY = {
    "CUSTOMERS_DATABASE_URL",
    "CUSTOMERS_JWT_SECRET",
    "CUSTOMERS_SECRET_KEY",
    "CUSTOMERS_NOTIFICATION_KEY",
    "CUSTOMERS_KEY_ENCRYPTION_KEY",
}
SETTINGS = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}

Manifest = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(p for p in FOLDER.glob("*.yaml") if p.name != "kustomization.yaml")


def load_all() -> list[tuple[Path, Manifest]]:
    return [
        (path, document)
        for path in manifest_files()
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def named(kind: str, name: str) -> Manifest:
    [found] = [m for _, m in load_all() if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def pod_templates() -> Iterator[tuple[str, Manifest]]:
    """(owner name, pod template) of every workload, CronJobs included."""
    for _, manifest in load_all():
        spec = manifest.get("spec", {})
        if manifest["kind"] in ("Deployment", "StatefulSet"):
            yield manifest["metadata"]["name"], spec["template"]
        elif manifest["kind"] == "CronJob":
            yield manifest["metadata"]["name"], spec["jobTemplate"]["spec"]["template"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_each_manifest_is_valid_kubernetes(path: Path, version: str) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert documents, f"{path.name} is empty"
    for document in documents:
        where = f"{path.name}: {document.get('kind')} {document.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            location = "/".join(str(p) for p in error.absolute_path)
            pytest.fail(f"{where} (Kubernetes {version}) at {location}: {error.message}")


def test_the_validator_is_strict() -> None:
    """A misspelt field fails: the schemas are not a rubber stamp."""
    deployment = named("Deployment", "gateway")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readynessProbe"):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


def test_the_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((FOLDER / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    files = {p.name for p in manifest_files()}
    assert listed == files - {"secret.example.yaml"}
    assert kustomization["namespace"] == "customers"
    assert [i["name"] for i in kustomization["images"]] == ["customers"]
    for _, manifest in load_all():
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"]["namespace"] == "customers", manifest["metadata"]["name"]


def test_gateway_probes_autoscaler_and_budget() -> None:
    deployment = named("Deployment", "gateway")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "gateway"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port = container["readinessProbe"]["httpGet"]["port"]
    assert port in {p["name"] for p in container["ports"]}
    hpa = named("HorizontalPodAutoscaler", "gateway")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert named("PodDisruptionBudget", "gateway")["spec"]["minAvailable"] >= 1
    service = named("Service", "gateway")
    assert service["spec"]["ports"][0]["targetPort"] == port


def test_every_follower_and_the_import_worker_have_a_deployment_of_two_and_a_budget() -> None:
    """One Deployment of two replicas per follower and for imports, each with a PDB."""
    workers = {
        m["metadata"]["name"]: m
        for _, m in load_all()
        if m["kind"] == "Deployment" and m["metadata"]["name"].startswith("worker-")
    }
    assert set(workers) == {f"worker-{name}" for name in (*follower_names(), IMPORT_WORKER)}
    for name, deployment in workers.items():
        follower = name.removeprefix("worker-")
        assert deployment["spec"]["replicas"] == 2, "an active runner and a standby"
        strategy = deployment["spec"]["strategy"]["rollingUpdate"]
        assert strategy == {"maxSurge": 1, "maxUnavailable": 0}, "the new pod waits as standby"
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["customers", "worker", follower]
        assert named("PodDisruptionBudget", name)["spec"]["maxUnavailable"] == 1


def test_selectors_find_their_pods() -> None:
    """Services, PDBs and workloads select labels that their pod templates carry."""
    templates = [t["metadata"]["labels"] for _, t in pod_templates()]
    for _, manifest in load_all():
        kind, spec = manifest["kind"], manifest.get("spec", {})
        if kind == "Service":
            selector = spec["selector"]
        elif kind in ("PodDisruptionBudget", "Deployment", "StatefulSet"):
            selector = spec["selector"]["matchLabels"]
        else:
            continue
        matching = [labels for labels in templates if selector.items() <= labels.items()]
        assert matching, f"{kind} {manifest['metadata']['name']} selects no pod"
        if kind in ("Deployment", "StatefulSet"):
            assert selector.items() <= spec["template"]["metadata"]["labels"].items()


def test_nats_is_a_three_node_jetstream_cluster() -> None:
    statefulset = named("StatefulSet", "nats")
    assert statefulset["spec"]["replicas"] == 3
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    config = named("ConfigMap", "nats-config")["data"]["nats.conf"]
    for i in range(3):
        assert f"nats://nats-{i}.nats-headless:6222" in config
    assert "jetstream" in config and "store_dir: /data" in config
    assert named("PodDisruptionBudget", "nats")["spec"]["maxUnavailable"] == 1
    nats_url = named("ConfigMap", "customers-config")["data"]["CUSTOMERS_NATS_URL"]
    assert nats_url.split(",") == [f"nats://nats-{i}.nats-headless:4222" for i in range(3)]
    stream = named("CronJob", "customers-nats-stream")
    [container] = stream["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][-2:] == ["--replicas", "3"]


def test_one_shot_jobs_are_suspended_templates() -> None:
    for name, command in (
        ("customers-migrate", ["customers", "migrate"]),
        ("customers-nats-stream", ["python", "/opt/customers/nats_stream.py"]),
    ):
        cronjob = named("CronJob", name)
        assert cronjob["spec"]["suspend"] is True, "run by `kubectl create job --from`, never timed"
        [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert container["command"][: len(command)] == command


def test_containers_request_resources_and_run_unprivileged() -> None:
    for owner, template in pod_templates():
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, owner
        assert spec.get("automountServiceAccountToken") is False, owner
        for container in spec["containers"]:
            requests = container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(requests), owner
            assert "memory" in container["resources"]["limits"], owner
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, owner
            assert security["readOnlyRootFilesystem"] is True, owner
            assert security["capabilities"]["drop"] == ["ALL"], owner


def test_settings_are_real_and_secrets_come_from_the_secret() -> None:
    config = named("ConfigMap", "customers-config")["data"]
    secret = named("Secret", "customers-secrets")["stringData"]
    assert set(secret) == SECRET_ONLY
    assert not SECRET_ONLY & set(config), "secrets never in the ConfigMap"
    for key in config:
        assert key in SETTINGS or key.startswith("PG"), f"not a setting: {key}"
    for owner, template in pod_templates():
        for container in template["spec"]["containers"]:
            for variable in container.get("env", []):
                name = variable["name"]
                assert name in SETTINGS or not name.startswith(ENV_PREFIX), (owner, name)
                assert name not in SECRET_ONLY, f"{owner}: {name} must come from the Secret"
            sources = container.get("envFrom", [])
            refs = {next(iter(s)): next(iter(s.values()))["name"] for s in sources}
            if owner != "nats" and owner != "customers-nats-stream":
                assert refs == {
                    "configMapRef": "customers-config",
                    "secretRef": "customers-secrets",
                }, owner
