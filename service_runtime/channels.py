"""Channels to a quoteflow service: plaintext or TLS (with a client certificate
for mTLS), and a bearer token on every call."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from queues.core.traces import tracing_on
from service_runtime.config import DownstreamOptions, ServiceCallerOptions
from service_runtime.metrics.rpc import RpcMetrics
from service_runtime.observed_calls import StreamObserving, UnaryObserving
from service_runtime.tls import ClientTls, CredentialFileError, FileStamp, file_stamps


@dataclass(frozen=True)
class ClientSecurity:
    """How a channel is secured: tls None is plaintext; token, a function
    answering the bearer token of each call, or None for no token."""

    tls: ClientTls | None = None
    token: Callable[[], str] | None = None


#: No TLS and no token: make run's channels, on loopback.
PLAINTEXT = ClientSecurity()


class TokenFile:
    """The token in a file, read again when the file changes, so a rotated
    Secret is used from the next call on."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._stamp: tuple[FileStamp, ...] | None = None
        self._token = ""
        self()  # a missing file stops the start, not the first call

    def __call__(self) -> str:
        try:
            stamp = file_stamps(self._path)
            if stamp != self._stamp:
                self._token = Path(self._path).read_text().strip()
                self._stamp = stamp
        except OSError as error:
            if self._stamp is None:
                raise CredentialFileError(
                    f"cannot read the token file {self._path}: {error.strerror}"
                ) from error
            # Mid-rotation: the token read last is still good for a while.
        return self._token


def with_token(metadata: Sequence[tuple[str, Any]] | None, token: str) -> list[tuple[str, Any]]:
    """metadata with authorization: Bearer token in place of any it had."""
    kept = [(k, v) for k, v in metadata or () if k != "authorization"]
    return [*kept, ("authorization", f"Bearer {token}")]


class _BearerToken:
    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout,
            # arg-type: grpc.aio.Metadata iterates as (key, value) pairs.
            metadata=grpc.aio.Metadata(*with_token(details.metadata, self._token())),  # type: ignore[arg-type]
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )


# One class per kind of call: grpc.aio files an interceptor under the first
# kind it is an instance of, so one class of both would see unary calls only.
class _UnaryBearerToken(_BearerToken, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


class _StreamBearerToken(_BearerToken, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


def open_channel(
    address: str,
    *,
    security: ClientSecurity,
    options: Sequence[tuple[str, Any]] = (),
    metrics: RpcMetrics | None = None,
) -> grpc.aio.Channel:
    """A channel to address, secured as security says, its calls counted in
    metrics (the grpc_client_* families) when given, and traced when tracing is on."""
    # Any: grpc-stubs types interceptors as a placeholder that must be cast.
    interceptors: Any = []
    # grpc.aio's interceptors cost a task per call: none unless asked for.
    if metrics is not None or tracing_on():
        interceptors += [UnaryObserving(metrics), StreamObserving(metrics)]
    if security.token is not None:
        interceptors += [_UnaryBearerToken(security.token), _StreamBearerToken(security.token)]
    interceptors = interceptors or None
    if security.tls is None:
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(
        address, security.tls.credentials(), options=options, interceptors=interceptors
    )


def client_security(
    *, ca_file: str, cert_file: str = "", key_file: str = "", token_file: str = ""
) -> ClientSecurity:
    """TLS when ca_file is given (mTLS with cert_file and key_file), and the
    token in token_file on every call when it is given."""
    tls = ClientTls(ca_file, cert_file, key_file) if ca_file else None
    return ClientSecurity(tls=tls, token=TokenFile(token_file) if token_file else None)


def downstream_security(options: DownstreamOptions) -> ClientSecurity:
    """The security of a process's calls to the services, as its options say."""
    token_file = options.downstream_token_file if isinstance(options, ServiceCallerOptions) else ""
    return client_security(
        ca_file=options.downstream_ca_file,
        cert_file=options.downstream_cert_file,
        key_file=options.downstream_key_file,
        token_file=token_file,
    )
