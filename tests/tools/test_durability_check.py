"""tools/durability_check.py, the README's kill -9 check, run as the README says."""

import importlib.util
import re
import sys
from pathlib import Path

from support.service_process import run_to_exit

CHECK = Path(__file__).resolve().parents[2] / "tools" / "durability_check.py"


def _load_check():
    spec = importlib.util.spec_from_file_location("durability_check", CHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_a_thousand_quotes_survive_a_kill_and_all_complete():
    finished = await run_to_exit(sys.executable, str(CHECK))
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
    kill_verdict = _load_check().kill_verdict
    assert kill_verdict(500, 1000) is None
    assert kill_verdict(1000, 1000) is None
    refused = kill_verdict(499, 1000)
    assert refused is not None
    assert "only 499 of the 1000 acknowledged quotes were pending" in refused
    assert kill_verdict(0, 1000) is not None
