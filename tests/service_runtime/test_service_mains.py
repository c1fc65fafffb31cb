"""Each service's `python -m` entry point, as a person types it."""

import sys

import pytest
from support.service_process import run_to_exit

MODULES = ["quote_svc", "processor_svc", "requestor_svc"]


@pytest.mark.parametrize("module", MODULES)
async def test_help_and_usage_errors_name_the_command_as_it_is_typed(module):
    helped = await run_to_exit(sys.executable, "-m", module, "--help")
    refused = await run_to_exit(sys.executable, "-m", module, "--port", "nope")

    assert helped.returncode == 0
    assert helped.stdout.decode().startswith(f"usage: python -m {module} [-h]")
    assert refused.returncode == 2
    assert f"python -m {module}: error: argument --port" in refused.stderr.decode()
    assert b"__main__.py" not in helped.stdout + refused.stderr
