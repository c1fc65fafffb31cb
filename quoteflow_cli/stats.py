"""quoteflow stats: the counters of all three services in one table."""

import argparse
import asyncio
from collections.abc import Awaitable
from typing import Any

from google.protobuf.message import Message
from rich.table import Table
from rich.text import Text

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as requestor_pb
from quoteflow_cli.command import Commands, add_command
from quoteflow_cli.connection import Clients, Service
from quoteflow_cli.errors import CallError
from quoteflow_cli.exit_codes import ExitCode
from quoteflow_cli.output import Output, message_data
from quoteflow_cli.views import label, when


def register(commands: Commands) -> None:
    add_command(
        commands,
        "stats",
        show_stats,
        help="the counters of the quote, processor and requestor services",
        description=(
            "The counters of all three services (each service's GetStats), asked at once.\n"
            "A service that cannot be reached is shown as such; the others still are."
        ),
    )


async def show_stats(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    quote, processor, requestor = clients.quote, clients.processor, clients.requestor
    answers = await asyncio.gather(
        _answer(quote.call(quote.stub.GetStats, quote_pb.GetStatsRequest())),
        _answer(processor.call(processor.stub.GetStats, processor_pb.GetStatsRequest())),
        _answer(requestor.call(requestor.stub.GetStats, requestor_pb.GetStatsRequest())),
    )
    services: tuple[Service[Any], ...] = (quote, processor, requestor)
    data: dict[str, Any] = {}
    table = Table(title="quoteflow", title_justify="left")
    for column in ("service", "counter", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for service, answer in zip(services, answers, strict=True):
        if isinstance(answer, CallError):
            data[service.name] = {"error": answer.to_json()}
            rows = [("unreachable" if answer.unreachable else "error", ""), (answer.line(), "")]
            style = "red"
        else:
            data[service.name] = message_data(answer)
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
    out.emit(data, table)
    failures = [answer for answer in answers if isinstance(answer, CallError)]
    for failure in failures:
        out.error(failure)
    return failures[0].exit_code if failures else ExitCode.OK


async def _answer(call: Awaitable[Message]) -> Message | CallError:
    try:
        return await call
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
