"""The role table: a row for every RPC of the three services and none for
anything else, each row as the roles are described, and Access applying it
row by row."""

import pytest
from support.credentials import make_credentials

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as requestor_pb
from service_runtime import roles
from service_runtime.access import Access, CallRefused
from service_runtime.roles import OPERATOR, REVIEWER, SERVICE, SUBMITTER
from service_runtime.tokens import TokenVerifier

QUOTE = "/quoteflow.quote.v1.QuoteService/"
PROCESSOR = "/quoteflow.processor.v1.ProcessorService/"
REQUESTOR = "/quoteflow.requestor.v1.RequestorService/"

#: The table as the roles are described (service_runtime.roles' docstring),
#: written out again here so a change to either is a decision, not a slip.
EXPECTED = {
    QUOTE + "SubmitQuote": {SUBMITTER, SERVICE},
    QUOTE + "BatchSubmitQuotes": {SUBMITTER, SERVICE},
    QUOTE + "RunQuote": {SUBMITTER},
    QUOTE + "GetMessage": {SUBMITTER, OPERATOR, REVIEWER, SERVICE},
    QUOTE + "WatchMessage": {SUBMITTER, OPERATOR, REVIEWER, SERVICE},
    QUOTE + "ListMessages": {OPERATOR, REVIEWER},
    QUOTE + "CancelMessage": {OPERATOR, SERVICE},
    QUOTE + "RedriveMessage": {OPERATOR},
    QUOTE + "ReviewQuote": {REVIEWER},
    QUOTE + "SetRateLimit": {OPERATOR},
    QUOTE + "GetStats": {OPERATOR},
    QUOTE + "WatchStats": {OPERATOR},
    PROCESSOR + "SubmitProposal": {SUBMITTER},
    PROCESSOR + "WatchOrder": {SUBMITTER, SERVICE},
    PROCESSOR + "CompleteOrder": {SUBMITTER},
    PROCESSOR + "GetStats": {OPERATOR},
    REQUESTOR + "PlaceOrder": {SUBMITTER},
    REQUESTOR + "GetTaskResult": {SUBMITTER, OPERATOR},
    REQUESTOR + "CancelTask": {OPERATOR},
    REQUESTOR + "GetStats": {OPERATOR},
}


def _rpcs() -> set[str]:
    return {
        f"/{service.full_name}/{method.name}"
        for module in (quote_pb, processor_pb, requestor_pb)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def test_the_table_has_a_row_for_every_rpc_and_no_other() -> None:
    assert set(roles.METHOD_ROLES) == _rpcs() == set(EXPECTED)
    assert set(roles.METHOD_ROLES) >= roles.AUDITED_METHODS


@pytest.fixture(scope="module")
def access(tmp_path_factory: pytest.TempPathFactory) -> tuple[Access, object]:
    creds = make_credentials(tmp_path_factory.mktemp("credentials"))
    verifier = TokenVerifier(str(creds.jwt_secret), issuer="quoteflow-dev", audience="quoteflow")
    return Access(verifier, max_streams_per_caller=1), creds


@pytest.mark.parametrize("method", sorted(EXPECTED))
@pytest.mark.parametrize("role", roles.ROLES)
def test_each_row_admits_its_roles_and_refuses_the_others(access, method, role) -> None:
    checker, creds = access
    metadata = [("authorization", f"Bearer {creds.token(role)}")]
    if role in EXPECTED[method]:
        admitted = checker.admit(method, metadata, "ipv4:127.0.0.1:1")
        assert admitted.caller is not None and admitted.caller.subject == "alice"
    else:
        with pytest.raises(CallRefused) as refused:
            checker.admit(method, metadata, "ipv4:127.0.0.1:1")
        assert refused.value.status.code.name == "PERMISSION_DENIED"
        assert method.rpartition("/")[2] in refused.value.status.details


@pytest.mark.parametrize(
    "method",
    ["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
     "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"],
)  # fmt: skip
def test_health_and_reflection_need_no_token(access, method) -> None:
    checker, _ = access
    assert checker.admit(method, [], "ipv4:127.0.0.1:1").caller is None


def test_a_method_missing_from_the_table_is_refused_to_every_role(access) -> None:
    checker, creds = access
    metadata = [("authorization", f"Bearer {creds.token(*roles.ROLES)}")]
    with pytest.raises(CallRefused) as refused:
        checker.admit(QUOTE + "SomethingNew", metadata, "ipv4:127.0.0.1:1")
    assert refused.value.status.code.name == "PERMISSION_DENIED"
