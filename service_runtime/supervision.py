"""Dying with the supervisor: a service that `make run` started stops when it goes.

The supervisor (tools/run_services.py) gives each service the read end of a
pipe whose write end only it holds, and never writes to it. However the
supervisor ends, SIGKILL included, the kernel closes that end, and the
service's read sees end of file: it then sends itself SIGTERM, which drains it
as any SIGTERM would (or, before it serves, ends it). A pipe rather than
Linux's PR_SET_PDEATHSIG: it works on every POSIX system, and it cannot miss a
supervisor that died before the service was ready to watch.
"""

import logging
import os
import signal
import threading

from service_runtime.rpc_logging import FIELDS_ATTRIBUTE

logger = logging.getLogger("service_runtime.supervision")

#: The environment variable naming the pipe's read end in a supervised service.
SUPERVISOR_FD_VARIABLE = "QUOTEFLOW_SUPERVISOR_FD"


def stop_with_supervisor() -> None:
    """If a supervisor passed its pipe (SUPERVISOR_FD_VARIABLE), watch it from a
    thread and SIGTERM this process once the supervisor is gone."""
    # Popped, so nothing this process starts inherits the duty.
    named = os.environ.pop(SUPERVISOR_FD_VARIABLE, None)
    if named is None:
        return
    # A thread rather than the event loop: it watches during start-up too.
    threading.Thread(
        target=_terminate_at_end_of_file, args=(int(named),), name="supervisor-watch", daemon=True
    ).start()


def _terminate_at_end_of_file(fd: int) -> None:
    # The supervisor never writes, so the read returns only at end of file.
    while os.read(fd, 1):
        pass
    os.close(fd)
    logger.warning(
        "the supervisor is gone; stopping",
        extra={FIELDS_ATTRIBUTE: {"signal": signal.SIGTERM.name}},
    )
    os.kill(os.getpid(), signal.SIGTERM)
