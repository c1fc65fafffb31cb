"""The installed console script, `.venv/bin/quoteflow`, run as a real process."""

import asyncio
import json
import signal
import sys
from pathlib import Path

from support.quote_harness import submission

from quoteflow.quote.v1 import quote_service_pb2 as pb

QUOTEFLOW = Path(sys.executable).with_name("quoteflow")
# Starting Python and loading grpc can take seconds on a busy machine.
PROCESS_DEADLINE_SECONDS = 30.0


async def start(*args: str) -> asyncio.subprocess.Process:
    # A test run started in the background by a non-interactive shell ignores
    # SIGINT, and a child inherits that; restoring the default before exec-ing
    # the script lets the Ctrl-C test send one that is not ignored.
    restore_sigint_then_exec = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        restore_sigint_then_exec,
        str(QUOTEFLOW),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    async with asyncio.timeout(PROCESS_DEADLINE_SECONDS):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_json_stats_of_all_three_services(order_cli):
    options = order_cli.argv(("--json", "stats"))
    code, stdout, stderr = await finish(await start(*options))
    assert (code, stderr) == (0, "")
    assert set(json.loads(stdout)) == {"quote", "processor", "requestor"}


async def test_an_unreachable_service_is_one_line_and_exit_code_5(dead_address):
    code, stdout, stderr = await finish(await start("--quote", dead_address, "quote", "get", "x"))
    assert code == 5
    assert stdout == ""
    [line] = stderr.splitlines()
    assert line.startswith(f"quoteflow: cannot reach the quote service at {dead_address} ")


async def test_ctrl_c_during_a_watch_exits_130_quietly(cli, quote):
    quote.rating.gate("Ada")
    queued = await quote.stub.SubmitQuote(pb.SubmitQuoteRequest(submission=submission("Ada")))
    await quote.rating.wait_started("Ada")
    process = await start(*cli.argv(("--json", "quote", "watch", queued.message.id)))
    assert process.stdout is not None
    async with asyncio.timeout(PROCESS_DEADLINE_SECONDS):
        first = await process.stdout.readline()
    assert json.loads(first)["message"]["status"] == "MESSAGE_STATUS_PROCESSING"
    process.send_signal(signal.SIGINT)
    code, _, stderr = await finish(process)
    assert (code, stderr) == (130, "")
