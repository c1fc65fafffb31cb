"""A quote service started in-process on port 0, with a processor the test controls."""

import dataclasses
from collections.abc import Awaitable, Callable

import grpc

from queues.core.memory_store import MemoryJobStore
from quote_svc.config import QuoteConfig
from quote_svc.domain import QuoteResult, Submission
from quote_svc.processors import ProcessorRegistry
from quote_svc.quote_queue import QuoteQueue
from quote_svc.rating import rate
from quote_svc.service import binding, build_queue
from quote_svc.underwriting import underwrite
from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc
from service_runtime.metrics.service_metrics import ServiceMetrics
from service_runtime.server import RunningServer, start_server
from support.scripted import Scripted


class ScriptedRating(Scripted):
    """The real rating engine, except where the test scripts an applicant's fate."""

    def __init__(self) -> None:
        super().__init__(failure="rating backend refused {}")

    @property
    def priced(self) -> list[str]:
        return self.finished

    async def __call__(self, submission: Submission) -> QuoteResult:
        await self.play(submission.applicant_name)
        return rate(submission)


@dataclasses.dataclass
class QuoteHarness:
    stub: pb_grpc.QuoteServiceStub
    queue: QuoteQueue
    server: RunningServer
    rating: ScriptedRating
    channel: grpc.aio.Channel


StartQuote = Callable[..., Awaitable["QuoteHarness"]]


def submission(
    name: str = "Ada Lovelace", coverage: int = 250_000, **extra: object
) -> pb.Submission:
    return pb.Submission(
        applicant_name=name,
        address="12 St James's Square, London",
        coverage_amount=coverage,
        **extra,  # type: ignore[arg-type]
    )


async def start_quote_harness(
    started: list["QuoteHarness"], *, metrics: ServiceMetrics | None = None, **overrides: object
) -> "QuoteHarness":
    settings = {
        "port": 0,
        "workers": 1,
        "backoff_base": 0.001,
        "backoff_cap": 0.002,
        "store": "memory",
    }
    config = QuoteConfig(**{**settings, **overrides})  # type: ignore[arg-type]
    rating = ScriptedRating()
    registry = ProcessorRegistry()
    registry.register(config.processor, rating)
    registry.register(config.agentic_processor, underwrite)
    queue = build_queue(config, MemoryJobStore(), registry, metrics)
    await queue.start()
    server = await start_server([binding(queue)], host="127.0.0.1", port=0, metrics=metrics)
    channel = grpc.aio.insecure_channel(server.address)
    harness = QuoteHarness(pb_grpc.QuoteServiceStub(channel), queue, server, rating, channel)
    started.append(harness)
    return harness


async def stop_quote_harness(harness: "QuoteHarness") -> None:
    for gate in harness.rating.gates.values():
        gate.set()
    await harness.channel.close()
    await harness.server.stop(None)
    await harness.queue.stop(grace=0)
