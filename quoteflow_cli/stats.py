"""quoteflow stats: the counters of all three services in one table, once or, with
--watch, live until Ctrl-C."""

import argparse
import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from rich.console import RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.processor.v1 import processor_service_pb2_grpc
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc
from quoteflow.requestor.v1 import requestor_service_pb2 as requestor_pb
from quoteflow.requestor.v1 import requestor_service_pb2_grpc
from quoteflow_cli.command import Commands, add_command
from quoteflow_cli.connection import Clients, Service
from quoteflow_cli.errors import CallError, UsageError
from quoteflow_cli.exit_codes import ExitCode
from quoteflow_cli.output import PROGRAM, Output, message_data
from quoteflow_cli.views import label, when

StubT = TypeVar("StubT")

#: A service's GetStats answer, or why there is none.
Answer = Message | CallError
#: The three services, in the order the table shows them.
Services = tuple[
    Service[quote_service_pb2_grpc.QuoteServiceStub],
    Service[processor_service_pb2_grpc.ProcessorServiceStub],
    Service[requestor_service_pb2_grpc.RequestorServiceStub],
]

#: --watch's seconds between refreshes: the default, and the bounds (WatchStats' own).
DEFAULT_INTERVAL = 2.0
INTERVAL_RANGE = (0.1, 60.0)


def register(commands: Commands) -> None:
    parser = add_command(
        commands,
        "stats",
        show_stats,
        help="the counters of the quote, processor and requestor services",
        description=(
            "The counters of all three services (each service's GetStats), asked at once.\n"
            "A service that cannot be reached is shown as such; the others still are.\n\n"
            "--watch keeps the table up to date, as top does, until Ctrl-C (exit 0): the\n"
            "quote service's row as its queue changes (WatchStats), the processor's and\n"
            "the requestor's asked again every --interval. A service that cannot be\n"
            "reached is asked again every interval, and shown again once it answers.\n"
            "With --json, one object per refresh, one per line, as `stats` prints it."
        ),
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="refresh the counters live until Ctrl-C",
    )
    parser.add_argument(
        "--interval",
        metavar="SECONDS",
        type=interval_seconds,
        help=f"with --watch, the seconds between refreshes, from {INTERVAL_RANGE[0]:g} to "
        f"{INTERVAL_RANGE[1]:g} (default {DEFAULT_INTERVAL:g})",
    )


def interval_seconds(text: str) -> float:
    """An argparse type: --watch's interval, within INTERVAL_RANGE."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    low, high = INTERVAL_RANGE
    # Written so that NaN is refused too.
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g} seconds; got {text}")
    return value


async def show_stats(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    if args.watch:
        interval = DEFAULT_INTERVAL if args.interval is None else args.interval
        return await watch_stats(interval, clients, out)
    if args.interval is not None:
        raise UsageError(f"stats: --interval applies to --watch (see {PROGRAM} stats --help)")
    services: Services = (clients.quote, clients.processor, clients.requestor)
    answers = await asyncio.gather(*(_answer(ask) for ask in _askers(services)))
    out.emit(stats_data(services, answers), stats_table(services, answers))
    failures = [answer for answer in answers if isinstance(answer, CallError)]
    for failure in failures:
        out.error(failure)
    return failures[0].exit_code if failures else ExitCode.OK


def stats_data(services: Sequence[Service[Any]], answers: Sequence[Answer]) -> dict[str, Any]:
    """The answers for scripts: one object keyed by service, an error in place of
    the counters of a service that did not answer."""
    return {
        service.name: (
            {"error": answer.to_json()} if isinstance(answer, CallError) else message_data(answer)
        )
        for service, answer in zip(services, answers, strict=True)
    }


def stats_table(
    services: Sequence[Service[Any]], answers: Sequence[Answer], *, note: str = ""
) -> Table:
    """The answers for people: a section of counters per service (or, for one that
    did not answer, why), under a title with the note, if any."""
    # The note is in the title, not a caption: a table taller than the terminal
    # loses its last lines, and a watch's time and interval must stay in sight.
    title = f"quoteflow  {note}" if note else "quoteflow"
    table = Table(title=title, title_justify="left")
    for column in ("service", "counter", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for service, answer in zip(services, answers, strict=True):
        if isinstance(answer, CallError):
            rows = [("unreachable" if answer.unreachable else "error", ""), (answer.line(), "")]
            style = "red"
        else:
            rows = _counters(answer)
            style = ""
        # The service's name on its first row, its address on the second.
        names: list[str | Text] = [service.name, Text(service.address, "dim")]
        for index, (counter, value) in enumerate(rows):
            table.add_row(
                names[index] if index < len(names) else "",
                Text(counter, style),
                value,
                end_section=index == len(rows) - 1,
            )
    return table


async def watch_stats(interval: float, clients: Clients, out: Output) -> int:
    """Show the counters again whenever an answer comes, until Ctrl-C: the quote
    service's as WatchStats streams them, the others' asked every interval."""
    services = _reconnecting((clients.quote, clients.processor, clients.requestor), interval)
    quote = services[0]
    # The latest answer of each service, in the order of services; None until it has one.
    latest: list[Answer | None] = [None] * len(services)
    changed = asyncio.Event()

    def put(index: int, answer: Answer) -> None:
        latest[index] = answer
        changed.set()

    askers = _askers(services)
    workers = [
        asyncio.create_task(_follow_quote(quote, interval, functools.partial(put, 0))),
        # Asked together, the two answer in one refresh rather than one each.
        asyncio.create_task(_poll({1: askers[1], 2: askers[2]}, interval, put)),
    ]
    for worker in workers:
        # A worker ends only by a bug; wake the loop below to raise it.
        worker.add_done_callback(lambda _: changed.set())
    try:
        with _display(out, interval) as show:
            while True:
                await changed.wait()
                changed.clear()
                for worker in workers:
                    if worker.done():
                        worker.result()
                answers = [answer for answer in latest if answer is not None]
                # The first refresh waits for every service's first answer (or failure).
                if len(answers) == len(services):
                    show(services, answers)
    except asyncio.CancelledError:
        # Ctrl-C, which asyncio.run turns into cancelling the command, is how a
        # watch ends, as q ends top: a success. uncancel() says it was handled.
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        return ExitCode.OK
    except KeyboardInterrupt:
        return ExitCode.OK
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for service in services:
            await service.close()


Show = Callable[[Sequence[Service[Any]], Sequence[Answer]], None]


@contextlib.contextmanager
def _display(out: Output, interval: float) -> Iterator[Show]:
    """Where a refresh goes: redrawn in place on a whole screen of its own, as top
    does, for people at a terminal; else one JSON line (--json) or one table after
    another (into a file or a pipe), each printed as it comes."""

    def note() -> str:
        return f"{datetime.now():%H:%M:%S}, every {interval:g} s"

    if out.json or not out.console.is_terminal:

        def emit(services: Sequence[Service[Any]], answers: Sequence[Answer]) -> None:
            table = stats_table(services, answers, note=note())
            out.emit(stats_data(services, answers), table)

        yield emit
        return
    waiting: RenderableType = Text("asking the services…", "dim")
    with Live(
        waiting,
        console=out.console,
        screen=True,
        # Redrawn when an answer comes, by the event loop: no refresh thread.
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as live:

        def redraw(services: Sequence[Service[Any]], answers: Sequence[Answer]) -> None:
            table = stats_table(services, answers, note=f"{note()}; Ctrl-C quits")
            live.update(table, refresh=True)

        yield redraw


async def _follow_quote(
    quote: Service[quote_service_pb2_grpc.QuoteServiceStub],
    interval: float,
    put: Callable[[Answer], None],
) -> None:
    """The quote service's counters as its queue changes, at most one answer per
    interval (WatchStats); a stream that cannot be opened, or breaks, is shown as
    such and opened again after the interval."""
    min_interval = Duration()
    min_interval.FromNanoseconds(round(interval * 1e9))
    request = quote_pb.WatchStatsRequest(min_interval=min_interval)
    failing = False
    while True:
        answers = quote.stream(quote.stub.WatchStats, request)
        try:
            async with contextlib.aclosing(answers):
                async for answer in answers:
                    failing = False
                    put(answer.stats)
        except CallError as error:
            # Once is enough: the polls' refreshes go on showing it, so a service
            # that stays down adds no refresh of its own every interval.
            if not failing:
                put(error)
            failing = True
        await asyncio.sleep(interval)


async def _poll(
    askers: dict[int, Callable[[], Awaitable[Message]]],
    interval: float,
    put: Callable[[int, Answer], None],
) -> None:
    """Ask every interval (after the last answers came), answers or failures alike."""
    while True:
        answers = await asyncio.gather(*(_answer(ask) for ask in askers.values()))
        for index, answer in zip(askers, answers, strict=True):
            put(index, answer)
        await asyncio.sleep(interval)


def _reconnecting(services: Services, interval: float) -> Services:
    """The services on channels of the watch's own, which try to connect again at
    least once an interval: with gRPC's default backoff, growing to two minutes, a
    service that comes back could go unseen for that long."""
    quote, processor, requestor = services
    return (
        _reconnecting_one(quote, quote_service_pb2_grpc.QuoteServiceStub, interval),
        _reconnecting_one(processor, processor_service_pb2_grpc.ProcessorServiceStub, interval),
        _reconnecting_one(requestor, requestor_service_pb2_grpc.RequestorServiceStub, interval),
    )


def _reconnecting_one(
    service: Service[StubT], make_stub: Callable[[grpc.aio.Channel], StubT], interval: float
) -> Service[StubT]:
    backoff_ms = round(interval * 1000)
    return Service(
        service.name,
        service.address,
        make_stub,
        service.timeout,
        channel_options=(
            *service.channel_options,
            ("grpc.initial_reconnect_backoff_ms", backoff_ms),
            ("grpc.max_reconnect_backoff_ms", backoff_ms),
        ),
        security=service.security,
    )


def _askers(services: Services) -> list[Callable[[], Awaitable[Message]]]:
    """Each service's GetStats, in the order of services (quote, processor, requestor)."""
    quote, processor, requestor = services
    return [
        lambda: quote.call(quote.stub.GetStats, quote_pb.GetStatsRequest()),
        lambda: processor.call(processor.stub.GetStats, processor_pb.GetStatsRequest()),
        lambda: requestor.call(requestor.stub.GetStats, requestor_pb.GetStatsRequest()),
    ]


async def _answer(ask: Callable[[], Awaitable[Message]]) -> Answer:
    # The call is made here, not by the caller: a watch cancelled before this
    # starts leaves no call made and never awaited.
    try:
        return await ask()
    except CallError as error:
        return error


def _counters(stats: Message) -> list[tuple[str, str]]:
    if isinstance(stats, quote_pb.GetStatsResponse):
        rows = [
            ("pending", f"{stats.pending_count:,}"),
            ("processing", f"{stats.processing_count:,}"),
            ("awaiting review", f"{stats.awaiting_review_count:,}"),
            ("completed", f"{stats.completed_count:,}"),
            ("failed", f"{stats.failed_count:,}"),
            ("rejected", f"{stats.rejected_count:,}"),
            ("cancelled", f"{stats.cancelled_count:,}"),
            ("dead letters", f"{stats.dead_letter_count:,}"),
            ("queue limit", f"{stats.max_size:,}"),
            ("workers", str(stats.workers)),
            ("oldest pending", when(stats.oldest_pending) or "-"),
            ("longest attempt", f"{stats.longest_processing_seconds:.1f} s"),
        ]
        rows += [
            (
                f"{label(quote_pb.Priority, p.priority)}: pending / processing",
                f"{p.pending_count:,} / {p.processing_count:,}",
            )
            for p in stats.by_priority
            if p.pending_count or p.processing_count
        ]
        rows += [
            (f"key {k.fairness_key or '(none)'}: pending", f"{k.pending_count:,}")
            for k in stats.busiest_keys
        ]
        return rows
    if isinstance(stats, processor_pb.GetStatsResponse):
        return [
            ("order queues", f"{stats.order_queues_count:,}"),
            ("events held", f"{stats.events_count:,}"),
            ("watchers", f"{stats.watchers_count:,}"),
            ("proposals being priced", f"{stats.proposals_in_flight:,}"),
        ]
    assert isinstance(stats, requestor_pb.GetStatsResponse)
    return [
        ("tasks queued", f"{stats.priority_queue_size:,}"),
        ("tasks running", f"{stats.active_tasks:,}"),
        ("finished tasks kept", f"{stats.completed_tasks:,}"),
        ("tasks at once, at most", f"{stats.max_concurrent_tasks:,}"),
    ]
