"""The three services as real processes, wired to one another as make run
wires them, and the demo's order flow run against them."""

import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from support.service_process import Finished, Launched, run_to_exit, running_service

DEMO = Path(__file__).resolve().parents[2] / "tools" / "demo.py"


@contextlib.asynccontextmanager
async def three_services(
    data_dir: Path,
    *,
    quote_args: Sequence[str] = (),
    processor_args: Sequence[str] = (),
    requestor_args: Sequence[str] = (),
    **env: str,
) -> AsyncIterator[tuple[Launched, Launched, Launched]]:
    """quote, processor and requestor, each with its args and env, killed after."""
    async with (
        running_service("quote_svc", *quote_args, data_dir=data_dir / "quote", **env) as quote,
        running_service(
            "processor_svc",
            "--quote-address",
            quote.address,
            *processor_args,
            data_dir=data_dir / "processor",
            **env,
        ) as processor,
        running_service(
            "requestor_svc",
            "--processor-address",
            processor.address,
            *requestor_args,
            data_dir=data_dir / "requestor",
            **env,
        ) as requestor,
    ):
        yield quote, processor, requestor


async def run_demo(processor: Launched, requestor: Launched, **env: str) -> Finished:
    """`make demo` against them; fails the test unless the order succeeded."""
    finished = await run_to_exit(
        sys.executable,
        str(DEMO),
        "--processor",
        processor.address,
        "--requestor",
        requestor.address,
        **env,
    )
    assert finished.returncode == 0, finished.stderr.decode()
    return finished
