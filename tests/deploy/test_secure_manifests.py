"""Secure by default on Kubernetes: every Deployment of both variants, and the
console's, serves TLS and checks tokens, with every certificate, key and token
read from a Secret mounted whole (a renewal reaches the files), and the
Secrets it needs documented in deploy/secrets.example.yaml."""

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_model import (
    CONSOLE,
    K8S,
    K8S_POSTGRES,
    REPO,
    SERVICES,
    Instruction,
    Manifests,
    Process,
    config_in,
    image_env,
    kustomized,
)
from test_manifests import NEWEST

from service_runtime.tokens import DEFAULT_ISSUER

SECRETS_EXAMPLE = REPO / "deploy" / "secrets.example.yaml"
#: Options naming a file, by the config field.
FILE_OPTIONS = (
    "tls_cert_file",
    "tls_key_file",
    "tls_client_ca_file",
    "auth_jwt_key_file",
    "downstream_ca_file",
    "downstream_cert_file",
    "downstream_key_file",
    "downstream_token_file",
)
CASES = [
    pytest.param(variant, process, id=f"{variant.name}-{process.name}")
    for variant in (K8S, K8S_POSTGRES)
    for process in (*SERVICES, CONSOLE)
]


def _config(manifests: Manifests, process: Process, final_stage: list[Instruction]) -> Any:
    env = dict(image_env(final_stage))
    for variable in manifests.container(process)["env"]:
        # The database URL's Secret reference, as a URL of its form.
        env[variable["name"]] = variable.get("value", "postgresql://u:p@db:5432/quoteflow")
    own = {k: v for k, v in env.items() if k.startswith(process.env_prefix + "_")}
    return config_in(process, own)


def _secret_mounts(manifests: Manifests, process: Process) -> dict[str, str]:
    """mountPath → Secret name, for every Secret the container mounts."""
    volumes = {v["name"]: v for v in manifests.pod_spec(process)["volumes"]}
    mounts = {}
    for mount in manifests.container(process)["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        # A subPath mount is a copy the kubelet never updates: a renewed
        # certificate would not reach the process.
        assert "subPath" not in mount and mount.get("readOnly") is True, mount
        mounts[mount["mountPath"]] = secret["secretName"]
    return mounts


@pytest.mark.parametrize(("variant", "process"), CASES)
def test_tls_and_tokens_are_on_with_every_file_from_a_secret(
    variant: Path, process: Process, final_stage: list[Instruction]
) -> None:
    manifests = Manifests(kustomized(variant))
    config = _config(manifests, process, final_stage)
    assert config.host == "0.0.0.0" and config.tls and config.auth and not config.insecure
    mounts = _secret_mounts(manifests, process)
    for option in FILE_OPTIONS:
        path = getattr(config, option, "")
        if not path:
            continue
        holders = [m for m in mounts if Path(path).parent == Path(m)]
        assert holders, f"{option} {path} is not in a mounted Secret"
    assert mounts["/etc/quoteflow/tls"] == f"{process.name}-tls"
    assert mounts["/etc/quoteflow/auth"] == "quoteflow-auth"


@pytest.mark.parametrize(("variant", "process"), CASES)
def test_grpc_services_require_client_certificates_and_hide_reflection(
    variant: Path, process: Process, final_stage: list[Instruction]
) -> None:
    config = _config(Manifests(kustomized(variant)), process, final_stage)
    if process is CONSOLE:
        # Browsers have no client certificate; the console's calls onward use mTLS.
        assert not config.tls_client_ca_file
        assert config.downstream_cert_file and config.downstream_ca_file
        return
    assert config.tls_client_ca_file and config.reflection is False
    assert config.health_port not in (0, config.port)
    if process.name in ("processor", "requestor"):
        assert config.downstream_ca_file and config.downstream_cert_file
        assert config.downstream_token_file.startswith("/etc/quoteflow/token/")


@pytest.mark.parametrize("variant", [K8S, K8S_POSTGRES], ids=lambda p: p.name)
def test_the_consoles_probes_speak_https(variant: Path) -> None:
    container = Manifests(kustomized(variant)).container(CONSOLE)
    for kind in ("startup", "liveness", "readiness"):
        assert container[f"{kind}Probe"]["httpGet"]["scheme"] == "HTTPS"


def test_the_secrets_template_is_valid_names_what_is_mounted_and_holds_no_key() -> None:
    secrets = [d for d in yaml.safe_load_all(SECRETS_EXAMPLE.read_text()) if d]
    for secret in secrets:
        kubernetes_validate.validate(secret, NEWEST, strict=True)
        for value in secret["stringData"].values():
            assert "CHANGE-ME" in value, "a placeholder, never a real key or token"
    templated = {s["metadata"]["name"] for s in secrets}
    mounted = {
        name
        for variant in (K8S, K8S_POSTGRES)
        for process in (*SERVICES, CONSOLE)
        for name in _secret_mounts(Manifests(kustomized(variant)), process).values()
    }
    # The -tls Secrets are cert-manager's, from the Certificates the template shows.
    assert mounted - templated == {f"{p.name}-tls" for p in (*SERVICES, CONSOLE)}
    text = SECRETS_EXAMPLE.read_text()
    assert "client auth" in text and "kind: Certificate" in text


#: The file each option names, by the Secret it is in: a pod's own certificate
#: in cert-manager's kubernetes.io/tls layout (its CA beside it), the others'
#: keys in deploy/secrets.example.yaml.
FILE_KEYS = {
    "tls_cert_file": ("tls", "tls.crt"),
    "tls_key_file": ("tls", "tls.key"),
    "tls_client_ca_file": ("tls", "ca.crt"),
    "downstream_ca_file": ("tls", "ca.crt"),
    "downstream_cert_file": ("tls", "tls.crt"),
    "downstream_key_file": ("tls", "tls.key"),
    "auth_jwt_key_file": ("auth", "jwt-public-key.pem"),
    "downstream_token_file": ("token", "token"),
}


def _template_keys() -> dict[str, set[str]]:
    """Secret name → its keys, as deploy/secrets.example.yaml makes them."""
    secrets = [d for d in yaml.safe_load_all(SECRETS_EXAMPLE.read_text()) if d]
    return {s["metadata"]["name"]: set(s["stringData"]) for s in secrets}


@pytest.mark.parametrize(("variant", "process"), CASES)
def test_each_file_is_the_key_of_the_secret_it_belongs_in(
    variant: Path, process: Process, final_stage: list[Instruction]
) -> None:
    manifests = Manifests(kustomized(variant))
    config = _config(manifests, process, final_stage)
    mounts = _secret_mounts(manifests, process)
    secrets = {
        "tls": f"{process.name}-tls",
        "auth": "quoteflow-auth",
        "token": f"{process.name}-token",
    }
    templates = _template_keys()
    for option, (kind, key) in FILE_KEYS.items():
        path = Path(getattr(config, option, "") or "")
        if not path.name:
            continue
        assert path.name == key, f"{option} {path}"
        assert mounts[str(path.parent)] == secrets[kind], f"{option} {path}"
        if kind != "tls":
            assert key in templates[secrets[kind]], f"{secrets[kind]} has no key {key}"
    # A token only where there is a downstream service to call with it.
    has_token = process.name in ("processor", "requestor")
    assert (f"{process.name}-token" in mounts.values()) == has_token
    assert bool(getattr(config, "downstream_token_file", "")) == has_token


@pytest.mark.parametrize(("variant", "process"), CASES)
def test_secrets_are_mounted_whole_and_required(variant: Path, process: Process) -> None:
    manifests = Manifests(kustomized(variant))
    # No subPath on any mount: one on a Secret would freeze its files.
    for mount in manifests.container(process)["volumeMounts"]:
        assert not {"subPath", "subPathExpr"} & set(mount), mount
    for volume in manifests.pod_spec(process)["volumes"]:
        if "secret" in volume:
            # Every key (no items picking some), the default mode (readable by
            # the service's user), and a pod without its Secret waits for it.
            assert set(volume["secret"]) == {"secretName"}, volume


@pytest.mark.parametrize("variant", [K8S, K8S_POSTGRES], ids=lambda p: p.name)
def test_one_issuer_and_audience_set_in_every_manifest(
    variant: Path, final_stage: list[Instruction]
) -> None:
    manifests = Manifests(kustomized(variant))
    expected = set()
    for process in (*SERVICES, CONSOLE):
        own = {v["name"] for v in manifests.container(process)["env"]}
        # Set explicitly, not left to the development defaults.
        assert {f"{process.env_prefix}_AUTH_ISSUER", f"{process.env_prefix}_AUTH_AUDIENCE"} <= own
        config = _config(manifests, process, final_stage)
        # Not the issuer `quoteflow token` mints for unless told otherwise.
        assert config.auth_issuer != DEFAULT_ISSUER
        expected.add((config.auth_issuer, config.auth_audience))
    # One: the console forwards the page's token to the services, which must
    # take it too.
    assert len(expected) == 1


@pytest.mark.parametrize("variant", [K8S, K8S_POSTGRES], ids=lambda p: p.name)
def test_the_services_expose_the_tls_port_only_and_say_no_h2c(variant: Path) -> None:
    manifests = Manifests(kustomized(variant))
    for service in SERVICES:
        (exposed,) = manifests.find("Service", service.name)["spec"]["ports"]
        assert exposed["targetPort"] == "grpc"
        # kubernetes.io/h2c is HTTP/2 in clear text; over TLS, HTTP/2 is
        # negotiated by ALPN and no standard appProtocol names gRPC.
        assert "appProtocol" not in exposed
    (exposed,) = manifests.find("Service", CONSOLE.name)["spec"]["ports"]
    assert exposed["appProtocol"] == "https"


def _certificate_example() -> dict[str, Any]:
    """The cert-manager Certificate the template shows in its comment."""
    lines = SECRETS_EXAMPLE.read_text().splitlines()
    start = lines.index("#   apiVersion: cert-manager.io/v1")
    block = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        block.append(line.removeprefix("#   "))
    certificate: dict[str, Any] = yaml.safe_load("\n".join(block))
    return certificate


def test_the_certificate_example_serves_and_calls_for_its_service(
    manifests: Manifests,
) -> None:
    certificate = _certificate_example()
    assert certificate["kind"] == "Certificate"
    spec = certificate["spec"]
    name = certificate["metadata"]["name"]
    process = next(p for p in (*SERVICES, CONSOLE) if p.name == name)
    # The Secret the Deployment mounts at /etc/quoteflow/tls.
    assert spec["secretName"] == _secret_mounts(manifests, process)["/etc/quoteflow/tls"]
    # The name its callers dial (the Service's), which their TLS checks.
    assert manifests.find("Service", name)["metadata"]["name"] in spec["dnsNames"]
    # Its server certificate is its client certificate on its downstream calls.
    assert {"server auth", "client auth"} <= set(spec["usages"])
    assert spec["issuerRef"]["kind"] in ("Issuer", "ClusterIssuer")
