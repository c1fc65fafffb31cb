"""clients/node/flow.js, the Node.js client (@grpc/grpc-js, stubs loaded at run time by
@grpc/proto-loader from proto/), against the three services running as processes."""

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from ecosystem.support import REPO, BufCurl, Services, closed_address, run_killed_on_failure
from support.credentials import Credentials, make_credentials
from support.service_process import Launched, running_service

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("service_logs")]

FLOW = REPO / "clients" / "node" / "flow.js"
COVERAGES = {"PROP-S": 80_000, "PROP-M": 400_000, "PROP-L": 1_500_000}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secure_quote(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Credentials, Launched]]:
    """A quote service with TLS, mTLS and tokens on (trustme certificates, an
    HS256 secret), for the module's tests."""
    credentials = make_credentials(tmp_path_factory.mktemp("node-credentials"))
    async with running_service(
        "quote_svc", "--store", "memory", *credentials.server_flags()
    ) as quote:
        yield credentials, quote


async def test_the_node_client_runs_the_whole_flow(services: Services, buf: BufCurl, node: str):
    finished = await run_killed_on_failure(
        [
            node,
            str(FLOW),
            "--quote",
            services.quote,
            "--processor",
            services.processor,
            "--requestor",
            services.requestor,
            "--order",
            "ORD-NODE",
        ]
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr == ""
    summary = json.loads(finished.stdout)

    quote = summary["quote"]
    assert quote["status"] == "MESSAGE_STATUS_COMPLETED"
    assert quote["statuses"][-1] == "MESSAGE_STATUS_COMPLETED"  # watched to the end
    assert int(quote["premiumCents"]) > 0
    assert quote["fairnessKey"] == "node-client"

    task = summary["task"]
    assert (task["order"], task["status"], task["lastSequence"]) == (
        "ORD-NODE",
        "TASK_STATUS_SUCCEEDED",
        "4",
    )
    assert task["fairnessKey"] == "node-client"
    proposals = task["proposals"]
    assert [p["sequence"] for p in proposals] == ["1", "2", "3"]
    assert {p["proposalId"]: int(p["coverageAmount"]) for p in proposals} == COVERAGES
    for proposal in proposals:
        assert proposal["status"] == "MESSAGE_STATUS_COMPLETED"
        assert proposal["text"] == f"{proposal['proposalId']}/New"
        assert proposal["fairnessKey"] == "ORD-NODE"
        assert int(proposal["premiumCents"]) > 0
    premiums = {p["proposalId"]: int(p["premiumCents"]) for p in proposals}
    assert premiums["PROP-S"] < premiums["PROP-M"] < premiums["PROP-L"]

    # What Node printed is what the services hold: the same task, read with buf curl.
    held = await buf(
        services.requestor,
        "quoteflow.requestor.v1.RequestorService/GetTaskResult",
        {"task_id": task["id"]},
    )
    assert {
        p["proposalId"]: int(p["quote"]["result"]["annualPremiumCents"])
        for p in held.message["result"]["proposals"]
    } == premiums
    message = await buf(
        services.quote, "quoteflow.quote.v1.QuoteService/GetMessage", {"id": quote["id"]}
    )
    assert message.message["message"]["result"]["annualPremiumCents"] == quote["premiumCents"]


async def test_addresses_come_from_the_environment_and_a_failure_is_one_line(
    services: Services, node: str
):
    requestor = await closed_address()
    finished = await run_killed_on_failure(
        [node, str(FLOW), "--timeout", "5"],
        QUOTEFLOW_QUOTE_ADDRESS=services.quote,
        QUOTEFLOW_PROCESSOR_ADDRESS=services.processor,
        QUOTEFLOW_REQUESTOR_ADDRESS=requestor,
    )
    # The quote part ran against the quote service from the environment; the order
    # part stopped at the requestor, where nothing listens.
    assert finished.returncode == 1
    assert finished.stdout == ""
    lines = finished.stderr.splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith(
        f"flow.js: PlaceOrder on the requestor service at {requestor} failed: UNAVAILABLE"
    )


async def test_a_bad_option_is_a_usage_error(node: str):
    finished = await run_killed_on_failure([node, str(FLOW), "--wait", "soon"])
    assert finished.returncode == 2
    assert finished.stderr == "flow.js: --wait must be a positive number of seconds\n"


async def test_the_node_client_sends_its_token_over_mtls(secure_quote, node: str):
    credentials, quote = secure_quote
    requestor = await closed_address()
    argv = [
        node, str(FLOW), "--quote", quote.address, "--processor", requestor,
        "--requestor", requestor, "--timeout", "5",
        "--ca-file", str(credentials.ca_file),
        "--cert-file", str(credentials.client_cert), "--key-file", str(credentials.client_key),
    ]  # fmt: skip
    at = f"on the quote service at {quote.address} failed"

    # Over mTLS, but with no token: refused as the service refuses any such call.
    refused = await run_killed_on_failure(argv, QUOTEFLOW_TOKEN="")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        f"flow.js: SubmitQuote {at}: UNAUTHENTICATED: "
        "this call needs a token: send authorization: Bearer <token>\n"
    )

    # The token's roles are what the service judges: a reviewer may not submit.
    reviewer = credentials.token("reviewer", subject="node")
    denied = await run_killed_on_failure([*argv, "--token", reviewer])
    assert denied.returncode == 1
    assert denied.stderr.startswith(f"flow.js: SubmitQuote {at}: PERMISSION_DENIED: ")

    # A submitter's token, from $QUOTEFLOW_TOKEN: SubmitQuote and the WatchMessage
    # stream both carry it, the quote is watched to COMPLETED, and the flow stops
    # only at the requestor, where nothing listens.
    submitter = credentials.token("submitter", subject="node")
    sent = await run_killed_on_failure(argv, QUOTEFLOW_TOKEN=submitter)
    assert sent.returncode == 1
    lines = sent.stderr.splitlines()
    assert len(lines) == 1, sent.stderr
    assert lines[0].startswith(
        f"flow.js: PlaceOrder on the requestor service at {requestor} failed: UNAVAILABLE"
    )


async def test_unusable_credentials_are_a_usage_error(node: str, tmp_path):
    missing = tmp_path / "missing.pem"
    finished = await run_killed_on_failure([node, str(FLOW), "--ca-file", str(missing)])
    assert finished.returncode == 2
    assert finished.stderr == f"flow.js: --ca-file {missing}: cannot read it (ENOENT)\n"
    halves = await run_killed_on_failure([node, str(FLOW), "--cert-file", str(missing)])
    assert halves.returncode == 2
    assert halves.stderr == (
        "flow.js: --cert-file and --key-file go together: a client certificate and its key\n"
    )
