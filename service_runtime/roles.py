"""Who may call what: the one table of every RPC of the three services and
the roles that may call it.

- submitter: submit and run quotes, read and watch messages, place orders,
  read tasks;
- reviewer: ReviewQuote;
- operator: cancel, redrive, list dead letters, CancelTask, stats;
- service: the calls the services make to one another (the processor to the
  quote service, the requestor to the processor).

Health and reflection are open to everyone (OPEN_SERVICES), so probes and
grpcurl work without a token.
"""

from types import MappingProxyType

SUBMITTER = "submitter"
REVIEWER = "reviewer"
OPERATOR = "operator"
SERVICE = "service"
ROLES = (SUBMITTER, REVIEWER, OPERATOR, SERVICE)

_QUOTE = "/quoteflow.quote.v1.QuoteService/"
_PROCESSOR = "/quoteflow.processor.v1.ProcessorService/"
_REQUESTOR = "/quoteflow.requestor.v1.RequestorService/"

#: The gRPC method path (/package.Service/Method) to the roles that may call it.
METHOD_ROLES: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {
        # The processor submits, watches and cancels the quotes that price its proposals.
        _QUOTE + "SubmitQuote": frozenset({SUBMITTER, SERVICE}),
        _QUOTE + "BatchSubmitQuotes": frozenset({SUBMITTER, SERVICE}),
        _QUOTE + "RunQuote": frozenset({SUBMITTER}),
        _QUOTE + "GetMessage": frozenset({SUBMITTER, OPERATOR, REVIEWER, SERVICE}),
        _QUOTE + "WatchMessage": frozenset({SUBMITTER, OPERATOR, REVIEWER, SERVICE}),
        # Listing is how dead letters (and messages waiting for review) are found.
        _QUOTE + "ListMessages": frozenset({OPERATOR, REVIEWER}),
        # The processor cancels the quote of a proposal it gave up on.
        _QUOTE + "CancelMessage": frozenset({OPERATOR, SERVICE}),
        _QUOTE + "RedriveMessage": frozenset({OPERATOR}),
        _QUOTE + "ReviewQuote": frozenset({REVIEWER}),
        _QUOTE + "SetRateLimit": frozenset({OPERATOR}),
        _QUOTE + "GetStats": frozenset({OPERATOR}),
        _QUOTE + "WatchStats": frozenset({OPERATOR}),
        _PROCESSOR + "SubmitProposal": frozenset({SUBMITTER}),
        # The requestor follows the orders it placed.
        _PROCESSOR + "WatchOrder": frozenset({SUBMITTER, SERVICE}),
        _PROCESSOR + "CompleteOrder": frozenset({SUBMITTER}),
        _PROCESSOR + "GetStats": frozenset({OPERATOR}),
        _REQUESTOR + "PlaceOrder": frozenset({SUBMITTER}),
        _REQUESTOR + "GetTaskResult": frozenset({SUBMITTER, OPERATOR}),
        _REQUESTOR + "CancelTask": frozenset({OPERATOR}),
        _REQUESTOR + "GetStats": frozenset({OPERATOR}),
    }
)

#: The services every caller may use, with or without a token.
OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

#: The operators' and reviewers' actions, each written to the audit log.
AUDITED_METHODS = frozenset(
    {
        _QUOTE + "CancelMessage",
        _QUOTE + "RedriveMessage",
        _QUOTE + "ReviewQuote",
        _QUOTE + "SetRateLimit",
        _REQUESTOR + "CancelTask",
    }
)


def is_open(method: str) -> bool:
    return method.startswith(OPEN_SERVICES)


def allowed_roles(method: str) -> frozenset[str]:
    """The roles that may call method; none for a method the table does not
    know, so an RPC added without a row is refused to every token."""
    return METHOD_ROLES.get(method, frozenset())
