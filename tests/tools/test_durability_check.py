"""tools/durability_check.py, the README's kill -9 check, run as the README says."""

import sys
from pathlib import Path

from service_process import run_to_exit

CHECK = Path(__file__).resolve().parents[2] / "tools" / "durability_check.py"


async def test_a_thousand_quotes_survive_a_kill_and_all_complete():
    finished = await run_to_exit(sys.executable, str(CHECK))
    assert finished.returncode == 0, finished.stdout.decode()
    assert b"acknowledged 1000 quotes" in finished.stdout
    assert b"after the restart all 1000 completed" in finished.stdout
