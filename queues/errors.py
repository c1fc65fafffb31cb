"""Errors the queue library raises, named for what went wrong.

Each carries what a caller needs to answer precisely: the service layer maps
them to gRPC status codes (service_runtime.errors) without parsing messages.
"""


class QueueError(Exception):
    """Base of every error the queue library raises on purpose."""


class TaskFailedError(QueueError):
    """A task function's failure that it foresaw and explains in its message:
    the requestor records and logs it in one line, with no traceback, since a caller
    can cause it at will and each traceback would cost the log kilobytes."""


class NotFoundError(QueueError):
    """The named item does not exist, or was removed after its retention."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        #: What was looked up, for example "message" or "task".
        self.kind = kind
        #: The id that was not found.
        self.key = key


class ExpiredError(NotFoundError):
    """The named item existed and was removed; its id is remembered, and refused, for a while."""

    def __init__(self, kind: str, key: str) -> None:
        # NotFoundError's words would say it never was.
        QueueError.__init__(self, f"{kind} {key!r} was removed and no longer exists")
        self.kind = kind
        self.key = key


class InvalidStateError(QueueError):
    """The item exists but its state does not allow the operation."""

    def __init__(self, kind: str, key: str, state: str, operation: str) -> None:
        super().__init__(f"cannot {operation} {kind} {key!r}: it is {state}")
        self.kind = kind
        self.key = key
        #: The state that forbids the operation.
        self.state = state
        self.operation = operation


class QueueFullError(QueueError):
    """The queue holds as many unfinished items as it may; nothing was added."""

    def __init__(self, max_size: int, retry_after: float) -> None:
        super().__init__(f"queue is full ({max_size} unfinished messages); retry later")
        self.max_size = max_size
        #: Seconds after which a retry is likely to be accepted.
        self.retry_after = retry_after


class WatchLimitError(QueueError):
    """As many ids with nothing in them yet are watched as may be; the watch was refused."""

    def __init__(self, limit: int, retry_after: float) -> None:
        super().__init__(
            f"{limit} orders that do not exist yet are being watched, the most at once; retry later"
        )
        self.limit = limit
        #: Seconds after which a retry is likely to be accepted.
        self.retry_after = retry_after


class RequestConflictError(QueueError):
    """A request id was reused for a different request (AIP-155)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"request_id {request_id!r} was already used for a different request")
        self.request_id = request_id


class BatchRequestConflictError(RequestConflictError):
    """A batch item's request_id was used before for a different submission."""

    def __init__(self, request_id: str, index: int) -> None:
        super().__init__(request_id)
        self.args = (f"item {index}: {self}",)
        #: The item's place in the batch, from 0.
        self.index = index


class ClosedError(QueueError):
    """The queue is shutting down and accepts no new work."""

    def __init__(self, kind: str = "queue") -> None:
        super().__init__(f"{kind} is shutting down and accepts no new work")
        self.kind = kind


class CursorOutOfRangeError(QueueError):
    """A resume cursor points past the end of a log: the log it came from is gone."""

    def __init__(self, kind: str, key: str, cursor: int, last: int) -> None:
        super().__init__(
            f"{kind} {key!r} has no event {cursor}: its last is {last}; "
            "the events this cursor came from were lost"
        )
        self.kind = kind
        self.key = key
        self.cursor = cursor
        self.last = last


class LostClaimError(QueueError):
    """A worker's claim no longer holds its job: the lease expired and another
    worker claimed it, or the job was cancelled. Its outcome was not written."""

    def __init__(self, job_id: str, token: int) -> None:
        super().__init__(f"job {job_id!r} is no longer held by attempt {token}")
        self.job_id = job_id
        self.token = token
