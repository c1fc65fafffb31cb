"""One service per store: a second one on the same data dir, or on a port
already taken, stops with one line before it reads the store."""

import os
import socket
import sys

import grpc
import pytest
from support import health_probe
from support.service_process import run_to_exit, running_service

from service_runtime.data_dir_lock import DataDirInUseError, locked_data_dir

# Each service and the name of its store in the data dir.
STORES = {"quote_svc": "quote", "processor_svc": "processor", "requestor_svc": "requestor"}


def plain_lines(stderr: bytes) -> list[str]:
    """The lines of stderr that are not JSON log records: what a person reads."""
    return [line for line in stderr.decode().splitlines() if not line.startswith("{")]


def test_a_held_lock_is_refused_naming_its_holder_and_is_free_once_released(tmp_path):
    with locked_data_dir(tmp_path, "quote"):
        with pytest.raises(DataDirInUseError) as refused, locked_data_dir(tmp_path, "quote"):
            pass
        # Another store in the same directory is another lock.
        with locked_data_dir(tmp_path, "processor"):
            pass

    message = str(refused.value)
    assert f"pid {os.getpid()} on {socket.gethostname()}" in message
    assert str(tmp_path / "quote.lock") in message
    with locked_data_dir(tmp_path, "quote"):
        pass


@pytest.mark.parametrize("module", STORES)
async def test_a_second_service_on_a_data_dir_in_use_exits_with_one_line_naming_the_first(
    tmp_path, module
):
    async with (
        running_service(module, data_dir=tmp_path) as first,
        grpc.aio.insecure_channel(first.address) as channel,
    ):
        # A deadline short of the test's: a second service that serves is killed
        # and fails the test rather than timing it out.
        second = await run_to_exit(
            sys.executable, "-m", module, "--port", "0", "--data-dir", str(tmp_path), deadline=20
        )

        assert await health_probe.check(channel, "") == health_probe.SERVING
        (line,) = plain_lines(second.stderr)
        assert f"pid {first.process.pid} on {socket.gethostname()}" in line
        assert f"{STORES[module]}.lock" in line
        assert second.returncode != 0
        assert b'"serving"' not in second.stderr


@pytest.mark.parametrize("module", STORES)
async def test_a_taken_port_stops_a_service_before_it_reads_its_store(tmp_path, module):
    # A file no store can read: a service that opened it would say so, and stop
    # on the store rather than on the port.
    database = tmp_path / f"{STORES[module]}.sqlite3"
    database.write_bytes(b"not a database, but someone's data " * 100)
    before = sorted(path.name for path in tmp_path.iterdir())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = await run_to_exit(
            sys.executable, "-m", module, "--port", str(port), "--data-dir", str(tmp_path)
        )

    assert finished.returncode != 0
    # gRPC's own log adds a line about the bind; the service says why it stops.
    (line,) = [line for line in plain_lines(finished.stderr) if "cannot start" in line]
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert database.read_bytes() == b"not a database, but someone's data " * 100
    after = sorted(path.name for path in tmp_path.iterdir())
    assert after == sorted([*before, f"{STORES[module]}.lock"])
