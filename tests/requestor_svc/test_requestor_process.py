"""python -m requestor_svc as a real process: it follows a processor, serves, and
drains on SIGTERM."""

import signal
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.polling import poll
from support.requestor_harness import FINAL
from support.service_process import run_to_exit, running_service

from quoteflow.requestor.v1 import requestor_service_pb2 as pb
from quoteflow.requestor.v1 import requestor_service_pb2_grpc as pb_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING


async def test_the_process_follows_an_order_then_drains_on_sigterm(processor, fake) -> None:
    args = ("--processor-address", processor.address, "--health-interval", "0.02")
    async with running_service("requestor_svc", *args) as service:
        async with grpc.aio.insecure_channel(service.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", "quoteflow.requestor.v1.RequestorService"):
                request = health_pb2.HealthCheckRequest(service=name)
                await poll(lambda r=request: health.Check(r), lambda a: a.status == SERVING, name)
            stub = pb_grpc.RequestorServiceStub(channel)
            placed = await stub.PlaceOrder(pb.PlaceOrderRequest(order_req_id="ORD-1"))
            fake.propose("ORD-1", "P1")
            fake.complete("ORD-1")
            request = pb.GetTaskResultRequest(task_id=placed.task_id)
            answer = await poll(
                lambda: stub.GetTaskResult(request), lambda a: a.result.status in FINAL, "final"
            )
            assert answer.result.status == pb.TASK_STATUS_SUCCEEDED
            assert [e.proposal_id for e in answer.result.proposals] == ["P1"]
        assert await service.stop(signal.SIGTERM) == 0
        await service.read_log_until("drained")
        methods = {r["method"] for r in service.log if r.get("msg") == "rpc"}
        assert "/quoteflow.requestor.v1.RequestorService/PlaceOrder" in methods
    # Watched for its first event, then followed from it.
    assert [(w.order_req_id, w.after_sequence) for w in fake.watches] == [
        ("ORD-1", 0),
        ("ORD-1", 1),
    ]


async def test_a_bad_setting_is_refused_before_serving() -> None:
    finished = await run_to_exit(
        sys.executable,
        "-m",
        "requestor_svc",
        "--default-task-timeout",
        "0",
    )
    assert finished.returncode == 2
    assert b"default_task_timeout must be positive" in finished.stderr
