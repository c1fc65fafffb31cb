"""What the deployment tests share: the three services and the console as the
code defines them, the Kubernetes manifests and the Dockerfile as written, and the environment a
container in a pod would get (imported by name: conftest puts this folder on
sys.path)."""

import contextlib
import dataclasses
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from console_svc.config import ENV_PREFIX as CONSOLE_PREFIX
from console_svc.config import ConsoleConfig
from processor_svc.config import ENV_PREFIX as PROCESSOR_PREFIX
from processor_svc.config import ProcessorConfig
from quote_svc.config import ENV_PREFIX as QUOTE_PREFIX
from quote_svc.config import QuoteConfig
from quoteflow.processor.v1 import processor_service_pb2
from quoteflow.quote.v1 import quote_service_pb2
from quoteflow.requestor.v1 import requestor_service_pb2
from requestor_svc.config import ENV_PREFIX as REQUESTOR_PREFIX
from requestor_svc.config import RequestorConfig
from service_runtime.config import ListenerOptions, ServerOptions, load_config

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
K8S_POSTGRES = REPO / "deploy" / "k8s-postgres"
#: The console's manifests: one kustomization both variants include.
CONSOLE_K8S = REPO / "deploy" / "console"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass(frozen=True)
class Process:
    """One quoteflow process, from the code: what the manifests must agree with."""

    #: The name of its Deployment, Service and container (and its DNS name).
    name: str
    #: What `python -m` runs.
    module: str
    config: type[ListenerOptions]
    env_prefix: str

    @property
    def port(self) -> int:
        """The port the process listens on by default."""
        return _default(self.config, "port")


@dataclass(frozen=True)
class Service(Process):
    """One of the three gRPC services."""

    config: type[ServerOptions]
    #: The full proto name: the readiness entry of its health service.
    full_name: str
    #: (the config field holding its downstream's address, the downstream's name).
    downstream: tuple[str, str] | None
    #: How many times its drain may take up to grace_seconds: the quote service
    #: drains its server, then gives running attempts the grace again
    #: (quote_svc.service.serve); the others close quickly after the server.
    drain_phases: int


def _default(config: type[ListenerOptions], name: str) -> Any:
    return next(f.default for f in dataclasses.fields(config) if f.name == name)


QUOTE = Service(
    name="quote",
    module="quote_svc",
    config=QuoteConfig,
    env_prefix=QUOTE_PREFIX,
    full_name=quote_service_pb2.DESCRIPTOR.services_by_name["QuoteService"].full_name,
    downstream=None,
    drain_phases=1,
)
PROCESSOR = Service(
    name="processor",
    module="processor_svc",
    config=ProcessorConfig,
    env_prefix=PROCESSOR_PREFIX,
    full_name=processor_service_pb2.DESCRIPTOR.services_by_name["ProcessorService"].full_name,
    downstream=("quote_address", "quote"),
    drain_phases=1,
)
REQUESTOR = Service(
    name="requestor",
    module="requestor_svc",
    config=RequestorConfig,
    env_prefix=REQUESTOR_PREFIX,
    full_name=requestor_service_pb2.DESCRIPTOR.services_by_name["RequestorService"].full_name,
    downstream=("processor_address", "processor"),
    drain_phases=1,
)
SERVICES = (QUOTE, PROCESSOR, REQUESTOR)
CONSOLE = Process(
    name="console", module="console_svc", config=ConsoleConfig, env_prefix=CONSOLE_PREFIX
)
PROCESSES = (*SERVICES, CONSOLE)


# -- the manifests -----------------------------------------------------------------


def kustomization(directory: Path = K8S) -> dict[str, Any]:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def kustomized(directory: Path) -> list[dict[str, Any]]:
    """Every object the kustomization in directory lists, in order, with those of
    the kustomizations it includes (a directory among its resources)."""
    objects: list[dict[str, Any]] = []
    for resource in kustomization(directory)["resources"]:
        path = (directory / resource).resolve()
        if path.is_dir():
            objects.extend(kustomized(path))
        else:
            objects.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return objects


def load_manifests() -> list[dict[str, Any]]:
    """Every object deploy/k8s applies, in order."""
    return kustomized(K8S)


class Manifests:
    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def find(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} objects named {name!r}"
        return found[0]

    def pod_spec(self, service: Process) -> dict[str, Any]:
        return self.find("Deployment", service.name)["spec"]["template"]["spec"]

    def container(self, service: Process) -> dict[str, Any]:
        containers = self.pod_spec(service)["containers"]
        assert [c["name"] for c in containers] == [service.name]
        return containers[0]

    def probe(self, service: Process, kind: str) -> dict[str, Any]:
        """kind: liveness, readiness or startup."""
        return self.container(service)[f"{kind}Probe"]


# -- the Dockerfile ----------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str


def dockerfile_stages(text: str) -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per stage (each from its FROM on):
    continuation lines joined, comment lines dropped, as Docker reads them."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        if pending or line:
            logical.append(pending + line)
        pending = ""
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, f"{line!r} comes before the first FROM"
        stages[-1].append(instruction)
    return stages


def image_env(stage: list[Instruction]) -> dict[str, str]:
    """The variables the stage's ENV instructions set (KEY=value form)."""
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.arguments):
                key, sep, value = word.partition("=")
                assert sep, f"ENV {instruction.arguments!r}: use the KEY=value form"
                env[key] = value
    return env


def final_stage() -> list[Instruction]:
    """The stage the image is made of: the Dockerfile's last."""
    return dockerfile_stages(DOCKERFILE.read_text())[-1]


# -- a container's environment ---------------------------------------------------------


def container_env(container: dict[str, Any], image: dict[str, str]) -> dict[str, str]:
    """What the process sees: the image's ENV, overridden by the container's env."""
    env = dict(image)
    for variable in container.get("env", []):
        assert set(variable) == {"name", "value"}, f"{variable}: set plain values only"
        assert isinstance(variable["value"], str), f"{variable}: quote it, env values are strings"
        env[variable["name"]] = variable["value"]
    return env


def config_in(service: Process, env: dict[str, str]) -> Any:
    """The service's configuration as it starts with env and no flags; fails on
    a variable it does not know (a typo would be silently ignored) or cannot parse."""
    own = {k: v for k, v in env.items() if k.startswith(service.env_prefix + "_")}
    known = {f"{service.env_prefix}_{f.name.upper()}" for f in dataclasses.fields(service.config)}
    assert set(own) <= known, f"{service.name}: unknown variables {sorted(set(own) - known)}"
    with _environment(own):
        try:
            return load_config(service.config, env_prefix=service.env_prefix, argv=[])
        except SystemExit as error:
            raise AssertionError(f"{service.name} would not start with {own}") from error


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """os.environ with env as the only quoteflow variables (none from the shell)."""
    prefixes = tuple(f"{s.env_prefix}_" for s in PROCESSES)
    kept = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    with mock.patch.dict(os.environ, {**kept, **env}, clear=True):
        yield
