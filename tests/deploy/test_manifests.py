"""deploy/k8s: valid Kubernetes objects, and saying what the code does: the ports,
the probes' service names, the configuration, the grace periods, the storage."""

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from deploy_model import (
    K8S,
    PROCESSES,
    SERVICES,
    Instruction,
    Manifests,
    Service,
    config_in,
    container_env,
    image_env,
    kustomization,
    load_manifests,
)
from packaging.version import Version

#: The oldest Kubernetes the manifests are for: native gRPC probes are GA from 1.27.
OLDEST = "1.27"
#: The newest Kubernetes whose schemas kubernetes-validate ships.
NEWEST = ".".join(kubernetes_validate.latest_version().split(".")[:2])
#: The console's disruption budget is among them (deploy/console).
KINDS = {"Deployment", "Service", "PersistentVolumeClaim", "PodDisruptionBudget"}

by_name = pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)


def _objects_ids() -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in load_manifests()]


def test_the_kustomization_lists_every_manifest_and_the_console() -> None:
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    resources = kustomization()["resources"]
    assert sorted(r for r in resources if r.endswith(".yaml")) == files
    assert [r for r in resources if not r.endswith(".yaml")] == ["../console"]


def test_the_schemas_are_of_a_current_kubernetes() -> None:
    assert Version(NEWEST) >= Version("1.33")


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("index", range(len(_objects_ids())), ids=_objects_ids())
def test_every_object_is_valid(index: int, version: str) -> None:
    document = load_manifests()[index]
    assert document["kind"] in KINDS
    # strict: a field the schema does not know (a typo, a field of a later
    # version) is an error, not ignored as the API server would.
    assert kubernetes_validate.validate(document, version, strict=True) == version


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="no kubectl to render the kustomization"
)
def test_what_kubectl_apply_k_applies_is_the_manifests(manifests: Manifests) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    applied = Manifests([d for d in yaml.safe_load_all(rendered) if d])
    names = lambda m: sorted((o["kind"], o["metadata"]["name"]) for o in m.objects)  # noqa: E731
    assert names(applied) == names(manifests)
    for document in applied.objects:
        kubernetes_validate.validate(document, NEWEST, strict=True)
    # The kustomization's image entry leaves the image as the manifests name it.
    for service in PROCESSES:
        assert applied.container(service)["image"] == manifests.container(service)["image"]


# -- each service ------------------------------------------------------------------


@by_name
def test_the_command_runs_the_service_module(manifests: Manifests, service: Service) -> None:
    container = manifests.container(service)
    assert container["command"] == ["python", "-m", service.module]
    assert "args" not in container
    assert importlib.util.find_spec(f"{service.module}.__main__") is not None


def test_the_three_run_one_image(manifests: Manifests) -> None:
    images = {manifests.container(s)["image"] for s in SERVICES}
    assert len(images) == 1
    (image,) = images
    assert image.partition(":")[2] not in ("", "latest"), "pin a tag"
    assert image.partition(":")[0] in {i["name"] for i in kustomization()["images"]}


@by_name
def test_the_configuration_is_the_environment_and_starts_the_service(
    manifests: Manifests, service: Service, final_stage: list[Instruction]
) -> None:
    container = manifests.container(service)
    assert not {"args", "envFrom"} & set(container)
    env = container_env(container, image_env(final_stage))
    config = config_in(service, env)
    prefix = service.env_prefix
    # Set in the manifest itself, not left to the image or the defaults.
    own = {v["name"] for v in container["env"]}
    for option in ("HOST", "PORT", "LOG_LEVEL", "STORE", "DATA_DIR", "GRACE_SECONDS"):
        assert f"{prefix}_{option}" in own
    assert config.host == "0.0.0.0"
    assert config.port == service.port
    assert config.store == "sqlite"
    assert config.log_level == "INFO"


def _health_port(manifests: Manifests, service: Service, final_stage: list[Instruction]) -> int:
    container = manifests.container(service)
    port: int = config_in(service, container_env(container, image_env(final_stage))).health_port
    return port


@by_name
def test_the_ports_are_the_services_defaults_and_its_health_port(
    manifests: Manifests, service: Service, final_stage: list[Instruction]
) -> None:
    container = manifests.container(service)
    ports = {p["name"]: p for p in container["ports"]}
    # metrics: test_observability_assets checks it.
    assert set(ports) == {"grpc", "health", "metrics"}
    assert (ports["grpc"]["containerPort"], ports["grpc"]["protocol"]) == (service.port, "TCP")
    health = _health_port(manifests, service, final_stage)
    assert ports["health"]["containerPort"] == health != service.port
    # The Service exposes the calls' port only; health is for the kubelet.
    (exposed,) = manifests.find("Service", service.name)["spec"]["ports"]
    assert exposed["port"] == service.port
    assert exposed["targetPort"] in ("grpc", service.port)


@by_name
def test_liveness_and_start_up_ask_for_the_whole_server(
    manifests: Manifests, service: Service, final_stage: list[Instruction]
) -> None:
    # On the plaintext health port: the kubelet's gRPC probes speak no TLS.
    health = _health_port(manifests, service, final_stage)
    for kind in ("liveness", "startup"):
        probe = manifests.probe(service, kind)
        assert not {"httpGet", "tcpSocket", "exec"} & set(probe)
        # The kubelet sends "" when service is left out; it is written out here.
        assert probe["grpc"] == {"port": health, "service": ""}
    liveness = manifests.probe(service, "liveness")
    assert liveness["timeoutSeconds"] < liveness["periodSeconds"]
    # Not trigger-happy: a process is restarted only after 20 s or more unanswered.
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 20
    startup = manifests.probe(service, "startup")
    # Recovering the state from the database may take a while.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


@by_name
def test_readiness_asks_for_the_service_by_its_proto_name(
    manifests: Manifests, service: Service, final_stage: list[Instruction]
) -> None:
    probe = manifests.probe(service, "readiness")
    assert not {"httpGet", "tcpSocket", "exec"} & set(probe)
    health = _health_port(manifests, service, final_stage)
    assert probe["grpc"] == {"port": health, "service": service.full_name}
    assert probe["timeoutSeconds"] < probe["periodSeconds"] <= 10


@by_name
def test_the_pod_outlives_the_drain(
    manifests: Manifests, service: Service, final_stage: list[Instruction]
) -> None:
    config = config_in(service, container_env(manifests.container(service), image_env(final_stage)))
    termination = manifests.pod_spec(service)["terminationGracePeriodSeconds"]
    assert config.grace_seconds > 0
    # The kubelet's SIGKILL comes after every phase of the drain had its grace,
    # with some margin to close the database.
    assert termination >= service.drain_phases * config.grace_seconds + 5


@by_name
def test_the_store_is_on_a_volume_of_its_own_at_the_data_dir(
    manifests: Manifests, service: Service, final_stage: list[Instruction]
) -> None:
    container = manifests.container(service)
    config = config_in(service, container_env(container, image_env(final_stage)))
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert Path(config.data_dir).is_absolute()
    mount = mounts[config.data_dir]
    assert not mount.get("readOnly", False)
    assert "subPath" not in mount
    volumes = {v["name"]: v for v in manifests.pod_spec(service)["volumes"]}
    claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    spec = manifests.find("PersistentVolumeClaim", claim)["spec"]
    assert set(spec["accessModes"]) <= {"ReadWriteOnce", "ReadWriteOncePod"}
    others = [s for s in SERVICES if s != service]
    for other in others:
        other_volumes = manifests.pod_spec(other)["volumes"]
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in other_volumes
            if "persistentVolumeClaim" in v
        }
        assert claim not in claims


@by_name
def test_one_replica_replaced_not_rolled(manifests: Manifests, service: Service) -> None:
    spec = manifests.find("Deployment", service.name)["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


@by_name
def test_the_downstream_is_a_service_in_the_manifests(
    manifests: Manifests, service: Service, final_stage: list[Instruction]
) -> None:
    if service.downstream is None:
        assert service.name == "quote"
        return
    field, downstream_name = service.downstream
    config = config_in(service, container_env(manifests.container(service), image_env(final_stage)))
    host, _, port = getattr(config, field).rpartition(":")
    # Its DNS name in the namespace: the Service's name.
    target = manifests.find("Service", host)
    exposed = next((p for p in target["spec"]["ports"] if p["port"] == int(port)), None)
    assert exposed is not None, f"Service {host} has no port {port}"
    downstream = next(s for s in SERVICES if s.name == downstream_name)
    # The Service selects the downstream's pods, and only those.
    selector = target["spec"]["selector"]
    for other in SERVICES:
        labels = manifests.find("Deployment", other.name)["spec"]["template"]["metadata"]["labels"]
        assert (selector.items() <= labels.items()) == (other == downstream)
    (container_port,) = [p for p in manifests.container(downstream)["ports"] if p["name"] == "grpc"]
    assert exposed["targetPort"] in (container_port["name"], container_port["containerPort"])
    assert container_port["containerPort"] == downstream.port


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+)(Ki|Mi|Gi)$")


def _cpu(quantity: str | int | float) -> float:
    match = _CPU.match(str(quantity))
    assert match, f"cpu {quantity!r}"
    return float(match[1]) / (1000 if match[2] else 1)


def _memory(quantity: str) -> int:
    match = _MEMORY.match(quantity)
    assert match, f"memory {quantity!r}: use Ki, Mi or Gi"
    return int(match[1]) * 1024 ** ("KMG".index(match[2][0]) + 1)


@by_name
def test_requests_and_limits(manifests: Manifests, service: Service) -> None:
    resources = manifests.container(service)["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    assert 0 < _cpu(resources["requests"]["cpu"]) <= _cpu(resources["limits"]["cpu"])
    requested = _memory(resources["requests"]["memory"])
    # An idle service holds about 45 MiB.
    assert 96 * 2**20 <= requested <= _memory(resources["limits"]["memory"])


@by_name
def test_non_root_read_only_and_no_capabilities(
    manifests: Manifests, service: Service, final_stage: list[Instruction]
) -> None:
    pod = manifests.pod_spec(service)
    (user,) = [i.arguments for i in final_stage if i.keyword == "USER"]
    uid, _, gid = user.partition(":")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid) != 0
    assert pod["securityContext"]["runAsGroup"] == int(gid or uid)
    # The volume's files belong to this group, so the service can write them.
    assert pod["securityContext"]["fsGroup"] == int(gid or uid)
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = manifests.container(service)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # Read-only everywhere but the data volume and an emptyDir /tmp.
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = {
        m["mountPath"]: volumes[m["name"]]
        for m in container["volumeMounts"]
        if not m.get("readOnly", False)
    }
    assert set(writable) == {
        config_in(service, container_env(container, image_env(final_stage))).data_dir,
        "/tmp",
    }
    assert "emptyDir" in writable["/tmp"]


@by_name
def test_no_service_links_and_no_api_token(manifests: Manifests, service: Service) -> None:
    pod = manifests.pod_spec(service)
    # A Service named quote would set QUOTE_PORT=tcp://…: the quote service's own
    # port variable. Container env wins over it, but none is better.
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
