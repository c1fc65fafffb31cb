"""Finding a Redis for the arq and dramatiq peers: REDIS_URL's, else one started here."""

import asyncio
import contextlib
import os
import shutil

from bench.context import Run
from bench.procs import free_port

DEFAULT_URL = "redis://127.0.0.1:6379"
START_DEADLINE = 10.0


async def answers(url: str) -> bool:
    """Whether a Redis at url answers PING within a second."""
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


async def find_redis(run: Run) -> tuple[str | None, str]:
    """(url, how it was found); url None when there is no Redis to use.

    REDIS_URL's Redis if it is set; else a redis-server started here, so that
    its CPU is the peers' alone; else the default URL's, if one answers there.
    """
    url = os.environ.get("REDIS_URL")
    if url and await answers(url):
        return url, f"the Redis at {url} (REDIS_URL; its CPU is server-wide)"
    server = shutil.which("redis-server")
    if server is not None:
        return await _start_redis(run, server)
    if await answers(DEFAULT_URL):
        return DEFAULT_URL, f"the Redis at {DEFAULT_URL} (the default; its CPU is server-wide)"
    return (
        None,
        f"skipped: no Redis answered at {url or DEFAULT_URL} and redis-server is not installed",
    )


async def _start_redis(run: Run, server: str) -> tuple[str | None, str]:
    port = free_port()
    child = await run.processes.start(
        "redis-server",
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        python=False,
    )
    url = f"redis://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_DEADLINE
    while loop.time() < deadline:
        if await answers(url):
            return url, f"a redis-server started by the bench on port {port} (no persistence)"
        if child.process.returncode is not None:
            break
        await asyncio.sleep(0.1)
    return None, f"skipped: the redis-server started on port {port} did not answer"


async def redis_version(url: str) -> str:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        info = await client.info("server")
        return str(info.get("redis_version", "?"))
    except Exception:
        return "?"
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
