"""Asking a server's health as a Kubernetes probe would, and waiting for a status."""

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.polling import poll

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def check(channel: grpc.aio.Channel, service: str) -> int:
    answer = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service)
    )
    return answer.status


async def becomes(channel: grpc.aio.Channel, service: str, status: int) -> None:
    """Poll service's health until it is status."""
    await poll(
        lambda: check(channel, service),
        status.__eq__,
        f"health of {service!r} {status}",
        every=0.01,
    )
