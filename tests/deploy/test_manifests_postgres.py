"""deploy/k8s-postgres: valid Kubernetes objects, and every service as several
replicas over one PostgreSQL database: rolled one pod at a time, a disruption
budget each, the database URL from a Secret, no volume; the rest as in
deploy/k8s."""

import contextlib
import dataclasses
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any
from unittest import mock

import kubernetes_validate
import pytest
import yaml
from deploy_model import (
    K8S,
    K8S_POSTGRES,
    PROCESSES,
    SERVICES,
    Instruction,
    Manifests,
    Service,
    image_env,
    kustomized,
)
from test_manifests import NEWEST, OLDEST

from service_runtime.config import load_config

#: The template of the Secret: documented, never applied by the kustomization.
SECRET_EXAMPLE = K8S_POSTGRES / "database-secret.example.yaml"
#: The console's are among them (deploy/console).
KINDS = {"Deployment", "Service", "PodDisruptionBudget"}

by_name = pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S_POSTGRES / "kustomization.yaml").read_text())


def _load(directory, files) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for name in files:
        objects.extend(d for d in yaml.safe_load_all((directory / name).read_text()) if d)
    return objects


def _objects() -> list[dict[str, Any]]:
    """Every object the kustomization applies, in order."""
    return kustomized(K8S_POSTGRES)


def _secret_example() -> dict[str, Any]:
    (secret,) = _load(K8S_POSTGRES, [SECRET_EXAMPLE.name])
    return secret


def _ids() -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in _objects()]


@pytest.fixture(scope="module")
def postgres() -> Manifests:
    return Manifests(_objects())


@pytest.fixture(scope="module")
def sqlite() -> Manifests:
    return Manifests(kustomized(K8S))


def _database_env(service: Service) -> str:
    return f"{service.env_prefix}_DATABASE_URL"


@contextlib.contextmanager
def _only(env: dict[str, str]) -> Iterator[None]:
    """os.environ with env as the only quoteflow variables (none from the shell)."""
    prefixes = tuple(f"{s.env_prefix}_" for s in SERVICES)
    kept = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    with mock.patch.dict(os.environ, {**kept, **env}, clear=True):
        yield


def _config(manifests: Manifests, service: Service, final_stage: list[Instruction]) -> Any:
    """The service's configuration as the pod starts it: the image's ENV, the
    container's env (each Secret reference as a URL of the Secret's form) and its
    args. Fails on a variable it does not know or cannot parse."""
    container = manifests.container(service)
    env = dict(image_env(final_stage))
    for variable in container["env"]:
        if "valueFrom" in variable:
            assert set(variable) == {"name", "valueFrom"}, variable
            env[variable["name"]] = "postgresql://user:secret@postgres:5432/quoteflow"
        else:
            assert set(variable) == {"name", "value"}, variable
            assert isinstance(variable["value"], str), f"{variable}: quote it"
            env[variable["name"]] = variable["value"]
    own = {k: v for k, v in env.items() if k.startswith(service.env_prefix + "_")}
    known = {f"{service.env_prefix}_{f.name.upper()}" for f in dataclasses.fields(service.config)}
    assert set(own) <= known, f"{service.name}: unknown variables {sorted(set(own) - known)}"
    with _only(own):
        try:
            return load_config(
                service.config, env_prefix=service.env_prefix, argv=container["args"]
            )
        except SystemExit as error:
            raise AssertionError(f"{service.name} would not start with {own}") from error


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, "matchLabels only"
    return selector["matchLabels"].items() <= labels.items()


def _pod_labels(manifests: Manifests, service: Service) -> dict[str, str]:
    labels: dict[str, str] = manifests.find("Deployment", service.name)["spec"]["template"][
        "metadata"
    ]["labels"]
    return labels


# -- the objects -------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    files = sorted(
        p.name
        for p in K8S_POSTGRES.glob("*.yaml")
        if p.name not in ("kustomization.yaml", SECRET_EXAMPLE.name)
    )
    resources = _kustomization()["resources"]
    assert sorted(r for r in resources if r.endswith(".yaml")) == files
    assert [r for r in resources if not r.endswith(".yaml")] == ["../console"]
    assert not {"secretGenerator", "configMapGenerator"} & set(_kustomization())
    # The SQLite manifests stay, for a single node.
    assert (K8S / "kustomization.yaml").exists()


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("index", range(len(_ids())), ids=_ids())
def test_every_object_is_valid(index: int, version: str) -> None:
    document = _objects()[index]
    assert document["kind"] in KINDS
    assert kubernetes_validate.validate(document, version, strict=True) == version


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
def test_the_secret_template_is_valid_and_holds_no_password(version: str) -> None:
    secret = _secret_example()
    assert kubernetes_validate.validate(secret, version, strict=True) == version
    assert secret["kind"] == "Secret" and "data" not in secret
    for url in secret["stringData"].values():
        assert url.startswith("postgresql://")
        assert ":CHANGE-ME@" in url, "a placeholder, never a real password"


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="no kubectl to render the kustomization"
)
def test_what_kubectl_apply_k_applies_is_the_manifests(postgres: Manifests) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S_POSTGRES)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    applied = Manifests([d for d in yaml.safe_load_all(rendered) if d])
    names = lambda m: sorted((o["kind"], o["metadata"]["name"]) for o in m.objects)  # noqa: E731
    assert names(applied) == names(postgres)
    for document in applied.objects:
        kubernetes_validate.validate(document, NEWEST, strict=True)
    for service in PROCESSES:
        assert applied.container(service)["image"] == postgres.container(service)["image"]


def test_no_volume_claims_the_state_is_in_the_database(postgres: Manifests) -> None:
    assert not [o for o in postgres.objects if o["kind"] == "PersistentVolumeClaim"]
    for service in SERVICES:
        # Besides the Secrets (tests/deploy/test_secure_manifests.py), /tmp only.
        volumes = [v for v in postgres.pod_spec(service)["volumes"] if "secret" not in v]
        assert [v["name"] for v in volumes] == ["tmp"]
        assert "emptyDir" in volumes[0]
        mounts = [m for m in postgres.container(service)["volumeMounts"] if not m.get("readOnly")]
        assert [(m["name"], m["mountPath"]) for m in mounts] == [("tmp", "/tmp")]


# -- each service ------------------------------------------------------------------


@by_name
def test_several_replicas_rolled_one_pod_at_a_time(postgres: Manifests, service: Service) -> None:
    spec = postgres.find("Deployment", service.name)["spec"]
    assert spec["replicas"] >= 2
    # A new pod ready before an old one goes: never fewer than replicas serving.
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert _selects(spec["selector"], _pod_labels(postgres, service))


@by_name
def test_a_disruption_budget_selects_it_and_only_it(postgres: Manifests, service: Service) -> None:
    budgets = [
        o
        for o in postgres.objects
        if o["kind"] == "PodDisruptionBudget"
        and _selects(o["spec"]["selector"], _pod_labels(postgres, service))
    ]
    assert len(budgets) == 1, f"{len(budgets)} budgets select {service.name}"
    (budget,) = budgets
    assert budget["apiVersion"] == "policy/v1"
    replicas = postgres.find("Deployment", service.name)["spec"]["replicas"]
    # Some replica always up, and still room for a node drain.
    assert 1 <= budget["spec"]["minAvailable"] < replicas
    assert "maxUnavailable" not in budget["spec"]
    for other in SERVICES:
        if other != service:
            assert not _selects(budget["spec"]["selector"], _pod_labels(postgres, other))


@by_name
def test_the_store_is_postgres_given_as_a_flag(postgres: Manifests, service: Service) -> None:
    container = postgres.container(service)
    assert container["command"] == ["python", "-m", service.module]
    args = container["args"]
    assert "--store" in args and args[args.index("--store") + 1] == "postgres"
    # Not also in the environment, where it could say otherwise.
    assert f"{service.env_prefix}_STORE" not in {v["name"] for v in container["env"]}


@by_name
def test_the_database_url_comes_from_the_secret(postgres: Manifests, service: Service) -> None:
    env = {v["name"]: v for v in postgres.container(service)["env"]}
    variable = env[_database_env(service)]
    assert "value" not in variable
    reference = variable["valueFrom"]["secretKeyRef"]
    secret = _secret_example()
    assert reference["name"] == secret["metadata"]["name"]
    assert reference["key"] in secret["stringData"]
    # Required: a pod without the Secret does not start without its database.
    assert reference.get("optional", False) is False
    # No other value from anywhere but the manifest itself.
    assert [n for n, v in env.items() if "value" not in v] == [_database_env(service)]
    assert "envFrom" not in postgres.container(service)


def test_each_service_has_its_own_database_url(postgres: Manifests) -> None:
    keys = [
        next(
            v["valueFrom"]["secretKeyRef"]["key"]
            for v in postgres.container(s)["env"]
            if v["name"] == _database_env(s)
        )
        for s in SERVICES
    ]
    assert len(set(keys)) == len(SERVICES)


@by_name
def test_the_configuration_starts_the_service_on_postgres(
    postgres: Manifests, service: Service, final_stage: list[Instruction]
) -> None:
    config = _config(postgres, service, final_stage)
    assert config.store == "postgres"
    assert config.database_url.startswith("postgresql://")
    assert config.host == "0.0.0.0"
    assert config.port == service.port
    assert config.log_level == "INFO"
    assert 0 < config.heartbeat_seconds < config.lease_seconds
    termination = postgres.pod_spec(service)["terminationGracePeriodSeconds"]
    assert termination >= service.drain_phases * config.grace_seconds + 5


@by_name
def test_probes_ports_and_hardening_as_in_the_sqlite_manifests(
    postgres: Manifests, sqlite: Manifests, service: Service
) -> None:
    ours, theirs = postgres.container(service), sqlite.container(service)
    for key in ("image", "ports", "startupProbe", "livenessProbe", "readinessProbe"):
        assert ours[key] == theirs[key], key
    assert ours["resources"] == theirs["resources"]
    assert ours["securityContext"] == theirs["securityContext"]
    pod, sqlite_pod = postgres.pod_spec(service), sqlite.pod_spec(service)
    # The same user and hardening; no fsGroup, there being no volume to own.
    assert pod["securityContext"] == {
        k: v for k, v in sqlite_pod["securityContext"].items() if not k.startswith("fsGroup")
    }
    for key in ("enableServiceLinks", "automountServiceAccountToken"):
        assert pod[key] is False
    assert (
        postgres.find("Service", service.name)["spec"]
        == sqlite.find("Service", service.name)["spec"]
    )


@by_name
def test_replicas_spread_over_nodes(postgres: Manifests, service: Service) -> None:
    (spread,) = postgres.pod_spec(service)["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    # Preferred, so that a one-node cluster still runs every replica.
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert _selects(spread["labelSelector"], _pod_labels(postgres, service))


@by_name
def test_the_downstream_address_is_its_service(
    postgres: Manifests, service: Service, final_stage: list[Instruction]
) -> None:
    if service.downstream is None:
        assert service.name == "quote"
        return
    field, downstream_name = service.downstream
    config = _config(postgres, service, final_stage)
    host, _, port = getattr(config, field).rpartition(":")
    # Its DNS name in the namespace: the Service's name, selecting the
    # downstream's pods and only those.
    selector = {"matchLabels": postgres.find("Service", host)["spec"]["selector"]}
    for other in SERVICES:
        assert _selects(selector, _pod_labels(postgres, other)) == (other.name == downstream_name)
    assert int(port) in [p["port"] for p in postgres.find("Service", host)["spec"]["ports"]]
