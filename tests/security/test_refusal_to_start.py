"""Secure by default, as a real start: a service told to listen beyond
loopback with neither TLS nor authentication refuses, in one line."""

import sys

import pytest
from support.service_process import run_to_exit


@pytest.mark.parametrize("module", ["quote_svc", "processor_svc", "requestor_svc", "console_svc"])
async def test_an_insecure_start_on_every_interface_is_refused(module: str) -> None:
    finished = await run_to_exit(sys.executable, "-m", module, "--host", "0.0.0.0", "--port", "0")
    assert finished.returncode == 2
    (line,) = [s for s in finished.stderr.decode().splitlines() if "refusing" in s]
    assert "0.0.0.0" in line and "TLS" in line and "--insecure" in line
