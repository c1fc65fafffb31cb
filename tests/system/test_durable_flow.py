"""All three services as real processes on SQLite: the processor is killed with
SIGKILL mid-order and restarted on its database, and the order still ends with
every proposal exactly once."""

import socket

import grpc
from support.quote_harness import submission
from support.requestor_harness import RequestorClient
from support.service_process import running_service

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.processor.v1 import processor_service_pb2_grpc as processor_grpc
from quoteflow.requestor.v1 import requestor_service_pb2 as pb
from quoteflow.requestor.v1 import requestor_service_pb2_grpc as pb_grpc


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processor_process(data_dir, port: int, quote_address: str):
    return running_service(
        "processor_svc",
        "--quote-address",
        quote_address,
        "--health-interval",
        "0.05",
        data_dir=data_dir,
        port=port,
    )


async def propose(address: str, order: str, *proposals: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = processor_grpc.ProcessorServiceStub(channel)
        for proposal_id in proposals:
            await stub.SubmitProposal(
                processor_pb.SubmitProposalRequest(
                    order_req_id=order, proposal_id=proposal_id, submission=submission(proposal_id)
                )
            )


async def test_a_killed_processor_comes_back_and_the_order_completes_whole(tmp_path):
    port = _free_port()
    processor_address = f"127.0.0.1:{port}"
    async with (
        running_service("quote_svc", data_dir=tmp_path / "quote") as quote,
        running_service(
            "requestor_svc",
            "--processor-address",
            processor_address,
            "--reconnect-backoff-cap",
            "0.2",
            data_dir=tmp_path / "requestor",
        ) as requestor_process,
        grpc.aio.insecure_channel(requestor_process.address) as channel,
    ):
        requestor = RequestorClient(pb_grpc.RequestorServiceStub(channel))
        async with processor_process(tmp_path / "processor", port, quote.address) as processor:
            placed = await requestor.place("ORD-DURABLE")
            await propose(processor_address, "ORD-DURABLE", "P1", "P2")
            await requestor.wait_result(
                placed.task_id, lambda r: r.last_sequence == 2, "both proposals"
            )
            processor.process.kill()
            await processor.process.wait()

        async with processor_process(tmp_path / "processor", port, quote.address):
            await propose(processor_address, "ORD-DURABLE", "P3")
            async with grpc.aio.insecure_channel(processor_address) as processor_channel:
                await processor_grpc.ProcessorServiceStub(processor_channel).CompleteOrder(
                    processor_pb.CompleteOrderRequest(order_req_id="ORD-DURABLE")
                )
            result = await requestor.wait_final(placed.task_id)

    assert result.status == pb.TASK_STATUS_SUCCEEDED
    assert [(e.sequence, e.text) for e in result.proposals] == [
        (1, "P1/New"),
        (2, "P2/New"),
        (3, "P3/New"),
    ]
    assert result.last_sequence == 4
    assert result.reconnects >= 1
    assert all(e.quote.result.annual_premium_cents > 0 for e in result.proposals)
