"""Access without gRPC: the stream cap per caller, who is exempt from it, and
the audit line; and the secure-by-default rule for where a service may listen."""

import logging

import pytest
from support.credentials import make_credentials

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from service_runtime import roles
from service_runtime.access import Access, CallRefused, audit
from service_runtime.config import exposure_refusal
from service_runtime.tokens import TokenVerifier

WATCH = "/quoteflow.quote.v1.QuoteService/WatchMessage"
PEER = "ipv4:10.0.0.7:40000"


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory):
    return make_credentials(tmp_path_factory.mktemp("credentials"))


@pytest.fixture
def access(creds) -> Access:
    verifier = TokenVerifier(str(creds.jwt_secret), issuer="quoteflow-dev", audience="quoteflow")
    return Access(verifier, max_streams_per_caller=2)


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_a_caller_holds_at_most_the_cap_and_a_closed_stream_frees_its_slot(access, creds) -> None:
    admitted = access.admit(WATCH, _bearer(creds.token(roles.SUBMITTER, subject="bob")), PEER)
    with access.stream_slot(admitted), access.stream_slot(admitted):
        with pytest.raises(CallRefused) as refused, access.stream_slot(admitted):
            pass
        status = refused.value.status
        assert status.code.name == "RESOURCE_EXHAUSTED"
        details = dict(status.trailing_metadata)["grpc-status-details-bin"]
        assert b"STREAM_LIMIT" in details and b"RetryInfo" in details
        # Another subject on the same connection has slots of its own.
        carol = access.admit(WATCH, _bearer(creds.token(roles.SUBMITTER, subject="carol")), PEER)
        with access.stream_slot(carol):
            assert access.open_streams("carol") == 1
    assert access.open_streams("bob") == 0
    with access.stream_slot(admitted):
        assert access.open_streams("bob") == 1


def test_the_services_own_calls_are_bounded_by_their_concurrency_not_the_cap(access, creds) -> None:
    processor = access.admit(WATCH, _bearer(creds.token(roles.SERVICE, subject="processor")), PEER)
    with (
        access.stream_slot(processor),
        access.stream_slot(processor),
        access.stream_slot(processor),
    ):
        assert access.open_streams("processor") == 0


def test_without_auth_a_caller_is_its_peer_address() -> None:
    open_access = Access(None, max_streams_per_caller=1)
    admitted = open_access.admit(WATCH, [], PEER)
    assert (admitted.caller, admitted.caller_key) == (None, PEER)
    with open_access.stream_slot(admitted):
        with pytest.raises(CallRefused), open_access.stream_slot(admitted):
            pass
        other = open_access.admit(WATCH, [], "ipv4:10.0.0.8:40000")
        with open_access.stream_slot(other):
            pass


def test_an_audit_line_names_who_what_which_and_when(access, creds, caplog) -> None:
    method = "/quoteflow.quote.v1.QuoteService/RedriveMessage"
    admitted = access.admit(method, _bearer(creds.token(roles.OPERATOR, subject="ops")), PEER)
    with caplog.at_level(logging.INFO, logger="quoteflow.audit"):
        audit(admitted, quote_pb.RedriveMessageRequest(id="MSG-9"), "OK")
        # A read is not an action: no line.
        read = access.admit(
            "/quoteflow.quote.v1.QuoteService/GetStats",
            _bearer(creds.token(roles.OPERATOR, subject="ops")),
            PEER,
        )
        audit(read, quote_pb.GetStatsRequest(), "OK")
    (record,) = caplog.records
    fields = record.fields  # type: ignore[attr-defined]
    assert {k: fields[k] for k in ("subject", "action", "target", "code")} == {
        "subject": "ops",
        "action": "RedriveMessage",
        "target": "MSG-9",
        "code": "OK",
    }
    assert fields["at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("host", "tls", "auth", "insecure", "refused"),
    [
        ("127.0.0.1", False, False, False, False),
        ("::1", False, False, False, False),
        ("localhost", False, False, False, False),
        ("0.0.0.0", False, False, False, True),
        ("0.0.0.0", True, False, False, True),
        ("0.0.0.0", False, True, False, True),
        ("0.0.0.0", True, True, False, False),
        ("::", False, False, True, False),
        ("10.1.2.3", False, False, False, True),
    ],
)
def test_beyond_loopback_a_listener_needs_tls_and_auth_or_insecure(
    host, tls, auth, insecure, refused
) -> None:
    refusal = exposure_refusal(host, tls=tls, auth=auth, insecure=insecure)
    assert bool(refusal) == refused
    if refused:
        assert host in refusal and "--insecure" in refusal
        assert "\n" not in refusal
