"""Following one order's event stream from the processor until the order completes.

The progress lives in an OrderProgress the caller owns and is updated as each
event arrives, so what was collected outlives the follow itself: a task that is
cancelled or cut at its deadline keeps every event it had received.
"""

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field

import grpc

from queues.backoff import Backoff
from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.processor.v1 import processor_service_pb2_grpc as processor_grpc
from service_runtime.downstream import Downstream
from service_runtime.errors import DownstreamError, ForwardedError
from service_runtime.rpc_logging import FIELDS_ATTRIBUTE

logger = logging.getLogger("requestor_svc.order_follower")

_PROPOSAL_KINDS = frozenset(
    {processor_pb.ORDER_EVENT_KIND_PROPOSAL_NEW, processor_pb.ORDER_EVENT_KIND_PROPOSAL_FAILED}
)


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

    def accept(self, event: processor_pb.OrderEvent) -> bool:
        """Take event unless it is one already received; True if it was new."""
        # A reopened stream starts after last_sequence, so anything at or below
        # it is a repeat, and taking it would list a proposal twice.
        if event.sequence <= self.last_sequence:
            return False
        self.last_sequence = event.sequence
        if event.kind in _PROPOSAL_KINDS:
            self.proposals.append(event)
        elif event.kind == processor_pb.ORDER_EVENT_KIND_ORDER_COMPLETED:
            self.completed = True
        return True

    def snapshot(self) -> "OrderProgress":
        return dataclasses.replace(self, proposals=list(self.proposals))


class FollowError(Exception):
    """The order could not be followed to its end."""


class OrderEventsLostError(FollowError):
    """The processor no longer has the events the task's cursor came from."""


class ProcessorUnreachableError(FollowError):
    """The stream kept dropping without bringing anything new."""


class OrderFollower:
    """Follows orders through the processor's WatchOrder, reopening lost streams."""

    def __init__(
        self,
        processor: Downstream,
        *,
        watch_max_seconds: float,
        max_reconnects: int,
        backoff: Backoff,
    ) -> None:
        self._processor = processor
        self._stub = processor_grpc.ProcessorServiceStub(processor.channel)
        self._watch_max_seconds = watch_max_seconds
        self._max_reconnects = max_reconnects
        self._backoff = backoff

    async def follow(self, progress: OrderProgress) -> OrderProgress:
        """Collect the order's events into progress until ORDER_COMPLETED.

        A stream that drops (UNAVAILABLE, or ending before the order completed)
        is reopened from progress.last_sequence after a backoff; one that ran
        out its watch_max_seconds is reopened at once. Raises
        ProcessorUnreachableError after more than max_reconnects drops in a row
        that brought no new event, OrderEventsLostError when the processor
        answers OUT_OF_RANGE, and the translated error for any other failure.
        """
        # Drops in a row that brought no new event: only those mean the
        # processor is away, since a stream cut after new events made progress.
        failures = 0
        while True:
            before = progress.last_sequence
            try:
                await self._watch(progress)
            except DownstreamError as error:
                if error.downstream_code is grpc.StatusCode.DEADLINE_EXCEEDED:
                    # The stream lived out its own deadline: nothing is wrong.
                    failures = 0
                    progress.reconnects += 1
                    continue
                if error.downstream_code is not grpc.StatusCode.UNAVAILABLE:
                    raise
                drop = str(error)
            except ForwardedError as error:
                if error.status.code is grpc.StatusCode.OUT_OF_RANGE:
                    raise OrderEventsLostError(
                        f"{self._processor.label} lost the events of order "
                        f"{progress.order_req_id!r} (it restarted): it has nothing after "
                        f"sequence {progress.last_sequence} any more ({error.status.details})"
                    ) from error
                raise
            else:
                if progress.completed:
                    return progress
                drop = "the stream ended before the order completed"
            failures = 1 if progress.last_sequence > before else failures + 1
            if failures > self._max_reconnects:
                raise ProcessorUnreachableError(
                    f"{self._processor.label} is unreachable: following order "
                    f"{progress.order_req_id!r}, gave up after {failures} drops in a row "
                    f"with no new event between them; last: {drop}"
                )
            logger.warning(
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
            progress.reconnects += 1

    async def _watch(self, progress: OrderProgress) -> None:
        """One WatchOrder stream from the cursor, until it ends or the order completes."""
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
                if progress.accept(response.event) and progress.completed:
                    return
