"""A TLS listener in-process: a renewed certificate reaches new connections
without a restart, and a missing certificate stops the start."""

import os
import socket
from pathlib import Path

import grpc
import grpc.aio
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.credentials import issue_certificate
from support.polling import poll

from service_runtime.server import ServerSecurity, bind_server
from service_runtime.tls import ClientTls, CredentialFileError, ServerTls


async def _serving(address: str, ca_file: Path) -> bool:
    """Whether a new connection trusting only ca_file gets a health answer."""
    credentials = ClientTls(str(ca_file)).credentials()
    async with grpc.aio.secure_channel(address, credentials) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.aio.AioRpcError:
            return False
    return True


def _write_ca(ca: trustme.CA, path: Path) -> Path:
    ca.cert_pem.write_to_path(str(path))
    return path


async def test_a_replaced_certificate_is_served_to_new_connections(tmp_path: Path) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    old_trust, new_trust = (
        _write_ca(old_ca, tmp_path / "old-ca.pem"),
        _write_ca(new_ca, tmp_path / "new-ca.pem"),
    )
    live = tmp_path / "live"
    live.mkdir()
    cert, key = issue_certificate(old_ca, live, "server", "127.0.0.1")
    bound = await bind_server(
        host="127.0.0.1", port=0, security=ServerSecurity(tls=ServerTls(str(cert), str(key)))
    )
    running = await bound.start([])
    try:
        assert await _serving(running.address, old_trust)
        assert not await _serving(running.address, new_trust)

        # As a Secret is renewed: the new files written aside, then moved in.
        staged = tmp_path / "staged"
        staged.mkdir()
        new_cert, new_key = issue_certificate(new_ca, staged, "server", "127.0.0.1")
        os.replace(new_key, key)
        os.replace(new_cert, cert)

        await poll(lambda: _serving(running.address, new_trust), bool, "the renewed certificate")
        assert not await _serving(running.address, old_trust)
    finally:
        await running.stop(None)


async def test_a_certificate_that_cannot_be_read_stops_the_start(tmp_path: Path) -> None:
    tls = ServerTls(str(tmp_path / "absent.pem"), str(tmp_path / "absent.key"))
    with pytest.raises(CredentialFileError, match=r"absent\.key"):
        await bind_server(host="127.0.0.1", port=0, security=ServerSecurity(tls=tls))


async def test_the_health_port_answers_probes_in_plaintext_and_nothing_else(
    tmp_path: Path,
) -> None:
    ca = trustme.CA()
    cert, key = issue_certificate(ca, tmp_path, "server", "127.0.0.1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        health_port = probe.getsockname()[1]
    security = ServerSecurity(tls=ServerTls(str(cert), str(key)), health_port=health_port)
    bound = await bind_server(host="127.0.0.1", port=0, security=security)
    running = await bound.start([])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port}") as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            other = channel.unary_unary("/quoteflow.quote.v1.QuoteService/GetStats")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await other(b"", timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await running.stop(None)
    # The health port closes with the server.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
