"""Reading /metrics as Prometheus does: over HTTP, parsed by prometheus-client's
own parser, so a test compares numbers rather than text."""

import asyncio
import socket
import urllib.request
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

#: A sample's value by its name and labels: samples[name, {"queue": "quotes"}].
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    """A port nobody listens on now (the kernel's pick for port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def rendered(registry: CollectorRegistry) -> Samples:
    return parse(generate_latest(registry).decode())


async def scrape(url: str) -> Samples:
    def get() -> str:
        with urllib.request.urlopen(url, timeout=10) as answer:
            body: bytes = answer.read()
            return body.decode()

    return parse(await asyncio.to_thread(get))


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when it is absent (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of name whose labels include labels."""
    wanted: Mapping[str, str] = labels
    return sum(
        v
        for (n, have), v in samples.items()
        if n == name and all((k, w) in have for k, w in wanted.items())
    )
