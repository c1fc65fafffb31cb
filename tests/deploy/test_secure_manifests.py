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
