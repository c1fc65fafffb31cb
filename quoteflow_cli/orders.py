"""quoteflow order place | propose | complete | watch | result | cancel.

An order is placed with the requestor (a task that follows it), fed and
completed at the processor (proposals priced through the quote service), and
watched at the processor or through its task's result.
"""

import argparse
import asyncio
import contextlib

from rich.text import Text

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as requestor_pb
from quoteflow.requestor.v1 import requestor_service_pb2_grpc
from quoteflow_cli.command import Commands, add_command, count, positive_seconds
from quoteflow_cli.connection import Clients, Service
from quoteflow_cli.exit_codes import ExitCode
from quoteflow_cli.output import Output, message_data
from quoteflow_cli.submissions import add_submission_options, submission_from_options
from quoteflow_cli.views import event_line, label, task_detail

FINAL = frozenset(
    {
        requestor_pb.TASK_STATUS_SUCCEEDED,
        requestor_pb.TASK_STATUS_FAILED,
        requestor_pb.TASK_STATUS_CANCELLED,
        requestor_pb.TASK_STATUS_TIMED_OUT,
    }
)
UNSUCCESSFUL = FINAL - {requestor_pb.TASK_STATUS_SUCCEEDED}

PRIORITIES = {
    "high": requestor_pb.TASK_PRIORITY_HIGH,
    "medium": requestor_pb.TASK_PRIORITY_MEDIUM,
    "low": requestor_pb.TASK_PRIORITY_LOW,
}

# The requestor has no stream of a task's progress, so --follow asks for its
# result this often; proposals show within this of the requestor receiving them.
_POLL_SECONDS = 0.25


def register(commands: Commands) -> None:
    place_parser = add_command(
        commands,
        "place",
        place,
        help="place an order with the requestor",
        description=(
            "Place an order (PlaceOrder): the requestor queues a task that follows the\n"
            "order's proposals until the order completes. --follow then prints each\n"
            "proposal as the task collects it, and the result when the task ends (with\n"
            "--json: the PlaceOrderResponse, a WatchOrderResponse per proposal, then the\n"
            "GetTaskResultResponse, one per line)."
        ),
    )
    place_parser.add_argument("order", help="the order's id")
    place_parser.add_argument("--priority", choices=tuple(PRIORITIES), help="default: medium")
    place_parser.add_argument(
        "--timeout",
        dest="task_timeout",
        metavar="SECONDS",
        type=positive_seconds,
        help="the task's deadline: it ends TIMED_OUT if the order has not completed by then "
        "(not the call's deadline, which is the global --timeout before the command)",
    )
    place_parser.add_argument("--request-id", metavar="ID", default="", help="idempotency key")
    place_parser.add_argument(
        "--fairness-key", metavar="KEY", default="", help="whose order it is: keys take turns"
    )
    place_parser.add_argument(
        "--follow", action="store_true", help="print proposals as they arrive, until the task ends"
    )

    propose_parser = add_command(
        commands, "propose", propose, help="submit a proposal for an order to the processor"
    )
    propose_parser.add_argument("order", help="the order's id")
    propose_parser.add_argument("proposal", help="the proposal's id, unique within the order")
    add_submission_options(propose_parser)
    propose_parser.add_argument(
        "--agentic", action="store_true", help="price with the step-by-step underwriting pipeline"
    )
    propose_parser.add_argument("--request-id", metavar="ID", default="", help="idempotency key")
    propose_parser.add_argument(
        "--fairness-key",
        metavar="KEY",
        default="",
        help="the quote's fairness key (default: the order)",
    )

    complete_parser = add_command(
        commands,
        "complete",
        complete,
        help="complete an order",
        description=(
            "Complete an order (CompleteOrder): answered once every proposal accepted\n"
            "before has its event, so a large order may need a longer global --timeout."
        ),
    )
    complete_parser.add_argument("order", help="the order's id")

    watch_parser = add_command(
        commands,
        "watch",
        watch,
        help="print an order's events until it completes",
        description=(
            "Print every event of an order (WatchOrder at the processor), then new ones as\n"
            "they come, until the order-completed event."
        ),
    )
    watch_parser.add_argument("order", help="the order's id")
    watch_parser.add_argument(
        "--after",
        metavar="N",
        type=count(0),
        default=0,
        help="only events after this sequence number",
    )

    result_parser = add_command(commands, "result", result, help="show a task and its proposals")
    result_parser.add_argument("task_id", help="the task's id, from order place")

    cancel_parser = add_command(commands, "cancel", cancel, help="cancel a task")
    cancel_parser.add_argument("task_id", help="the task's id, from order place")


def outcome(task: requestor_pb.TaskResult) -> ExitCode:
    return ExitCode.FAILED if task.status in UNSUCCESSFUL else ExitCode.OK


async def place(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    requestor = clients.requestor
    request = requestor_pb.PlaceOrderRequest(
        order_req_id=args.order,
        priority=PRIORITIES[args.priority] if args.priority else None,
        request_id=args.request_id,
        fairness_key=args.fairness_key,
    )
    if args.task_timeout is not None:
        request.timeout.FromNanoseconds(round(args.task_timeout * 1e9))
    placed = await requestor.call(requestor.stub.PlaceOrder, request)
    out.emit(
        message_data(placed),
        Text.assemble(
            f"placed order {args.order}: task ",
            (placed.task_id, "bold"),
            f", {placed.queue_position} tasks ahead of it",
        ),
    )
    if not args.follow:
        return ExitCode.OK
    return outcome(await _follow(requestor, placed.task_id, out))


async def propose(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    processor = clients.processor
    accepted = await processor.call(
        processor.stub.SubmitProposal,
        processor_pb.SubmitProposalRequest(
            order_req_id=args.order,
            proposal_id=args.proposal,
            submission=submission_from_options(args),
            use_agentic=args.agentic,
            request_id=args.request_id,
            fairness_key=args.fairness_key,
        ),
    )
    said = (
        "was already accepted; it is priced once"
        if accepted.duplicate
        else "accepted; it is being priced"
    )
    out.emit(message_data(accepted), Text(f"proposal {args.proposal} of order {args.order} {said}"))
    return ExitCode.OK


async def complete(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    processor = clients.processor
    completed = await processor.call(
        processor.stub.CompleteOrder, processor_pb.CompleteOrderRequest(order_req_id=args.order)
    )
    out.emit(message_data(completed), event_line(completed.event))
    return ExitCode.OK


async def watch(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    processor = clients.processor
    events = processor.stream(
        processor.stub.WatchOrder,
        processor_pb.WatchOrderRequest(order_req_id=args.order, after_sequence=args.after),
    )
    with out.status(f"watching order {args.order}"):
        async with contextlib.aclosing(events):
            async for response in events:
                out.emit(message_data(response), event_line(response.event))
    return ExitCode.OK


async def result(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    requestor = clients.requestor
    got = await requestor.call(
        requestor.stub.GetTaskResult, requestor_pb.GetTaskResultRequest(task_id=args.task_id)
    )
    out.emit(message_data(got), task_detail(got.result))
    return outcome(got.result)


async def cancel(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    requestor = clients.requestor
    cancelled = await requestor.call(
        requestor.stub.CancelTask, requestor_pb.CancelTaskRequest(task_id=args.task_id)
    )
    out.emit(message_data(cancelled), task_detail(cancelled.result))
    return ExitCode.OK


async def _follow(
    requestor: Service[requestor_service_pb2_grpc.RequestorServiceStub], task_id: str, out: Output
) -> requestor_pb.TaskResult:
    """Print each proposal as the task collects it, then the task once it has ended.

    The task's result, not the processor's stream, is followed: it is what the
    order's requester gets, each proposal exactly once, and it also ends when
    the task fails or times out before the order completes.
    """
    request = requestor_pb.GetTaskResultRequest(task_id=task_id)
    shown = 0
    with out.status(f"following task {task_id}") as spinner:
        while True:
            got: requestor_pb.GetTaskResultResponse = await requestor.call(
                requestor.stub.GetTaskResult, request
            )
            task = got.result
            for event in task.proposals:
                if event.sequence > shown:
                    out.emit(
                        message_data(processor_pb.WatchOrderResponse(event=event)),
                        event_line(event),
                    )
                    shown = event.sequence
            if task.status in FINAL:
                break
            if spinner is not None:
                status = label(requestor_pb.TaskStatus, task.status)
                spinner.update(f"task {task_id}: {status}, {len(task.proposals)} proposals")
            await asyncio.sleep(_POLL_SECONDS)
    out.emit(message_data(requestor_pb.GetTaskResultResponse(result=task)), task_detail(task))
    return task
