"""Channels to the three services (plaintext, or TLS and a bearer token as the
global options say), a deadline on every call, and failures named after the
service and address they came from."""

import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import grpc

from quoteflow.processor.v1 import processor_service_pb2_grpc
from quoteflow.quote.v1 import quote_service_pb2_grpc
from quoteflow.requestor.v1 import requestor_service_pb2_grpc
from quoteflow_cli.errors import CallError
from service_runtime.channels import PLAINTEXT, ClientSecurity, open_channel

StubT = TypeVar("StubT")
ResponseT = TypeVar("ResponseT")

#: Where `make run` serves each service.
DEFAULT_ADDRESSES = {
    "quote": "127.0.0.1:50051",
    "processor": "127.0.0.1:50052",
    "requestor": "127.0.0.1:50053",
}
DEFAULT_TIMEOUT = 10.0


def env_name(service: str) -> str:
    return f"QUOTEFLOW_{service.upper()}_ADDRESS"


def default_address(service: str) -> str:
    return os.environ.get(env_name(service)) or DEFAULT_ADDRESSES[service]


class Service(Generic[StubT]):
    """One service: its channel (opened on first use, so a command that never calls
    a service never connects to it) and calls whose failures name it."""

    def __init__(
        self,
        name: str,
        address: str,
        make_stub: Callable[[grpc.aio.Channel], StubT],
        timeout: float,
        channel_options: Sequence[tuple[str, Any]] = (),
        security: ClientSecurity = PLAINTEXT,
    ) -> None:
        self.name = name
        self.address = address
        self.timeout = timeout
        self.security = security
        self.channel_options = tuple(channel_options)
        self._make_stub = make_stub
        self._channel: grpc.aio.Channel | None = None
        self._stub: StubT | None = None

    @property
    def stub(self) -> StubT:
        if self._stub is None:
            self._channel = open_channel(
                self.address, security=self.security, options=self.channel_options
            )
            self._stub = self._make_stub(self._channel)
        return self._stub

    async def call(self, method: Callable[..., Awaitable[ResponseT]], request: Any) -> ResponseT:
        """A request-response call (a method of self.stub) under the deadline."""
        try:
            return await method(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            raise self._error(error, self.timeout) from None

    async def stream(
        self,
        method: Callable[..., "grpc.aio.UnaryStreamCall[Any, ResponseT]"],
        request: Any,
    ) -> AsyncGenerator[ResponseT, None]:
        """The responses of a server-streaming call (a method of self.stub).

        A watch lasts as long as what it watches takes, so it has no deadline; an
        unreachable service still fails at once, since calls do not wait for a
        connection. Iterate inside contextlib.aclosing so that stopping early
        cancels the call rather than leaving the stream open.
        """
        call = method(request)
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as error:
            raise self._error(error, None) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)

    def _error(self, error: grpc.aio.AioRpcError, deadline: float | None) -> CallError:
        return CallError.from_grpc_error(
            error, service=self.name, address=self.address, deadline=deadline
        )


class Clients:
    """The three services, as the global options address them."""

    def __init__(
        self,
        *,
        quote: str,
        processor: str,
        requestor: str,
        timeout: float,
        security: ClientSecurity = PLAINTEXT,
    ) -> None:
        self.quote = Service(
            "quote", quote, quote_service_pb2_grpc.QuoteServiceStub, timeout, security=security
        )
        self.processor = Service(
            "processor",
            processor,
            processor_service_pb2_grpc.ProcessorServiceStub,
            timeout,
            security=security,
        )
        self.requestor = Service(
            "requestor",
            requestor,
            requestor_service_pb2_grpc.RequestorServiceStub,
            timeout,
            security=security,
        )

    async def close(self) -> None:
        for service in (self.quote, self.processor, self.requestor):
            await service.close()
