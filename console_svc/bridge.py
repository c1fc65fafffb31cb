"""The bridge: every RPC of the three services, served to the browser over
Connect, gRPC-Web and gRPC by connectrpc, and forwarded to the service itself
through its generated grpc.aio stub.

The endpoints are built from the services' descriptors, so an RPC added to
proto/ is bridged by the next `make gen` without a line here. Nothing is
translated but the errors: a service's status passes through with its code,
message and details (the google.rpc BadRequest, RetryInfo and ErrorInfo of
grpc-status-details-bin), and a service that cannot be reached becomes
UNAVAILABLE naming it and its address.

The page's `authorization` header goes on to the service with each call, so
the service decides what the page's user may do; with an Access of its own
(auth on at the console too) the bridge refuses a call the service would
refuse before forwarding it.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import grpc
import grpc.aio
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_codecs
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from protobuf.wkt import Any as AnyDetail

from console_svc.drain import DRAINING_MESSAGE, DrainGate
from quoteflow.processor.v1 import processor_service_pb2, processor_service_pb2_grpc
from quoteflow.quote.v1 import quote_service_pb2, quote_service_pb2_grpc
from quoteflow.requestor.v1 import requestor_service_pb2, requestor_service_pb2_grpc
from service_runtime.access import Access, CallRefused
from service_runtime.channels import PLAINTEXT, ClientSecurity, open_channel
from service_runtime.metrics.rpc import RpcMetrics

if TYPE_CHECKING:
    # The types Endpoint.unary and Endpoint.server_stream answer, which
    # ConnectASGIApplication takes; connectrpc exports only their base.
    from connectrpc._server_shared import EndpointServerStream, EndpointUnary

    Bridged: TypeAlias = EndpointUnary[Any, Any] | EndpointServerStream[Any, Any]

logger = logging.getLogger("console_svc.bridge")

#: The trailing metadata entry that carries a status's google.rpc.Status.
DETAILS_METADATA_KEY = "grpc-status-details-bin"

# gRPC waits 1 s after a failed connect, growing to 120 s, before it tries
# again, failing calls at once meanwhile: a service that came back would stay
# "unreachable" on the page for minutes. Capped, it is seen within two seconds.
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)

# grpc names it CANCELLED; Connect, CANCELED. Every other name is the same.
_CODES = {s: Code[s.name] for s in grpc.StatusCode if s.name in Code.__members__}
_CODES[grpc.StatusCode.CANCELLED] = Code.CANCELED


@dataclass(frozen=True)
class Service:
    """One of the services the console bridges: its descriptor and stub class."""

    #: How errors name it: "quote service".
    name: str
    descriptor: ServiceDescriptor
    stub: Callable[[grpc.aio.Channel], object]


QUOTE = Service(
    "quote service",
    quote_service_pb2.DESCRIPTOR.services_by_name["QuoteService"],
    quote_service_pb2_grpc.QuoteServiceStub,
)
PROCESSOR = Service(
    "processor service",
    processor_service_pb2.DESCRIPTOR.services_by_name["ProcessorService"],
    processor_service_pb2_grpc.ProcessorServiceStub,
)
REQUESTOR = Service(
    "requestor service",
    requestor_service_pb2.DESCRIPTOR.services_by_name["RequestorService"],
    requestor_service_pb2_grpc.RequestorServiceStub,
)
SERVICES = (QUOTE, PROCESSOR, REQUESTOR)


class Downstream:
    """One service at one address, over one channel, as the bridge calls it."""

    def __init__(
        self,
        service: Service,
        address: str,
        security: ClientSecurity = PLAINTEXT,
        metrics: RpcMetrics | None = None,
    ) -> None:
        self.service = service
        self.address = address
        self.channel = open_channel(
            address, security=security, options=_CHANNEL_OPTIONS, metrics=metrics
        )
        self.stub = service.stub(self.channel)

    def error(self, failure: grpc.aio.AioRpcError) -> ConnectError:
        """The Connect error the page gets for a failed call: the service's own
        status as it was, or, for a service the console could not reach, one
        that says so in words."""
        code = failure.code()
        message = failure.details() or code.name
        # assignment: grpc-stubs types it as the synchronous API's tuple of
        # _Metadatum; grpc.aio answers its Metadata of (key, value) pairs, or None.
        trailing: grpc.aio.Metadata | None = failure.trailing_metadata()  # type: ignore[assignment]
        details = _details(trailing)
        if code == grpc.StatusCode.UNAVAILABLE and not details:
            # A status the service itself sends carries an ErrorInfo (AIP-193);
            # one without details is gRPC's own: no connection to the service.
            message = f"{self.service.name} unreachable at {self.address}: {message}"
        return ConnectError(_CODES.get(code, Code.UNKNOWN), message, details)

    async def close(self) -> None:
        # No grace: the calls still open are the page's, and it is going.
        await self.channel.close(grace=None)


def method_info(method: MethodDescriptor) -> MethodInfo[Any, Any]:
    """What connectrpc needs to serve (or call) one RPC, from its descriptor."""
    return MethodInfo(
        name=method.name,
        service_name=method.containing_service.full_name,
        input=message_factory.GetMessageClass(method.input_type),
        output=message_factory.GetMessageClass(method.output_type),
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=StreamType.SERVER_STREAM if method.server_streaming else StreamType.UNARY,
    )


def _details(trailing: grpc.aio.Metadata | None) -> list[ErrorDetail]:
    """The google.rpc.Status details of a failed call, still packed: the page
    unpacks them with the same generated types the services packed them with."""
    for key, value in trailing or ():
        if key != DETAILS_METADATA_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except DecodeError:
            return []
        return [ErrorDetail(AnyDetail(type_url=d.type_url, value=d.value)) for d in status.details]
    return []


def _forwarded(ctx: RequestContext[Any, Any]) -> tuple[tuple[str, str], ...]:
    """The page's authorization header, as the call's metadata."""
    token = ctx.request_headers.get("authorization")
    return (("authorization", token),) if token else ()


def _seconds(ctx: RequestContext[Any, Any], default: float | None) -> float | None:
    """The deadline the page set (Connect-Timeout-Ms, grpc-timeout), else default."""
    timeout_ms = ctx.timeout_ms
    return default if timeout_ms is None else timeout_ms / 1000


class Bridge:
    """The endpoints of every bridged RPC, by their URL path."""

    def __init__(
        self,
        downstreams: Iterable[Downstream],
        gate: DrainGate,
        *,
        call_deadline: float,
        access: Access | None = None,
    ) -> None:
        self.gate = gate
        self._call_deadline = call_deadline
        self._access = access
        self.downstreams = list(downstreams)

    def _admit(self, path: str, ctx: RequestContext[Any, Any]) -> None:
        """ConnectError for a call this console's own auth refuses."""
        if self._access is None:
            return
        try:
            self._access.admit(path, _forwarded(ctx), ctx.client_address or "")
        except CallRefused as refused:
            status = refused.status
            # assignment: a grpc.Status's metadata is the (key, value) pairs rich_status made.
            trailing: Any = status.trailing_metadata
            raise ConnectError(_CODES[status.code], status.details, _details(trailing)) from None

    def endpoints(self) -> "dict[str, Bridged]":
        endpoints: dict[str, Bridged] = {}
        for downstream in self.downstreams:
            for method in downstream.service.descriptor.methods:
                endpoints[f"/{method.full_name.rpartition('.')[0]}/{method.name}"] = self._endpoint(
                    downstream, method
                )
        return endpoints

    def _endpoint(self, downstream: Downstream, method: MethodDescriptor) -> "Bridged":
        if method.client_streaming:
            # No RPC of the contract streams from the client, and a browser
            # cannot (fetch has no request streams over HTTP/1.1).
            raise ValueError(f"{method.full_name}: client streaming cannot be bridged")
        info = method_info(method)
        target = getattr(downstream.stub, method.name)
        path = f"/{method.containing_service.full_name}/{method.name}"
        if method.server_streaming:
            return Endpoint.server_stream(
                method=info, function=self._streaming(downstream, path, target)
            )
        return Endpoint.unary(method=info, function=self._unary(downstream, path, target))

    def _unary(
        self, downstream: Downstream, path: str, target: Callable[..., Awaitable[Message]]
    ) -> Callable[[Message, RequestContext[Any, Any]], Awaitable[Message]]:
        async def forward(request: Message, ctx: RequestContext[Any, Any]) -> Message:
            self._admit(path, ctx)
            with self.gate.unary():
                try:
                    return await target(
                        request,
                        timeout=_seconds(ctx, self._call_deadline),
                        metadata=_forwarded(ctx),
                    )
                except grpc.aio.AioRpcError as failure:
                    raise downstream.error(failure) from None

        return forward

    def _streaming(
        self,
        downstream: Downstream,
        path: str,
        target: Callable[..., grpc.aio.UnaryStreamCall[Any, Any]],
    ) -> Callable[[Message, RequestContext[Any, Any]], AsyncIterator[Message]]:
        async def forward(
            request: Message, ctx: RequestContext[Any, Any]
        ) -> AsyncIterator[Message]:
            self._admit(path, ctx)
            with self.gate.stream() as closing:
                # No deadline unless the page sets one: a watch lasts as long as
                # the page shows it.
                call = target(request, timeout=_seconds(ctx, None), metadata=_forwarded(ctx))
                responses = aiter(call)
                ended = asyncio.ensure_future(closing.wait())
                try:
                    while True:
                        reading = asyncio.ensure_future(anext(responses))
                        # Left unread when the drain wins the race: not an error.
                        reading.add_done_callback(_retrieved)
                        await asyncio.wait({reading, ended}, return_when=asyncio.FIRST_COMPLETED)
                        if not reading.done():
                            reading.cancel()
                            raise ConnectError(Code.UNAVAILABLE, DRAINING_MESSAGE)
                        try:
                            response = reading.result()
                        except StopAsyncIteration:
                            return
                        except grpc.aio.AioRpcError as failure:
                            raise downstream.error(failure) from None
                        yield cast(Message, response)
                finally:
                    ended.cancel()
                    # The page went away, or the drain ended it: the service's
                    # stream ends too, rather than run on for nobody.
                    call.cancel()

        return forward


def _retrieved(task: "asyncio.Future[Any]") -> None:
    if not task.cancelled():
        task.exception()


class BridgeApplication(ConnectASGIApplication[Bridge]):
    """connectrpc's ASGI application, serving every endpoint of the bridge."""

    def __init__(self, bridge: Bridge) -> None:
        # The messages are google.protobuf's (gen/), not protobuf-py's, which
        # connectrpc's default codecs are for.
        super().__init__(
            service=bridge, endpoints=lambda b: b.endpoints(), codecs=google_protobuf_codecs()
        )

    @property
    def path(self) -> str:
        return "/quoteflow."
