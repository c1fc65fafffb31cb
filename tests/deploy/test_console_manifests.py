"""deploy/console, as both deploy/k8s and deploy/k8s-postgres include it: the
console's Deployment, Service and disruption budget say what console_svc does,
and its HTTPS probes are asked of a real console as the kubelet asks them."""

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from console.support import closed_address, running_console
from deploy_model import (
    CONSOLE,
    CONSOLE_K8S,
    K8S,
    K8S_POSTGRES,
    SERVICES,
    Instruction,
    Manifests,
    config_in,
    container_env,
    image_env,
    kustomization,
    kustomized,
)
from support.credentials import make_credentials

VARIANTS = pytest.mark.parametrize("variant", [K8S, K8S_POSTGRES], ids=lambda p: p.name)


@pytest.fixture(scope="module")
def console() -> Manifests:
    return Manifests(kustomized(CONSOLE_K8S))


def _config(manifests: Manifests, final_stage: list[Instruction]) -> Any:
    return config_in(CONSOLE, container_env(manifests.container(CONSOLE), image_env(final_stage)))


@VARIANTS
def test_both_variants_include_the_one_console(variant: Path, console: Manifests) -> None:
    assert "../console" in kustomization(variant)["resources"]
    included = [o for o in kustomized(variant) if o["metadata"]["name"] == CONSOLE.name]
    assert included == console.objects
    # Every other object is one of the three services'.
    names = {o["metadata"]["name"] for o in kustomized(variant)} - {CONSOLE.name}
    assert names <= {s.name for s in SERVICES} | {f"{s.name}-data" for s in SERVICES}


def test_the_command_runs_the_console_with_the_services_image(console: Manifests) -> None:
    container = console.container(CONSOLE)
    assert container["command"] == ["python", "-m", CONSOLE.module]
    assert not {"args", "envFrom"} & set(container)
    services = Manifests(kustomized(K8S))
    assert container["image"] == services.container(SERVICES[0])["image"]


def test_it_serves_the_images_page_on_every_interface(
    console: Manifests, final_stage: list[Instruction]
) -> None:
    config = _config(console, final_stage)
    assert config.host == "0.0.0.0"
    assert config.port == CONSOLE.port
    # The page the image built (test_dockerfile checks it is copied there).
    assert config.page_dir == Path(image_env(final_stage)["CONSOLE_STATIC_DIR"])
    # Beside the metrics port, which test_observability_assets checks.
    (port,) = [p for p in console.container(CONSOLE)["ports"] if p["name"] != "metrics"]
    assert port["containerPort"] == CONSOLE.port
    (exposed,) = console.find("Service", CONSOLE.name)["spec"]["ports"]
    assert exposed["targetPort"] == port["name"] and exposed["port"] == CONSOLE.port


@VARIANTS
def test_it_bridges_to_each_services_service(
    variant: Path, console: Manifests, final_stage: list[Instruction]
) -> None:
    config = _config(console, final_stage)
    manifests = Manifests(kustomized(variant))
    for service in SERVICES:
        host, _, port = getattr(config, f"{service.name}_address").rpartition(":")
        target = manifests.find("Service", host)
        assert int(port) in [p["port"] for p in target["spec"]["ports"]]
        labels = manifests.find("Deployment", service.name)["spec"]["template"]["metadata"]
        assert target["spec"]["selector"].items() <= labels["labels"].items()


def test_replicas_roll_one_at_a_time_under_a_budget(console: Manifests) -> None:
    spec = console.find("Deployment", CONSOLE.name)["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = console.find("PodDisruptionBudget", CONSOLE.name)["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["maxUnavailable"] < spec["replicas"]


def test_the_pod_outlives_the_drain(console: Manifests, final_stage: list[Instruction]) -> None:
    config = _config(console, final_stage)
    termination = console.pod_spec(CONSOLE)["terminationGracePeriodSeconds"]
    assert termination >= config.grace_seconds + 5


def test_non_root_read_only_and_nothing_to_keep(console: Manifests) -> None:
    pod = console.pod_spec(CONSOLE)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    container = console.container(CONSOLE)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert [v["name"] for v in pod["volumes"] if "secret" not in v] == ["tmp"]
    writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
    assert writable == ["/tmp"]


def _kubelets_tls() -> ssl.SSLContext:
    """What the kubelet's HTTPS probe checks of the certificate: nothing."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _get(url: str, timeout: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=_kubelets_tls()) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def test_the_probes_answer_from_a_real_console_with_every_service_away(
    console: Manifests, tmp_path: Path
) -> None:
    """What the kubelet asks, asked of `python -m console_svc` serving TLS with
    a certificate of its own, as in the pod: liveness and readiness hold while
    none of the three services can be reached."""
    container = console.container(CONSOLE)
    (port,) = [p for p in container["ports"] if p["name"] == "https"]
    credentials = make_credentials(tmp_path / "credentials")
    tls = [
        "--tls-cert-file", str(credentials.server_cert),
        "--tls-key-file", str(credentials.server_key),
    ]  # fmt: skip
    away = closed_address()
    async with running_console(*tls, quote=away, processor=away, requestor=away) as process:
        for kind in ("startup", "liveness", "readiness"):
            probe = container[f"{kind}Probe"]["httpGet"]
            assert probe["port"] in (port["name"], port["containerPort"])
            # The scheme the manifest gives: HTTPS, as the console serves.
            url = f"{probe['scheme'].lower()}://{process.address}{probe['path']}"
            timeout = container[f"{kind}Probe"]["timeoutSeconds"]
            status, body = await asyncio.to_thread(_get, url, timeout)
            assert status == 200, (kind, body)
        status, body = await asyncio.to_thread(_get, f"https://{process.address}/healthz", 5.0)
        services = json.loads(body)["services"].values()
        assert {s["status"] for s in services} == {"UNREACHABLE"}
