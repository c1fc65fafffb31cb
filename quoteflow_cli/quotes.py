"""quoteflow quote submit | watch | get | review | cancel."""

import argparse
import contextlib
import datetime
from collections.abc import Callable

from rich.text import Text

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc
from quoteflow_cli.command import Commands, add_command
from quoteflow_cli.connection import Clients, Service
from quoteflow_cli.errors import UsageError
from quoteflow_cli.exit_codes import ExitCode
from quoteflow_cli.output import Output, message_data
from quoteflow_cli.submissions import (
    PRIORITY_CHOICES,
    add_submission_options,
    enum_name,
    submission_from_options,
)
from quoteflow_cli.views import label, quote_detail, quote_state_line, seconds

QuoteService = Service[quote_service_pb2_grpc.QuoteServiceStub]

#: Where a watch stops: a final state, or AWAITING_REVIEW, which waits for a person
#: (`quoteflow quote review`) and could wait for days.
SETTLED = frozenset(
    {
        quote_pb.MESSAGE_STATUS_AWAITING_REVIEW,
        quote_pb.MESSAGE_STATUS_COMPLETED,
        quote_pb.MESSAGE_STATUS_FAILED,
        quote_pb.MESSAGE_STATUS_CANCELLED,
        quote_pb.MESSAGE_STATUS_REJECTED,
    }
)
UNSUCCESSFUL = frozenset(
    {
        quote_pb.MESSAGE_STATUS_FAILED,
        quote_pb.MESSAGE_STATUS_CANCELLED,
        quote_pb.MESSAGE_STATUS_REJECTED,
    }
)


def register(commands: Commands) -> None:
    submit_parser = add_command(
        commands,
        "submit",
        submit,
        help="submit a quote (queued, or priced at once with --sync)",
        description=(
            "Queue a quote (SubmitQuote) and print its id, queue position and estimate;\n"
            "--wait then watches it until it settles. --sync prices it at once instead\n"
            "(RunQuote) and prints the result."
        ),
    )
    add_submission_options(submit_parser)
    submit_parser.add_argument(
        "--priority",
        choices=PRIORITY_CHOICES,
        help="default: high for coverage above 500,000 or below 100,000, else normal",
    )
    submit_parser.add_argument(
        "--agentic", action="store_true", help="price with the step-by-step underwriting pipeline"
    )
    submit_parser.add_argument(
        "--request-id",
        metavar="ID",
        default="",
        help="idempotency key: a repeat answers with the first quote",
    )
    submit_parser.add_argument(
        "--fairness-key",
        metavar="KEY",
        default="",
        help="whose work it is (a tenant, a broker): within a priority, keys take turns",
    )
    submit_parser.add_argument(
        "--fairness-weight",
        metavar="W",
        type=float,
        help="the key's share of the turns (default 1)",
    )
    schedule = submit_parser.add_mutually_exclusive_group()
    schedule.add_argument(
        "--delay", metavar="SECONDS", type=float, help="price it no sooner than this from now"
    )
    schedule.add_argument(
        "--at", metavar="TIME", help="price it no sooner than this ISO 8601 time (with a zone)"
    )
    mode = submit_parser.add_mutually_exclusive_group()
    mode.add_argument("--wait", action="store_true", help="watch the queued quote until it settles")
    mode.add_argument("--sync", action="store_true", help="price at once (RunQuote)")

    watch_parser = add_command(
        commands,
        "watch",
        watch,
        help="print each state of a quote until it settles",
        description=(
            "Print each state of a quote as it changes (WatchMessage) until it is final\n"
            "or awaits review. With --json, one JSON object per state, one per line."
        ),
    )
    watch_parser.add_argument("id", help="the quote's id")

    get_parser = add_command(commands, "get", get, help="show a quote")
    get_parser.add_argument("id", help="the quote's id")

    review_parser = add_command(
        commands, "review", review, help="approve or reject a quote awaiting review"
    )
    review_parser.add_argument("id", help="the quote's id")
    decision = review_parser.add_mutually_exclusive_group(required=True)
    decision.add_argument("--approve", action="store_true", help="the quote stands")
    decision.add_argument("--reject", action="store_true", help="the quote is refused")
    review_parser.add_argument("--reviewer", required=True, help="who decides")
    review_parser.add_argument("--note", default="", help="a note for the record")

    cancel_parser = add_command(commands, "cancel", cancel, help="cancel a quote")
    cancel_parser.add_argument("id", help="the quote's id")

    limit_parser = add_command(
        commands,
        "rate-limit",
        rate_limit,
        help="limit how fast one fairness key's quotes start (SetRateLimit)",
        description=(
            "Limit how fast the quotes of one fairness key start, on every replica: at\n"
            "most --burst at once, then --per-second on average; its quotes wait, never\n"
            "fail. --lift removes the limit."
        ),
    )
    limit_parser.add_argument("key", help='the fairness key ("" for quotes without one)')
    how = limit_parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--per-second", type=float, help="quotes started a second, on average")
    how.add_argument("--lift", action="store_true", help="remove the key's limit")
    limit_parser.add_argument(
        "--burst", type=int, default=0, help="quotes that may start at once (default: the rate)"
    )


def outcome(message: quote_pb.QueueMessage) -> ExitCode:
    return ExitCode.FAILED if message.status in UNSUCCESSFUL else ExitCode.OK


async def watch_until_settled(
    quote: QuoteService,
    message_id: str,
    on_state: Callable[[quote_pb.QueueMessage], None] = lambda message: None,
) -> quote_pb.QueueMessage:
    """Follow a quote's states, each passed to on_state; answer the settled one."""
    last: quote_pb.QueueMessage | None = None
    states = quote.stream(quote.stub.WatchMessage, quote_pb.WatchMessageRequest(id=message_id))
    async with contextlib.aclosing(states):
        async for response in states:
            last = response.message
            on_state(last)
            if last.status in SETTLED:
                break
    # WatchMessage ends only after a final state; were it to end sooner, the
    # quote's outcome is unknown, and must not pass for a success.
    if last is None or last.status not in SETTLED:
        raise RuntimeError(f"the watch of quote {message_id} ended before the quote settled")
    return last


async def submit(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    quote = clients.quote
    submission = submission_from_options(args)
    priority = enum_name(quote_pb.Priority, args.priority) if args.priority else None
    if args.sync:
        if args.request_id:
            raise UsageError("--request-id applies to queued quotes; RunQuote (--sync) has none")
        request = quote_pb.RunQuoteRequest(
            submission=submission,
            use_agentic=args.agentic,
            priority=priority,
            fairness_key=args.fairness_key,
        )
        # Sent as asked, for the service to refuse: RunQuote prices now.
        _set_schedule(request, args)
        ran = await quote.call(quote.stub.RunQuote, request)
        out.emit(message_data(ran), quote_detail(ran.message))
        return outcome(ran.message)
    queued = await quote.call(
        quote.stub.SubmitQuote,
        _with_schedule(
            quote_pb.SubmitQuoteRequest(
                submission=submission,
                use_agentic=args.agentic,
                priority=priority,
                request_id=args.request_id,
                fairness_key=args.fairness_key,
                fairness_weight=args.fairness_weight,
            ),
            args,
        ),
    )
    message = queued.message
    out.emit(
        message_data(queued),
        Text.assemble(
            "queued quote ",
            (message.id, "bold"),
            f": position {queued.queue_position}, priority "
            f"{label(quote_pb.Priority, message.priority)}, "
            f"estimated {seconds(queued.estimated_processing_time)}",
        ),
    )
    if not args.wait:
        return ExitCode.OK
    return outcome(await _follow(quote, message.id, out))


def _with_schedule(
    request: quote_pb.SubmitQuoteRequest, args: argparse.Namespace
) -> quote_pb.SubmitQuoteRequest:
    _set_schedule(request, args)
    return request


def _set_schedule(
    request: quote_pb.SubmitQuoteRequest | quote_pb.RunQuoteRequest, args: argparse.Namespace
) -> None:
    """Set the request's delay or schedule_time from --delay or --at."""
    if args.delay is not None:
        request.delay.FromTimedelta(datetime.timedelta(seconds=args.delay))
    elif args.at is not None:
        try:
            at = datetime.datetime.fromisoformat(args.at)
        except ValueError:
            raise UsageError(f"--at: not an ISO 8601 time: {args.at!r}") from None
        if at.tzinfo is None:
            raise UsageError(f"--at: give the time's zone (say, {args.at}Z or +01:00)")
        request.schedule_time.FromDatetime(at)


async def rate_limit(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    quote = clients.quote
    request = quote_pb.SetRateLimitRequest(fairness_key=args.key)
    if not args.lift:
        request.per_second, request.burst = args.per_second, args.burst
    answer = await quote.call(quote.stub.SetRateLimit, request)
    shown = (
        f"key {answer.fairness_key!r}: no rate limit"
        if answer.per_second == 0
        else f"key {answer.fairness_key!r}: {answer.per_second:g} a second, burst {answer.burst}"
    )
    out.emit(message_data(answer), Text(shown))
    return ExitCode.OK


async def watch(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    return outcome(await _follow(clients.quote, args.id, out))


async def get(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    quote = clients.quote
    got = await quote.call(quote.stub.GetMessage, quote_pb.GetMessageRequest(id=args.id))
    out.emit(message_data(got), quote_detail(got.message))
    return outcome(got.message)


async def review(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    quote = clients.quote
    decision = quote_pb.REVIEW_DECISION_APPROVE if args.approve else quote_pb.REVIEW_DECISION_REJECT
    reviewed = await quote.call(
        quote.stub.ReviewQuote,
        quote_pb.ReviewQuoteRequest(
            id=args.id, decision=decision, reviewer=args.reviewer, note=args.note
        ),
    )
    out.emit(message_data(reviewed), quote_detail(reviewed.message))
    return ExitCode.OK


async def cancel(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    quote = clients.quote
    cancelled = await quote.call(
        quote.stub.CancelMessage, quote_pb.CancelMessageRequest(id=args.id)
    )
    out.emit(message_data(cancelled), quote_detail(cancelled.message))
    return ExitCode.OK


async def _follow(quote: QuoteService, message_id: str, out: Output) -> quote_pb.QueueMessage:
    """Watch a quote for people (a line per state under a spinner, then the details)
    or for scripts (a WatchMessageResponse per line)."""
    with out.status(f"watching quote {message_id}") as spinner:

        def show(message: quote_pb.QueueMessage) -> None:
            out.emit(
                message_data(quote_pb.WatchMessageResponse(message=message)),
                quote_state_line(message),
            )
            if spinner is not None:
                spinner.update(
                    f"quote {message_id}: {label(quote_pb.MessageStatus, message.status)}"
                )

        settled = await watch_until_settled(quote, message_id, show)
    out.show(quote_detail(settled))
    return settled
