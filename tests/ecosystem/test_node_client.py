"""clients/node/flow.js, the Node.js client (@grpc/grpc-js, stubs loaded at run time by
@grpc/proto-loader from proto/), against the three services running as processes."""

import json

import pytest
from ecosystem.support import REPO, BufCurl, Services, closed_address, run_killed_on_failure

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("service_logs")]

FLOW = REPO / "clients" / "node" / "flow.js"
COVERAGES = {"PROP-S": 80_000, "PROP-M": 400_000, "PROP-L": 1_500_000}


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

    task = summary["task"]
    assert (task["order"], task["status"], task["lastSequence"]) == (
        "ORD-NODE",
        "TASK_STATUS_SUCCEEDED",
        "4",
    )
    proposals = task["proposals"]
    assert [p["sequence"] for p in proposals] == ["1", "2", "3"]
    assert {p["proposalId"]: int(p["coverageAmount"]) for p in proposals} == COVERAGES
    for proposal in proposals:
        assert proposal["status"] == "MESSAGE_STATUS_COMPLETED"
        assert proposal["text"] == f"{proposal['proposalId']}/New"
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
