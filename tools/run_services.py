"""`make run`: start services as processes in the foreground; Ctrl-C stops them all.

Each service runs in a session of its own, so the terminal's Ctrl-C reaches only
this supervisor, which passes one SIGTERM to each service: one signal means a
graceful drain, while a second would cut the grace period short. A closed
terminal (SIGHUP) stops them the same way. Each line a service logs is prefixed
with its name. If one service exits on its own, the others are stopped and the
supervisor exits non-zero. If the supervisor itself dies, even by SIGKILL, the
services notice and drain (service_runtime.supervision), so none is left
holding its port. If the process that started the supervisor (make) dies, even
by SIGKILL, the supervisor notices within PARENT_WATCH_SECONDS that it was
handed to another parent and stops the services as SIGTERM would.
"""

import argparse
import asyncio
import os
import signal
import sys

from service_runtime.supervision import SUPERVISOR_FD_VARIABLE

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: How often the supervisor checks that the process that started it lives.
PARENT_WATCH_SECONDS = 0.2


async def _relay(name: str, stream: asyncio.StreamReader) -> None:
    prefix = f"[{name}] ".encode()
    while line := await stream.readline():
        sys.stderr.buffer.write(prefix + line)
        sys.stderr.buffer.flush()


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    # A polled getppid() rather than Linux's PR_SET_PDEATHSIG: it works on
    # every POSIX system, and it sees a parent that died before the watch began.
    while os.getppid() == parent:
        try:
            async with asyncio.timeout(PARENT_WATCH_SECONDS):
                await stop.wait()
            return  # stopping already, for another reason
        except TimeoutError:
            pass
    print("[supervisor] the process that started me is gone; stopping", file=sys.stderr)
    stop.set()


async def supervise(modules: list[str], parent: int) -> int:
    # Only this process holds the write end, and never writes: the services
    # see end of file on theirs once it is gone, however it ends.
    watched, held = os.pipe()
    children: dict[str, asyncio.subprocess.Process] = {}
    relays = []
    try:
        for module in modules:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                pass_fds=(watched,),
                env={**os.environ, SUPERVISOR_FD_VARIABLE: str(watched)},
            )
            assert child.stderr is not None
            children[module] = child
            relays.append(asyncio.create_task(_relay(module, child.stderr)))
    finally:
        os.close(watched)

    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop_requested.set)
    waits = {asyncio.create_task(child.wait()): name for name, child in children.items()}
    stopping = asyncio.create_task(stop_requested.wait())
    watching = asyncio.create_task(_watch_parent(parent, stop_requested))
    done, _ = await asyncio.wait([*waits, stopping], return_when=asyncio.FIRST_COMPLETED)
    unexpected = [waits[task] for task in done if task in waits]
    for name in unexpected:
        print(f"[supervisor] {name} exited on its own; stopping the others", file=sys.stderr)
    for child in children.values():
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(*(child.wait() for child in children.values()))
    await asyncio.gather(*relays)
    if unexpected:
        for name, code in zip(children, codes, strict=True):
            print(f"[supervisor] {name} ended with exit code {code}", file=sys.stderr)
    stopping.cancel()
    watching.cancel()
    os.close(held)
    return 1 if unexpected or any(codes) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="+", help="service modules, run as python -m MODULE")
    parent = os.getppid()
    sys.exit(asyncio.run(supervise(parser.parse_args().modules, parent)))


if __name__ == "__main__":
    main()
