"""Following one order's event stream from the processor until the order completes.

The progress lives in an OrderProgress the caller owns and is updated as each
event arrives, so what was collected outlives the follow itself: a task that is
cancelled or cut at its deadline keeps every event it had received.

A lost stream is reopened, with capped backoff, for as long as the caller lets
the follow run: the task's deadline, not a count of drops, decides when the
processor has been away too long.
"""

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from queues.backoff import Backoff
from queues.errors import TaskFailedError
from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.processor.v1 import processor_service_pb2_grpc as processor_grpc
from service_runtime.downstream import Downstream
from service_runtime.errors import DownstreamError, ForwardedError
from service_runtime.rpc_logging import FIELDS_ATTRIBUTE

logger = logging.getLogger("requestor_svc.order_follower")

_PROPOSAL_KINDS = frozenset(
    {processor_pb.ORDER_EVENT_KIND_PROPOSAL_NEW, processor_pb.ORDER_EVENT_KIND_PROPOSAL_FAILED}
)

#: Most bytes of proposal events one task keeps. A task's result carries them
#: all in one GetTaskResult or CancelTask answer, which must stay under gRPC's
#: default 4 MiB; the rest of the answer (ids and an error message the id
#: grammar and the processor bound, the submission the quote service's limits
#: bound, a few numbers and timestamps: under 20 kB) fits in the 64 KiB left.
#: An order at the processor's proposal cap with the largest events the
#: services make (about 3.3 MB) fits, so this fails only a processor
#: configured with a higher cap.
MAX_PROPOSAL_BYTES = 4 * 1024 * 1024 - 64 * 1024

# Answers after which the same stream is worth opening again: the processor is
# away, or (RESOURCE_EXHAUSTED) watches too many orders that have not started.
_RETRIED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


@dataclass
class OrderProgress:
    """What a task has received of its order so far."""

    order_req_id: str
    #: PROPOSAL_NEW and PROPOSAL_FAILED events, in sequence order, each once.
    proposals: list[processor_pb.OrderEvent] = field(default_factory=list)
    #: The sequence of the last event received: the cursor to resume from.
    last_sequence: int = 0
    #: How often the stream was opened again after it was lost.
    reconnects: int = 0
    #: ORDER_COMPLETED was received: nothing more will come.
    completed: bool = False
    #: The serialized size of proposals, held under MAX_PROPOSAL_BYTES.
    proposal_bytes: int = 0

    def reconnected(self) -> None:
        """The stream was opened again after it was lost."""
        self.reconnects += 1

    @property
    def started(self) -> bool:
        """The order has had an event."""
        return self.last_sequence > 0

    def accept(self, event: processor_pb.OrderEvent) -> bool:
        """Take event unless it is one already received; True if it was new.
        ResultTooLargeError, taking nothing, for a proposal that would bring
        proposal_bytes past MAX_PROPOSAL_BYTES."""
        # A reopened stream starts after last_sequence, so anything at or below
        # it is a repeat, and taking it would list a proposal twice.
        if event.sequence <= self.last_sequence:
            return False
        if event.kind in _PROPOSAL_KINDS:
            size = event.ByteSize()
            if self.proposal_bytes + size > MAX_PROPOSAL_BYTES:
                raise ResultTooLargeError(
                    f"order {self.order_req_id!r} has more proposals than one task result "
                    f"can carry: event {event.sequence} would bring them past "
                    f"{MAX_PROPOSAL_BYTES} bytes; the task keeps the first "
                    f"{len(self.proposals)} ({self.proposal_bytes} bytes)"
                )
            self.proposals.append(event)
            self.proposal_bytes += size
        elif event.kind == processor_pb.ORDER_EVENT_KIND_ORDER_COMPLETED:
            self.completed = True
        self.last_sequence = event.sequence
        return True

    def snapshot(self) -> "OrderProgress":
        return dataclasses.replace(self, proposals=list(self.proposals))


class FollowError(TaskFailedError):
    """The order could not be followed to its end."""


class OrderEventsLostError(FollowError):
    """The processor no longer has the events the task's cursor came from."""


class OrderNotFoundError(FollowError):
    """The processor has no such order any more: it expired or was removed."""


class ResultTooLargeError(FollowError):
    """The order has more proposals than one task result can carry."""


def _started(progress: OrderProgress) -> bool:
    return progress.started


def _completed(progress: OrderProgress) -> bool:
    return progress.completed


class OrderFollower:
    """Follows orders through the processor's WatchOrder, reopening lost streams."""

    def __init__(
        self, processor: Downstream, *, watch_max_seconds: float, backoff: Backoff
    ) -> None:
        self._processor = processor
        self._stub = processor_grpc.ProcessorServiceStub(processor.channel)
        self._watch_max_seconds = watch_max_seconds
        self._backoff = backoff

    async def follow(self, progress: OrderProgress) -> OrderProgress:
        """Collect the order's events into progress until ORDER_COMPLETED."""
        await self._follow_until(progress, _completed)
        return progress

    async def await_start(self, progress: OrderProgress) -> None:
        """Return once the order has had its first event (taken into progress)."""
        await self._follow_until(progress, _started)

    async def _follow_until(
        self, progress: OrderProgress, done: Callable[[OrderProgress], bool]
    ) -> None:
        """Collect the order's events into progress until done(progress).

        A stream that drops (UNAVAILABLE or RESOURCE_EXHAUSTED, or ending
        before the order completed) is reopened from progress.last_sequence
        after a backoff, growing to its cap while the drops bring nothing new,
        until the caller stops the follow; one that ran out its
        watch_max_seconds is reopened at once. Raises OrderNotFoundError when
        the processor answers NOT_FOUND, OrderEventsLostError when it answers
        OUT_OF_RANGE, ResultTooLargeError from progress.accept, and the
        translated error for any other failure.
        """
        # Drops in a row that brought no new event: the backoff grows with them,
        # since a stream cut after new events made progress.
        failures = 0
        while not done(progress):
            before = progress.last_sequence
            try:
                await self._watch(progress, done)
            except DownstreamError as error:
                if error.downstream_code is grpc.StatusCode.DEADLINE_EXCEEDED:
                    # The stream lived out its own deadline: nothing is wrong.
                    failures = 0
                    progress.reconnected()
                    continue
                if error.downstream_code not in _RETRIED:
                    raise
                drop = str(error)
            except ForwardedError as error:
                self._raise_if_gone(progress, error)
                if error.status.code not in _RETRIED:
                    raise
                drop = str(error)
            else:
                if done(progress):
                    return
                drop = "the stream ended before the order completed"
            failures = 1 if progress.last_sequence > before else failures + 1
            # Once per outage at WARNING: a long one would otherwise log a line
            # per task every few seconds. The readiness check reports it too.
            logger.log(
                logging.WARNING if failures == 1 else logging.DEBUG,
                "order stream dropped; reconnecting",
                extra={
                    FIELDS_ATTRIBUTE: {
                        "order_req_id": progress.order_req_id,
                        "after_sequence": progress.last_sequence,
                        "failures": failures,
                        "reason": drop,
                    }
                },
            )
            await asyncio.sleep(self._backoff.delay(failures))
            progress.reconnected()

    def _raise_if_gone(self, progress: OrderProgress, error: ForwardedError) -> None:
        """The FollowError for an answer saying the order's events are gone, if it is one."""
        code, details = error.status.code, error.status.details
        if code is grpc.StatusCode.NOT_FOUND:
            received = (
                f"the task received its events up to sequence {progress.last_sequence}"
                if progress.last_sequence
                else "the task received none of its events"
            )
            raise OrderNotFoundError(
                f"{self._processor.label} has no order {progress.order_req_id!r} any more "
                f"(it expired or was removed); {received}: {details}"
            ) from error
        if code is grpc.StatusCode.OUT_OF_RANGE:
            raise OrderEventsLostError(
                f"{self._processor.label} lost the events of order "
                f"{progress.order_req_id!r} (it restarted, or the order was removed): it has "
                f"nothing after sequence {progress.last_sequence} any more ({details})"
            ) from error

    async def _watch(self, progress: OrderProgress, done: Callable[[OrderProgress], bool]) -> None:
        """One WatchOrder stream from the cursor, until it ends or done(progress)."""
        request = processor_pb.WatchOrderRequest(
            order_req_id=progress.order_req_id, after_sequence=progress.last_sequence
        )
        # aclosing: leaving early must cancel the call now, not when the
        # generator happens to be collected.
        async with contextlib.aclosing(
            self._processor.stream(
                self._stub.WatchOrder, request, max_seconds=self._watch_max_seconds
            )
        ) as responses:
            async for response in responses:
                if progress.accept(response.event) and done(progress):
                    return
