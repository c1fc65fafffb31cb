"""`python -m bench --smoke`: the whole harness at tiny sizes, as a subprocess.

The benchmarks themselves run in `make bench`; this only checks that every
section runs, every figure is written with its keys and a number, and the
markdown is written.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# The bench's own dependencies are the `bench` extra (pip install -e ".[dev,bench]").
for module in ("arq", "dramatiq", "procrastinate", "psutil", "pyinstrument", "uvloop"):
    pytest.importorskip(module, reason=f"{module} is in the bench extra: pip install -e '.[bench]'")

from bench.catalog import figure_names  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
KEYS = {"name", "value", "unit", "reference", "ratio", "target", "met"}
#: The smoke run takes about half a minute on a quiet machine; the machine is shared.
SMOKE_TIMEOUT = 240
#: Figures that name a peer the machine may lack (no Redis, no PostgreSQL): they
#: may be null, saying why, and so may the comparisons with the fastest peer.
PEER_FIGURES = (
    "e2e.arq.",
    "e2e.dramatiq.",
    "e2e.procrastinate.",
    "e2e.sqlite.vs_fastest_peer.",
    "e2e.sqlite_batch.vs_fastest_peer.",
)
#: Figures of the quote service on PostgreSQL: null, saying why, without one.
POSTGRES_FIGURES = ("e2e.postgres.", "e2e.postgres2.", "postgres.")
#: The console's figures need Chromium and the built page.
BROWSER_FIGURES = ("console.",)


def _postgres_answers() -> bool:
    import psycopg

    from bench.pg_peer import DEFAULT_URL

    url = os.environ.get("QUOTEFLOW_BENCH_DATABASE_URL", DEFAULT_URL)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


@pytest.mark.timeout(SMOKE_TIMEOUT + 30)
def test_smoke_run_writes_every_figure(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-4000:]

    figures = json.loads((tmp_path / "results.json").read_text())
    by_name = {figure["name"]: figure for figure in figures}
    assert sorted(by_name) == sorted(figure_names())
    for figure in figures:
        assert figure.keys() >= KEYS, figure
        value = figure["value"]
        # Only a peer may be missing (no Redis or PostgreSQL here), and then it says so.
        if value is None:
            maybe = figure["name"].startswith((*PEER_FIGURES, *POSTGRES_FIGURES, *BROWSER_FIGURES))
            assert maybe and figure["note"], figure
        else:
            assert isinstance(value, int | float), figure
        for key in ("reference", "ratio"):
            assert figure[key] is None or isinstance(figure[key], int | float), figure
        assert figure["met"] in (True, False, None), figure

    # Where their servers are, the peers must have run.
    present = {"arq": shutil.which("redis-server"), "dramatiq": shutil.which("redis-server")}
    present["procrastinate"] = _postgres_answers()
    for peer, there in present.items():
        if there:
            for stat in ("jobs_per_s", "cpu_us_per_job"):
                figure = by_name[f"e2e.{peer}.{stat}"]
                assert figure["value"] is not None, figure
    # Where PostgreSQL answers, the quote service on it must have run too.
    if present["procrastinate"]:
        for name, figure in by_name.items():
            if name.startswith(POSTGRES_FIGURES):
                assert figure["value"] is not None, figure
    # The batch variant needs no peer; its comparison does.
    assert by_name["e2e.sqlite_batch.cpu_us_per_job"]["value"] is not None

    markdown = (tmp_path / "benchmarks.md").read_text()
    assert markdown.startswith("# Benchmarks")
    assert "## 1. Unary ceiling" in markdown
    assert "dramatiq (Redis)" in markdown and "procrastinate (PostgreSQL)" in markdown
    assert "quoteflow, PostgreSQL, 2 replicas" in markdown
    assert "## 6. Memory over many quotes" in markdown
    assert "## 7. GetStats on PostgreSQL" in markdown
