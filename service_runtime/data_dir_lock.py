"""One process per database: an exclusive lock taken before a service reads its store.

Two services on one SQLite file would both serve it, each from a queue of its
own that drifts from the other's, and price every message twice. So a service
takes an exclusive flock on <data_dir>/<name>.lock before it opens the store,
and holds it until it exits; the kernel releases it however the process ends,
kill -9 included, so a lock is never left stale. The file keeps the holder's
pid and host, for the one line that refuses a second service.
"""

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

# The holder's line is short; a longer file is not one this module wrote.
_HOLDER_MAX_BYTES = 256


class DataDirInUseError(OSError):
    """Another process holds the lock of the store this service would open."""


@contextlib.contextmanager
def locked_data_dir(data_dir: Path, name: str) -> Iterator[None]:
    """Hold the exclusive lock of store name in data_dir (created if missing)
    while the block runs. Raises DataDirInUseError, naming the holder, if
    another process holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirInUseError(
                f"the {name} store in {data_dir} is in use by {_holder(fd)} (lock {path}): "
                "stop that service, or give this one another data_dir"
            ) from None
        # The file is never removed: removing it would let a third process lock
        # a new file of that name while the second still holds the old one.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    # Empty only in the instant between the holder's lock and its write.
    text = os.pread(fd, _HOLDER_MAX_BYTES, 0).decode(errors="replace").strip()
    return text or "a process that has just started"
