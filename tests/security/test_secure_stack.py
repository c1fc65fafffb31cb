"""The three services as real processes with TLS, mTLS and tokens on, calling
one another with their `service` tokens over mTLS: every RPC asked with no
token, an expired one, one for another audience, one without the role and
one with it; clients refused for their certificates; the whole order flow;
the caps on streams and request size; the audit log."""

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.credentials import Credentials, make_credentials
from support.polling import poll
from support.quote_harness import submission
from support.service_process import Launched, running_service

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.processor.v1 import processor_service_pb2_grpc as processor_grpc
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc
from quoteflow.requestor.v1 import requestor_service_pb2 as requestor_pb
from quoteflow.requestor.v1 import requestor_service_pb2_grpc as requestor_grpc
from service_runtime import roles
from service_runtime.channels import ClientSecurity, open_channel
from service_runtime.errors import DETAILS_METADATA_KEY
from service_runtime.tls import ClientTls

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

#: Small, so the tests reach them with a few calls.
MAX_STREAMS = 3
MAX_REQUEST_BYTES = 64 * 1024
CALL_DEADLINE = 10.0


@dataclass
class Stack:
    credentials: Credentials
    quote: Launched
    processor: Launched
    requestor: Launched

    def address_of(self, service: str) -> str:
        return {
            "QuoteService": self.quote.address,
            "ProcessorService": self.processor.address,
            "RequestorService": self.requestor.address,
        }[service]

    def channel(
        self, address: str, token: str | None, *, cert: tuple[Path, Path] | None = None
    ) -> grpc.aio.Channel:
        creds = self.credentials
        cert_file, key_file = cert or (creds.client_cert, creds.client_key)
        tls = ClientTls(str(creds.ca_file), str(cert_file), str(key_file))
        return open_channel(
            address,
            security=ClientSecurity(tls=tls, token=(lambda: token) if token else None),
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    creds = make_credentials(tmp_path_factory.mktemp("credentials"))
    memory = ("--store", "memory")
    processor_token = creds.token_file("processor", [roles.SERVICE])
    requestor_token = creds.token_file("requestor", [roles.SERVICE])
    async with (
        running_service(
            "quote_svc", *memory, *creds.server_flags(),
            "--max-streams-per-caller", str(MAX_STREAMS),
            "--max-request-bytes", str(MAX_REQUEST_BYTES),
        ) as quote,
        running_service(
            "processor_svc", *memory, *creds.server_flags(), "--quote-address", quote.address,
            *creds.downstream_flags(processor_token),
        ) as processor,
        running_service(
            "requestor_svc", *memory, *creds.server_flags(),
            "--processor-address", processor.address, *creds.downstream_flags(requestor_token),
        ) as requestor,
    ):  # fmt: skip
        yield Stack(creds, quote, processor, requestor)


def _methods() -> list[MethodDescriptor]:
    return [
        method
        for module in (quote_pb, processor_pb, requestor_pb)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


async def _call(channel: grpc.aio.Channel, method: MethodDescriptor) -> grpc.StatusCode:
    """The code an empty request of method is answered with (OK for a stream's
    first message)."""
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    kind = channel.unary_stream if method.server_streaming else channel.unary_unary
    callable_ = kind(
        _path(method),
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    call: Any = callable_(request_class(), timeout=CALL_DEADLINE)
    try:
        if method.server_streaming:
            await call.read()
            call.cancel()
        else:
            await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def _reason(error: grpc.aio.AioRpcError) -> str:
    trailing = dict(error.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailing[DETAILS_METADATA_KEY])
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    raise AssertionError(f"no ErrorInfo in {status}")


def _roles_it_lacks(method: MethodDescriptor) -> tuple[str, ...]:
    """Every role the method's row leaves out (none, for one open to all roles:
    then the token has no role at all)."""
    allowed = roles.allowed_roles(_path(method))
    return tuple(r for r in roles.ROLES if r not in allowed)


CASES = {
    "no token": (lambda c, m: None, grpc.StatusCode.UNAUTHENTICATED),
    "expired": (
        lambda c, m: c.token(*roles.ROLES, issued=time.time() - 7200, ttl=60),
        grpc.StatusCode.UNAUTHENTICATED,
    ),
    "wrong audience": (
        lambda c, m: c.token(*roles.ROLES, audience="another-system"),
        grpc.StatusCode.UNAUTHENTICATED,
    ),
    "wrong role": (
        lambda c, m: c.token(*_roles_it_lacks(m)),
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    "right role": (lambda c, m: c.token(*roles.allowed_roles(_path(m))), None),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_every_rpc_answers_each_caller_as_the_role_table_says(
    stack: Stack, case: str
) -> None:
    token_for, expected = CASES[case]
    failures = []
    for method in _methods():
        token = token_for(stack.credentials, method)
        address = stack.address_of(method.containing_service.name)
        async with stack.channel(address, token) as channel:
            code = await _call(channel, method)
        if expected is None:
            # Let through: whatever the empty request earns, it is not a refusal.
            refused = code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
            if refused:
                failures.append(f"{_path(method)}: {code.name}")
        elif code != expected:
            failures.append(f"{_path(method)}: {code.name}, not {expected.name}")
    assert not failures, failures


async def test_refusals_say_why_in_an_error_info(stack: Stack) -> None:
    creds = stack.credentials
    request = quote_pb.GetStatsRequest()
    for token, code, reason in (
        (None, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"),
        (creds.token(roles.OPERATOR, issued=time.time() - 7200, ttl=60),
         grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED"),
        (creds.token(roles.OPERATOR) + "x", grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"),
        (creds.token(roles.SUBMITTER), grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED"),
    ):  # fmt: skip
        async with stack.channel(stack.quote.address, token) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await quote_grpc.QuoteServiceStub(channel).GetStats(request, timeout=CALL_DEADLINE)
        assert refused.value.code() == code
        assert _reason(refused.value) == reason
        # Nothing about the secret or the signature's bytes.
        assert "signature" not in (refused.value.details() or "").lower()


async def test_health_is_open_without_a_token(stack: Stack) -> None:
    async with stack.channel(stack.quote.address, None) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=CALL_DEADLINE
        )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("client", ["no certificate", "another CA's certificate"])
async def test_mtls_refuses_a_client_without_a_certificate_the_ca_signed(
    stack: Stack, client: str
) -> None:
    creds = stack.credentials
    if client == "no certificate":
        tls = ClientTls(str(creds.ca_file))
    else:
        tls = ClientTls(str(creds.ca_file), str(creds.stranger_cert), str(creds.stranger_key))
    token = creds.token(roles.OPERATOR)
    async with open_channel(
        stack.quote.address, security=ClientSecurity(tls=tls, token=lambda: token)
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await quote_grpc.QuoteServiceStub(channel).GetStats(
                quote_pb.GetStatsRequest(), timeout=CALL_DEADLINE
            )
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_whole_order_flow_runs_over_mtls_with_tokens(stack: Stack) -> None:
    token = stack.credentials.token(roles.SUBMITTER, subject="broker-7")
    async with (
        stack.channel(stack.requestor.address, token) as requestor_channel,
        stack.channel(stack.processor.address, token) as processor_channel,
    ):
        requestor = requestor_grpc.RequestorServiceStub(requestor_channel)
        processor = processor_grpc.ProcessorServiceStub(processor_channel)
        placed = await requestor.PlaceOrder(
            requestor_pb.PlaceOrderRequest(order_req_id="ORD-SECURE"), timeout=CALL_DEADLINE
        )
        for proposal in ("P1", "P2"):
            await processor.SubmitProposal(
                processor_pb.SubmitProposalRequest(
                    order_req_id="ORD-SECURE", proposal_id=proposal, submission=submission()
                ),
                timeout=CALL_DEADLINE,
            )
        await processor.CompleteOrder(
            processor_pb.CompleteOrderRequest(order_req_id="ORD-SECURE"), timeout=60
        )
        request = requestor_pb.GetTaskResultRequest(task_id=placed.task_id)

        async def result() -> requestor_pb.TaskResult:
            return (await requestor.GetTaskResult(request, timeout=CALL_DEADLINE)).result

        final = await poll(
            result, lambda r: r.status == requestor_pb.TASK_STATUS_SUCCEEDED,
            "the task to succeed", within=60,
        )  # fmt: skip
    assert {p.proposal_id for p in final.proposals} >= {"P1", "P2"}


async def test_a_caller_beyond_its_stream_cap_is_told_to_retry(stack: Stack) -> None:
    token = stack.credentials.token(roles.OPERATOR, subject="watcher")
    async with stack.channel(stack.quote.address, token) as channel:
        stub = quote_grpc.QuoteServiceStub(channel)
        held = [
            stub.WatchStats(quote_pb.WatchStatsRequest(), timeout=60) for _ in range(MAX_STREAMS)
        ]
        for stream in held:
            await stream.read()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.WatchStats(quote_pb.WatchStatsRequest(), timeout=CALL_DEADLINE).read()
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _reason(refused.value) == "STREAM_LIMIT"
        # Another caller is not held back by this one's streams.
        other = stack.credentials.token(roles.OPERATOR, subject="someone-else")
        async with stack.channel(stack.quote.address, other) as other_channel:
            other_stream = quote_grpc.QuoteServiceStub(other_channel).WatchStats(
                quote_pb.WatchStatsRequest(), timeout=CALL_DEADLINE
            )
            assert (await other_stream.read()).HasField("stats")
            other_stream.cancel()
        # A closed stream frees its slot.
        held.pop().cancel()

        async def opens() -> bool:
            stream = stub.WatchStats(quote_pb.WatchStatsRequest(), timeout=CALL_DEADLINE)
            try:
                await stream.read()
            except grpc.aio.AioRpcError:
                return False
            held.append(stream)
            return True

        await poll(opens, bool, "a stream once one closed", within=10)
        for stream in held:
            stream.cancel()


async def test_a_request_over_the_size_cap_is_refused_as_such(stack: Stack) -> None:
    token = stack.credentials.token(roles.SUBMITTER)
    large = submission()
    large.applicant_name = "x" * MAX_REQUEST_BYTES
    async with stack.channel(stack.quote.address, token) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await quote_grpc.QuoteServiceStub(channel).SubmitQuote(
                quote_pb.SubmitQuoteRequest(submission=large), timeout=CALL_DEADLINE
            )
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _reason(refused.value) == "REQUEST_TOO_LARGE"
    assert str(MAX_REQUEST_BYTES) in (refused.value.details() or "")


async def test_an_operators_action_is_in_the_audit_log(stack: Stack) -> None:
    token = stack.credentials.token(roles.OPERATOR, subject="ops-olga")
    async with stack.channel(stack.quote.address, token) as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await quote_grpc.QuoteServiceStub(channel).CancelMessage(
                quote_pb.CancelMessageRequest(id="MSG-AUDITED"), timeout=CALL_DEADLINE
            )
    line = await stack.quote.read_log_until("audit")
    while line["subject"] != "ops-olga":  # the lines of the tests before this one
        line = await stack.quote.read_log_until("audit")
    assert {k: line[k] for k in ("subject", "action", "target", "code")} == {
        "subject": "ops-olga",
        "action": "CancelMessage",
        "target": "MSG-AUDITED",
        "code": "NOT_FOUND",
    }
    assert str(line["at"]).endswith("+00:00")
