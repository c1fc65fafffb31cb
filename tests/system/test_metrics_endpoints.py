"""The three services as real processes, each serving /metrics on its
--metrics-port, after the demo's order flow: the RPCs between them counted
on both sides, and each queue's gauges equal to its GetStats."""

import asyncio
import urllib.error
import urllib.request

import grpc
import pytest
from support.metrics_scrape import free_port, scrape, total, value
from support.service_stack import run_demo, three_services

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.processor.v1 import processor_service_pb2_grpc as processor_grpc
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc
from quoteflow.requestor.v1 import requestor_service_pb2 as requestor_pb
from quoteflow.requestor.v1 import requestor_service_pb2_grpc as requestor_grpc

QUOTE = "quoteflow.quote.v1.QuoteService"
PROCESSOR = "quoteflow.processor.v1.ProcessorService"


def url(port: int, path: str = "/metrics") -> str:
    return f"http://127.0.0.1:{port}{path}"


async def test_each_process_serves_metrics_that_match_its_stats(tmp_path):
    ports = {name: free_port() for name in ("quote", "processor", "requestor")}
    async with three_services(
        tmp_path,
        quote_args=("--metrics-port", str(ports["quote"])),
        processor_args=("--metrics-port", str(ports["processor"])),
        requestor_args=("--metrics-port", str(ports["requestor"])),
    ) as (quote, processor, requestor):
        await run_demo(processor, requestor)
        await check_quote(quote.address, ports["quote"])
        await check_processor(processor.address, ports["processor"])
        await check_requestor(requestor.address, ports["requestor"])


async def check_quote(address: str, port: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        samples = await scrape(url(port))
        stats = await quote_grpc.QuoteServiceStub(channel).GetStats(quote_pb.GetStatsRequest())
    # The demo's three proposals, priced by the processor's batches.
    priced = total(samples, "grpc_server_msg_received_total", grpc_service=QUOTE)
    assert priced >= 3
    assert stats.completed_count == 3
    assert value(samples, "quoteflow_queue_messages", queue="quotes", status="completed") == 3
    assert total(samples, "quoteflow_queue_attempts_total", outcome="succeeded") == 3
    assert value(samples, "quoteflow_queue_wait_seconds_count", queue="quotes") == 3
    assert total(samples, "quoteflow_store_commit_seconds_count", store="sqlite") > 0
    assert value(samples, "quoteflow_ready") == 1
    assert value(samples, "process_resident_memory_bytes") > 0


async def check_processor(address: str, port: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        samples = await scrape(url(port))
        stats = await processor_grpc.ProcessorServiceStub(channel).GetStats(
            processor_pb.GetStatsRequest()
        )
    submitted = {"grpc_service": PROCESSOR, "grpc_method": "SubmitProposal", "grpc_type": "unary"}
    assert value(samples, "grpc_server_handled_total", **submitted, grpc_code="OK") == 3
    # Its calls to the quote service, counted on its side: every submission
    # answered OK; each quote's watch ended by the processor (Canceled) once
    # its quote was final, or still closing.
    unary = {"grpc_service": QUOTE, "grpc_type": "unary"}
    submissions = total(samples, "grpc_client_handled_total", **unary)
    assert submissions >= 1
    assert submissions == total(samples, "grpc_client_handled_total", **unary, grpc_code="OK")
    watches = {"grpc_service": QUOTE, "grpc_method": "WatchMessage"}
    assert total(samples, "grpc_client_started_total", **watches) == 3
    assert total(samples, "grpc_client_handled_total", **watches) == total(
        samples, "grpc_client_handled_total", **watches, grpc_code="Canceled"
    ) + total(samples, "grpc_client_handled_total", **watches, grpc_code="OK")
    assert value(samples, "quoteflow_orders") == stats.order_queues_count == 1
    assert value(samples, "quoteflow_order_events") == stats.events_count == 4
    assert value(samples, "quoteflow_order_watchers") == stats.watchers_count


async def check_requestor(address: str, port: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        samples = await scrape(url(port))
        stats = await requestor_grpc.RequestorServiceStub(channel).GetStats(
            requestor_pb.GetStatsRequest()
        )
    watched = {"grpc_service": PROCESSOR, "grpc_method": "WatchOrder"}
    assert total(samples, "grpc_client_msg_received_total", **watched) >= 4
    assert value(samples, "quoteflow_tasks_kept") == stats.completed_tasks == 1
    assert value(samples, "quoteflow_tasks_active") == stats.active_tasks
    assert value(samples, "quoteflow_tasks_queued") == stats.priority_queue_size
    assert value(samples, "quoteflow_tasks_max_concurrent") == stats.max_concurrent_tasks
    assert total(samples, "quoteflow_queue_attempts_total", outcome="succeeded") >= 1
    with pytest.raises(urllib.error.HTTPError) as missing:
        await asyncio.to_thread(urllib.request.urlopen, url(port, "/other"), timeout=10)
    assert missing.value.code == 404
