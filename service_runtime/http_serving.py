"""Serving an ASGI application with uvicorn on this process's event loop,
from a socket bound first, so a taken port stops the start with an OSError
naming it: the console's page and every process's /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn


class UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process drains on its own
    terms, then tells uvicorn to stop (should_exit)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_socket(host: str, port: int, *, what: str = "") -> socket.socket:
    """A listening, non-blocking socket on host:port; OSError naming it (and
    what it is for) if it cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(socket.SOMAXCONN)
    except OSError as error:
        sock.close()
        purpose = f" ({what})" if what else ""
        raise OSError(f"cannot listen on {host}:{port}{purpose}: {error.strerror}") from error
    sock.setblocking(False)
    return sock


async def start_serving(server: UvicornServer, sock: socket.socket) -> asyncio.Task[None]:
    """server serving on sock, once it listens; raises what stopped it if it did."""
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    # uvicorn has no event for it: its flag is set once the sockets listen.
    while not server.started:
        if serving.done():
            serving.result()
            raise OSError("the HTTP server stopped before it served")
        await asyncio.sleep(0.01)
    return serving
