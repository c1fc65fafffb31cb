"""tools/durability_check.py, the README's kill -9 check, run as the README says."""

import asyncio
import sys
from pathlib import Path

CHECK = Path(__file__).resolve().parents[2] / "tools" / "durability_check.py"


async def test_a_thousand_quotes_survive_a_kill_and_all_complete():
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(CHECK), stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(120):
        out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    assert b"acknowledged 1000 quotes" in out
    assert b"after the restart all 1000 completed" in out
