"""`make demo`: run the order flow against the running services and print the result.

It places an order with the requestor, submits proposals of several sizes to
the processor (each priced by the quote service), completes the order, and
prints the task result the requestor collected.

With OTEL_EXPORTER_OTLP_ENDPOINT set, the whole flow is one trace: its root
span is the demo's, and every call carries it to the services.
"""

import argparse
import asyncio
import sys
import uuid

import grpc
from google.protobuf.duration_pb2 import Duration
from opentelemetry import trace

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.processor.v1 import processor_service_pb2_grpc as processor_grpc
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as requestor_pb
from quoteflow.requestor.v1 import requestor_service_pb2_grpc as requestor_grpc
from service_runtime.channels import PLAINTEXT, ClientSecurity, client_security, open_channel
from service_runtime.tracing import configure_tracing, shutdown_tracing

_TRACER = trace.get_tracer("quoteflow.demo")

# Sizes that price without a human review (review starts above 2,000,000).
PROPOSALS = (("PROP-S", 80_000), ("PROP-M", 400_000), ("PROP-L", 1_500_000))
CALL_DEADLINE = 10.0
RESULT_DEADLINE = 60.0
_FINAL = {
    requestor_pb.TASK_STATUS_SUCCEEDED,
    requestor_pb.TASK_STATUS_FAILED,
    requestor_pb.TASK_STATUS_CANCELLED,
    requestor_pb.TASK_STATUS_TIMED_OUT,
}


async def demo(
    processor_address: str, requestor_address: str, security: ClientSecurity = PLAINTEXT
) -> int:
    order = f"ORD-{uuid.uuid4().hex[:8]}"
    async with (
        open_channel(processor_address, security=security) as processor_channel,
        open_channel(requestor_address, security=security) as requestor_channel,
    ):
        with _TRACER.start_as_current_span(f"order {order}"):
            result = await _flow(order, processor_channel, requestor_channel)
    _print(result)
    return 0 if result.status == requestor_pb.TASK_STATUS_SUCCEEDED else 1


async def _flow(
    order: str, processor_channel: grpc.aio.Channel, requestor_channel: grpc.aio.Channel
) -> requestor_pb.TaskResult:
    processor = processor_grpc.ProcessorServiceStub(processor_channel)
    requestor = requestor_grpc.RequestorServiceStub(requestor_channel)
    placed = await requestor.PlaceOrder(
        requestor_pb.PlaceOrderRequest(
            order_req_id=order,
            priority=requestor_pb.TASK_PRIORITY_HIGH,
            timeout=Duration(seconds=int(RESULT_DEADLINE)),
        ),
        timeout=CALL_DEADLINE,
    )
    print(f"placed order {order}: task {placed.task_id}")
    for proposal_id, coverage in PROPOSALS:
        submission = quote_pb.Submission(
            applicant_name="Ada Lovelace",
            address="12 St James's Square, London",
            coverage_amount=coverage,
        )
        await processor.SubmitProposal(
            processor_pb.SubmitProposalRequest(
                order_req_id=order, proposal_id=proposal_id, submission=submission
            ),
            timeout=CALL_DEADLINE,
        )
        print(f"submitted {proposal_id} for coverage {coverage:,}")
    await processor.CompleteOrder(
        processor_pb.CompleteOrderRequest(order_req_id=order), timeout=RESULT_DEADLINE
    )
    print(f"completed order {order}")
    return await _final_result(requestor, placed.task_id)


async def _final_result(
    requestor: requestor_grpc.RequestorServiceStub, task_id: str
) -> requestor_pb.TaskResult:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RESULT_DEADLINE
    request = requestor_pb.GetTaskResultRequest(task_id=task_id)
    while True:
        result = (await requestor.GetTaskResult(request, timeout=CALL_DEADLINE)).result
        if result.status in _FINAL or loop.time() > deadline:
            return result
        await asyncio.sleep(0.1)


def _print(result: requestor_pb.TaskResult) -> None:
    status = requestor_pb.TaskStatus.Name(result.status).removeprefix("TASK_STATUS_")
    print(f"\ntask {result.task_id}: {status}, {len(result.proposals)} proposals")
    if result.error_message:
        print(f"  error: {result.error_message}")
    for event in result.proposals:
        premium = event.quote.result.annual_premium_cents / 100
        coverage = event.quote.payload.coverage_amount
        print(
            f"  #{event.sequence} {event.text:<14} coverage {coverage:>11,}"
            f"  premium {premium:>11,.2f}  priority "
            f"{quote_pb.Priority.Name(event.quote.priority).removeprefix('PRIORITY_')}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processor", default="127.0.0.1:50052", help="processor address")
    parser.add_argument("--requestor", default="127.0.0.1:50053", help="requestor address")
    parser.add_argument("--ca-file", default="", help="CA of the services' certificates (TLS)")
    parser.add_argument("--cert-file", default="", help="client certificate (mTLS)")
    parser.add_argument("--key-file", default="", help="client certificate's key (mTLS)")
    parser.add_argument("--token-file", default="", help="file holding a submitter's token")
    args = parser.parse_args()
    security = client_security(
        ca_file=args.ca_file,
        cert_file=args.cert_file,
        key_file=args.key_file,
        token_file=args.token_file,
    )
    configure_tracing("quoteflow-demo")
    try:
        sys.exit(asyncio.run(demo(args.processor, args.requestor, security)))
    except grpc.aio.AioRpcError as error:
        sys.exit(f"demo failed: {error.code().name}: {error.details()} (is `make run` going?)")
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
