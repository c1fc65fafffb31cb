"""quoteflow stats --watch as a real process: Ctrl-C (SIGINT) ends it with exit 0."""

import asyncio
import json
import signal
import sys
from pathlib import Path

QUOTEFLOW = Path(sys.executable).with_name("quoteflow")
# Starting Python and loading grpc can take seconds on a busy machine.
PROCESS_DEADLINE_SECONDS = 30.0


async def start(*args: str) -> asyncio.subprocess.Process:
    # A test run started in the background by a non-interactive shell ignores
    # SIGINT, and a child inherits that; restoring the default before exec-ing
    # the script lets the test send one that is not ignored.
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


async def test_ctrl_c_ends_a_json_watch_with_exit_0_quietly(order_cli):
    process = await start(*order_cli.argv(("--json", "stats", "--watch", "--interval", "0.1")))
    assert process.stdout is not None
    try:
        async with asyncio.timeout(PROCESS_DEADLINE_SECONDS):
            # Two refreshes: the watch goes on after the first.
            lines = [await process.stdout.readline() for _ in range(2)]
    except BaseException:
        process.kill()
        raise
    for line in lines:
        assert set(json.loads(line)) == {"quote", "processor", "requestor"}
    process.send_signal(signal.SIGINT)
    async with asyncio.timeout(PROCESS_DEADLINE_SECONDS):
        _, stderr = await process.communicate()
    assert (process.returncode, stderr.decode()) == (0, "")
