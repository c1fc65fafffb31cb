"""A processor service in-process on port 0, pricing through a given quote service."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from processor_svc.config import ProcessorConfig
from processor_svc.service import RunningProcessor, running
from quoteflow.processor.v1 import processor_service_pb2_grpc as pb_grpc


@dataclass
class ProcessorHarness:
    processor: RunningProcessor
    stub: pb_grpc.ProcessorServiceStub
    channel: grpc.aio.Channel


@contextlib.asynccontextmanager
async def processor_harness(
    quote_address: str, **overrides: object
) -> AsyncIterator[ProcessorHarness]:
    settings: dict[str, object] = {
        "port": 0,
        "quote_address": quote_address,
        "health_interval": 0.02,
        "grace_seconds": 0.0,
        # In-process tests restart within one process at most: memory is enough,
        # and a restart that loses the events is what some of them exercise.
        "store": "memory",
    }
    config = ProcessorConfig(**{**settings, **overrides})  # type: ignore[arg-type]
    async with contextlib.AsyncExitStack() as stack:
        processor = await stack.enter_async_context(running(config))
        channel = grpc.aio.insecure_channel(processor.server.address)
        stack.push_async_callback(channel.close)
        yield ProcessorHarness(processor, pb_grpc.ProcessorServiceStub(channel), channel)
