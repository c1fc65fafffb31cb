"""quoteflow dead-letters list | redrive."""

import argparse
import functools

from rich.text import Text

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow_cli.command import Commands, add_command, count
from quoteflow_cli.connection import Clients
from quoteflow_cli.errors import CallError, UsageError
from quoteflow_cli.exit_codes import ExitCode
from quoteflow_cli.output import Output, message_data
from quoteflow_cli.quotes import QuoteService
from quoteflow_cli.retry import DEFAULT_RETRIES, retrying_when_full
from quoteflow_cli.views import dead_letters_table

DEFAULT_PAGE_SIZE = 100
# The largest page the service gives; redrive --all reads with it.
_MAX_PAGE_SIZE = 1000


def register(commands: Commands) -> None:
    list_parser = add_command(
        commands, "list", list_dead_letters, help="list every dead-lettered quote, oldest first"
    )
    list_parser.add_argument(
        "--page-size",
        type=count(1),
        default=DEFAULT_PAGE_SIZE,
        help="quotes per call; every page is read (default %(default)s, at most 1,000)",
    )
    redrive_parser = add_command(
        commands,
        "redrive",
        redrive,
        help="put dead letters back in the queue",
        description=(
            "Put dead-lettered quotes back in the queue as pending, with their retry count\n"
            "reset (RedriveMessage): the ones named, or --all. A full queue is waited out\n"
            "(RetryInfo) up to --retries times. The exit code is that of the first quote\n"
            "that could not be redriven, 0 if every one was."
        ),
    )
    redrive_parser.add_argument("ids", nargs="*", metavar="ID", help="the quotes to redrive")
    redrive_parser.add_argument("--all", action="store_true", help="every dead letter")
    redrive_parser.add_argument(
        "--retries",
        type=count(0),
        default=DEFAULT_RETRIES,
        help="tries again per quote while the queue is full (default %(default)s)",
    )


async def list_dead_letters(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    messages = await _dead_letters(clients.quote, args.page_size)
    out.emit(
        {"messages": [message_data(message) for message in messages]},
        dead_letters_table(messages, title=f"{len(messages)} dead letters"),
    )
    return ExitCode.OK


async def redrive(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    quote = clients.quote
    if args.all == bool(args.ids):
        raise UsageError("name the quotes to redrive, or give --all (not both)")
    ids = args.ids or [message.id for message in await _dead_letters(quote, _MAX_PAGE_SIZE)]
    redriven: list[quote_pb.QueueMessage] = []
    failed: list[tuple[str, CallError]] = []
    for message_id in ids:
        request = quote_pb.RedriveMessageRequest(id=message_id)
        try:
            response = await retrying_when_full(
                functools.partial(quote.call, quote.stub.RedriveMessage, request),
                retries=args.retries,
            )
        except CallError as error:
            # No other quote would get through to an unreachable service either.
            if error.unreachable:
                raise
            failed.append((message_id, error))
        else:
            redriven.append(response.message)
    out.emit(
        {
            "redriven": [message_data(message) for message in redriven],
            "failed": [
                {"id": failed_id, "error": problem.to_json()} for failed_id, problem in failed
            ],
        },
        *(Text(f"redriven {message.id}: pending again") for message in redriven),
        Text(f"{len(redriven)} of {len(ids)} redriven"),
    )
    for _, problem in failed:
        out.error(problem)
    return failed[0][1].exit_code if failed else ExitCode.OK


async def _dead_letters(quote: QuoteService, page_size: int) -> list[quote_pb.QueueMessage]:
    """Every dead letter, following the page tokens to the last page."""
    messages: list[quote_pb.QueueMessage] = []
    token = ""
    while True:
        page = await quote.call(
            quote.stub.ListMessages,
            quote_pb.ListMessagesRequest(
                dead_lettered_only=True, page_size=page_size, page_token=token
            ),
        )
        messages.extend(page.messages)
        token = page.next_page_token
        if not token:
            return messages
