"""tools/durability_check.py, the README's kill -9 check, run as `make durability-check` runs it."""

import re
import sys
from pathlib import Path

from support.service_process import run_to_exit

from tools.durability_check import kill_verdict

REPO = Path(__file__).resolve().parents[2]


async def test_a_thousand_quotes_survive_a_kill_and_all_complete():
    # As `make durability-check` runs it.
    finished = await run_to_exit(sys.executable, "-m", "tools.durability_check", cwd=REPO)
    out = finished.stdout.decode()
    assert finished.returncode == 0, out
    assert "acknowledged 1000 quotes" in out
    assert "after the restart all 1000 completed" in out
    # The kill found most of them still waiting, so the restart had to finish them.
    killed = re.search(r"(\d+) were completed, (\d+) processing and (\d+) pending", out)
    assert killed is not None, out
    completed, processing, pending = map(int, killed.groups())
    assert completed + processing + pending == 1000
    assert pending * 2 >= 1000, out


def test_a_kill_that_finds_fewer_than_half_pending_is_a_failure():
    assert kill_verdict(500, 1000) is None
    assert kill_verdict(1000, 1000) is None
    refused = kill_verdict(499, 1000)
    assert refused is not None
    assert "only 499 of the 1000 acknowledged quotes were pending" in refused
    assert kill_verdict(0, 1000) is not None
