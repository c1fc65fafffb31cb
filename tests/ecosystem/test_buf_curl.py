"""Every RPC of the three services, called with `buf curl` through server reflection,
as docs/calling.md shows: the services run as real processes and buf knows
nothing of proto/ (no --schema), so each call also checks what reflection serves.

Answers are proto3 JSON: lowerCamelCase names, int64 as strings, enums by name, zero
values left out. A failed call exits with its gRPC code times 8 and prints the status
as JSON on stderr (see BufAnswer.error in support.py)."""

import json
import re
import shlex
import shutil

import grpc
import pytest
from ecosystem.support import (
    REPO,
    TESTS,
    BufCurl,
    Services,
    closed_address,
    decoded_details,
    run_killed_on_failure,
    start_service,
)
from support.polling import poll

from quoteflow.processor.v1 import processor_service_pb2
from quoteflow.quote.v1 import quote_service_pb2
from quoteflow.requestor.v1 import requestor_service_pb2

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("service_logs")]

QUOTE = "quoteflow.quote.v1.QuoteService"
PROCESSOR = "quoteflow.processor.v1.ProcessorService"
REQUESTOR = "quoteflow.requestor.v1.RequestorService"
HEALTH = "grpc.health.v1.Health"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"

#: Each service's methods, as proto/ declares them (through the generated descriptors).
PROTO_METHODS = {
    service.full_name: {method.name for method in service.methods}
    for module in (quote_service_pb2, processor_service_pb2, requestor_service_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
}

FINAL_MESSAGE_STATUSES = {
    f"MESSAGE_STATUS_{name}" for name in ("COMPLETED", "FAILED", "CANCELLED", "REJECTED")
}
POLL_SECONDS = 0.05
WAIT_SECONDS = 15.0


def submission(applicant: str, coverage: int = 250_000) -> dict:
    return {"applicant_name": applicant, "address": "1 Main St", "coverage_amount": coverage}


def premium(message: dict) -> int:
    """A priced message's annual premium: an int64, which proto3 JSON writes as a string."""
    cents = message["result"]["annualPremiumCents"]
    assert isinstance(cents, str), message
    return int(cents)


def status_of(response: dict) -> str:
    return response["message"]["status"]


async def answered(buf: BufCurl, address: str, method: str, body: dict, done, what: str) -> dict:
    """Call a unary method until its answer satisfies done; fail after WAIT_SECONDS."""

    async def call() -> dict:
        return (await buf(address, method, body)).message

    return await poll(
        call, done, f"{method} answering {what}", within=WAIT_SECONDS, every=POLL_SECONDS
    )


# --- reflection and health ----------------------------------------------------------


async def test_reflection_lists_each_servers_services_and_every_method_of_proto(
    services: Services, buf: BufCurl
):
    for address, service in (
        (services.quote, QUOTE),
        (services.processor, PROCESSOR),
        (services.requestor, REQUESTOR),
    ):
        listed = await buf.lines(address, "--list-services")
        assert sorted(listed) == sorted([service, HEALTH, REFLECTION_V1ALPHA])

        methods = await buf.lines(address, "--list-methods")
        assert {m.split("/")[1] for m in methods if m.startswith(f"{service}/")} == (
            PROTO_METHODS[service]
        )
        assert {f"{HEALTH}/Check", f"{HEALTH}/Watch"} <= set(methods)


async def test_buf_curl_falls_back_to_v1alpha_reflection_which_is_what_the_servers_serve(
    services: Services, buf: BufCurl
):
    # buf tries grpc.reflection.v1 first and, on UNIMPLEMENTED, v1alpha: both the
    # default and v1alpha named explicitly work; v1 alone is not served.
    method = f"{HEALTH}/Check"
    for flags in ((), ("--reflect-protocol", "grpc-v1alpha")):
        answer = await buf(services.quote, method, None, *flags)
        assert answer.message == {"status": "SERVING"}
    only_v1 = await buf(services.quote, method, None, "--reflect-protocol", "grpc-v1")
    assert only_v1.returncode == 1  # buf's own failure: no status came back
    assert f'failed to find service named "{HEALTH}"' in only_v1.stderr


async def test_health_answers_serving_for_the_server_and_for_its_service(
    services: Services, buf: BufCurl
):
    for address, service in (
        (services.quote, QUOTE),
        (services.processor, PROCESSOR),
        (services.requestor, REQUESTOR),
    ):
        check = f"{HEALTH}/Check"
        assert (await buf(address, check)).message == {"status": "SERVING"}
        assert (await buf(address, check, {"service": ""})).message == {"status": "SERVING"}
        # Readiness: the processor and requestor are SERVING once their downstream is.
        serving = {"status": "SERVING"}
        await answered(buf, address, check, {"service": service}, serving.__eq__, "SERVING")
        unknown = (await buf(address, check, {"service": "no.such.Service"})).error
        assert unknown["code"] == "not_found"


async def test_npx_buf_as_the_docs_have_it_works(services: Services):
    # The other tests run buf's binary directly (npx adds ~0.5 s a call); this one
    # goes through npx once, as docs/calling.md does (--no-install: never the network).
    npx = shutil.which("npx")
    assert npx is not None, "npx is not on PATH (it comes with npm)"
    argv = [npx, "--no-install", "buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge"]
    finished = await run_killed_on_failure([*argv, f"http://{services.quote}/{HEALTH}/Check"])
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout) == {"status": "SERVING"}


# --- the quote service ----------------------------------------------------------------


async def test_a_quote_is_submitted_watched_to_completed_then_got_and_listed(
    services: Services, buf: BufCurl
):
    request = {"submission": submission("Ada Lovelace"), "request_id": "buf-curl-ada"}
    submitted = (await buf(services.quote, f"{QUOTE}/SubmitQuote", request)).message
    message = submitted["message"]
    assert message["payload"] == {
        "applicantName": "Ada Lovelace",
        "address": "1 Main St",
        "coverageAmount": "250000",
    }
    assert message["status"] == "MESSAGE_STATUS_PENDING"
    assert message["priority"] == "PRIORITY_NORMAL"  # assigned from the coverage
    assert message["attemptTimeout"] == "300s"  # a Duration: seconds with an "s"
    assert message["createdAt"].endswith("Z")  # a Timestamp: RFC 3339 in UTC
    assert message["maxRetries"] == 3
    assert submitted["estimatedProcessingTime"].endswith("s")
    message_id = message["id"]

    # The same request_id answers with the same message (AIP-155).
    again = (await buf(services.quote, f"{QUOTE}/SubmitQuote", request)).message
    assert again["message"]["id"] == message_id

    # WatchMessage streams the message after each change and ends once it is final.
    async with buf.stream(services.quote, f"{QUOTE}/WatchMessage", {"id": message_id}) as watch:
        watched = await watch.finish()
    assert watched.returncode == 0, watched
    assert {r["message"]["id"] for r in watched.messages} == {message_id}
    statuses = [status_of(r) for r in watched.messages]
    assert statuses[-1] == "MESSAGE_STATUS_COMPLETED"
    assert not FINAL_MESSAGE_STATUSES & set(statuses[:-1])
    final = watched.messages[-1]["message"]
    assert premium(final) > 0

    got = (await buf(services.quote, f"{QUOTE}/GetMessage", {"id": message_id})).message
    assert got["message"] == final

    # Requests take either name form: lowerCamelCase here, snake_case elsewhere.
    listed = await buf(
        services.quote,
        f"{QUOTE}/ListMessages",
        {"status": "MESSAGE_STATUS_COMPLETED", "pageSize": 1000},
    )
    assert message_id in {m["id"] for m in listed.message["messages"]}


async def test_watch_message_follows_a_review_through_to_completed(
    services: Services, buf: BufCurl
):
    # Coverage above 2,000,000 is held for review: the watch sees AWAITING_REVIEW,
    # stays open, and ends after ReviewQuote completes the message.
    request = {"submission": submission("Grace Hopper", 3_000_000)}
    submitted = (await buf(services.quote, f"{QUOTE}/SubmitQuote", request)).message
    message_id = submitted["message"]["id"]
    async with buf.stream(services.quote, f"{QUOTE}/WatchMessage", {"id": message_id}) as watch:
        held = await watch.until(
            lambda r: status_of(r) == "MESSAGE_STATUS_AWAITING_REVIEW", "AWAITING_REVIEW"
        )
        assert "review threshold" in held["message"]["result"]["reviewReason"]
        assert watch.process.returncode is None  # not final: the stream stays open

        review = {
            "id": message_id,
            "decision": "REVIEW_DECISION_APPROVE",
            "reviewer": "ecosystem test",
            "note": "approved through buf curl",
        }
        reviewed = (await buf(services.quote, f"{QUOTE}/ReviewQuote", review)).message
        assert reviewed["message"]["status"] == "MESSAGE_STATUS_COMPLETED"
        assert reviewed["message"]["review"]["decision"] == "REVIEW_DECISION_APPROVE"

        watched = await watch.finish()
    assert watched.returncode == 0, watched
    statuses = [status_of(r) for r in watched.messages]
    assert statuses[-2:] == ["MESSAGE_STATUS_AWAITING_REVIEW", "MESSAGE_STATUS_COMPLETED"]
    assert watched.messages[-1]["message"]["review"]["reviewer"] == "ecosystem test"

    # A second decision: the message is no longer awaiting review.
    twice = (await buf(services.quote, f"{QUOTE}/ReviewQuote", review)).error
    assert twice["code"] == "failed_precondition"
    info = decoded_details(twice)["google.rpc.ErrorInfo"]
    assert (info.domain, info.reason) == ("quoteflow", "MESSAGE_INVALID_STATE")


async def test_run_quote_prices_inline_and_a_failure_is_failed_not_dead_lettered(
    services: Services, buf: BufCurl
):
    ran = await buf(services.quote, f"{QUOTE}/RunQuote", {"submission": submission("Alan")})
    assert ran.message["message"]["status"] == "MESSAGE_STATUS_COMPLETED"
    assert premium(ran.message["message"]) > 0

    failed = await buf(services.quote, f"{QUOTE}/RunQuote", {"submission": submission("fail-run")})
    message = failed.message["message"]
    assert message["status"] == "MESSAGE_STATUS_FAILED"
    assert "scripted failure" in message["errorMessage"]
    assert "deadLettered" not in message  # false is a zero value: left out


async def test_a_dead_letter_is_listed_and_redriven(services: Services, buf: BufCurl):
    request = {"submission": submission("fail-redrive"), "max_retries": 0}
    submitted = (await buf(services.quote, f"{QUOTE}/SubmitQuote", request)).message
    message_id = submitted["message"]["id"]
    async with buf.stream(services.quote, f"{QUOTE}/WatchMessage", {"id": message_id}) as watch:
        watched = await watch.finish()
    dead = watched.messages[-1]["message"]
    assert (dead["status"], dead["deadLettered"]) == ("MESSAGE_STATUS_FAILED", True)

    letters = await buf(
        services.quote, f"{QUOTE}/ListMessages", {"dead_lettered_only": True, "page_size": 1000}
    )
    assert message_id in {m["id"] for m in letters.message["messages"]}

    redriven = (await buf(services.quote, f"{QUOTE}/RedriveMessage", {"id": message_id})).message
    assert redriven["message"]["status"] == "MESSAGE_STATUS_PENDING"
    assert "deadLettered" not in redriven["message"]
    assert "retryCount" not in redriven["message"]  # reset to 0

    # It fails again (the scripted processor always fails it) and is dead-lettered again.
    await answered(
        buf,
        services.quote,
        f"{QUOTE}/GetMessage",
        {"id": message_id},
        lambda a: a["message"].get("deadLettered", False),
        "dead-lettered again",
    )
    stats = (await buf(services.quote, f"{QUOTE}/GetStats")).message
    assert int(stats["deadLetterCount"]) >= 1


async def test_a_processing_message_is_cancelled_and_its_watch_ends(
    services: Services, buf: BufCurl
):
    submitted = await buf(
        services.quote, f"{QUOTE}/SubmitQuote", {"submission": submission("slow-1")}
    )
    message_id = submitted.message["message"]["id"]
    async with buf.stream(services.quote, f"{QUOTE}/WatchMessage", {"id": message_id}) as watch:
        await watch.until(lambda r: status_of(r) == "MESSAGE_STATUS_PROCESSING", "PROCESSING")
        cancelled = await buf(services.quote, f"{QUOTE}/CancelMessage", {"id": message_id})
        assert cancelled.message["message"]["status"] == "MESSAGE_STATUS_CANCELLED"
        watched = await watch.finish()
    assert watched.returncode == 0, watched
    assert status_of(watched.messages[-1]) == "MESSAGE_STATUS_CANCELLED"

    again = (await buf(services.quote, f"{QUOTE}/CancelMessage", {"id": message_id})).error
    assert again["code"] == "failed_precondition"
    assert "cancelled" in again["message"]


async def test_quote_errors_carry_their_code_and_aip_193_details(services: Services, buf: BufCurl):
    missing = (await buf(services.quote, f"{QUOTE}/GetMessage", {"id": "no-such-id"})).error
    assert missing["code"] == "not_found"
    assert missing["message"] == "message 'no-such-id' not found"
    info = decoded_details(missing)["google.rpc.ErrorInfo"]
    assert (info.domain, info.reason, dict(info.metadata)) == (
        "quoteflow",
        "MESSAGE_NOT_FOUND",
        {"id": "no-such-id"},
    )

    bad = {"submission": {"applicant_name": "", "address": "1 Main St", "coverage_amount": -5}}
    invalid = (await buf(services.quote, f"{QUOTE}/SubmitQuote", bad)).error
    assert invalid["code"] == "invalid_argument"
    # buf curl prints each detail as its type and base64 bytes: the field violations
    # are in the BadRequest (and, in words, in the message).
    assert [d["type"] for d in invalid["details"]] == [
        "google.rpc.ErrorInfo",
        "google.rpc.BadRequest",
    ]
    violations = decoded_details(invalid)["google.rpc.BadRequest"].field_violations
    assert [v.field for v in violations] == [
        "submission.applicant_name",
        "submission.coverage_amount",
    ]
    for violation in violations:
        assert f"{violation.field}: {violation.description}" in invalid["message"]

    # A request buf cannot even encode never reaches the server: exit 1, no status.
    unknown_field = await buf(services.quote, f"{QUOTE}/GetMessage", {"no_such_field": 1})
    assert unknown_field.returncode == 1
    assert 'unknown field "no_such_field"' in unknown_field.stderr


async def test_a_full_queue_answers_resource_exhausted_with_retry_info(tmp_path, buf: BufCurl):
    # A quote service of its own that holds one unfinished message at most.
    args = ("--processor", "support.quote_plugins:scripted", "--max-size", "1", "--workers", "1")

    async with start_service("quote_svc", *args, data_dir=tmp_path, PYTHONPATH=str(TESTS)) as quote:
        held = await buf(quote.address, f"{QUOTE}/SubmitQuote", {"submission": submission("slow")})
        assert held.returncode == 0, held
        full = await buf(quote.address, f"{QUOTE}/SubmitQuote", {"submission": submission("x")})
        error = full.error
        assert error["code"] == "resource_exhausted"
        details = decoded_details(error)
        assert details["google.rpc.ErrorInfo"].reason == "QUEUE_FULL"
        assert details["google.rpc.RetryInfo"].retry_delay.ToTimedelta().total_seconds() > 0


# --- the processor --------------------------------------------------------------------


async def test_watch_order_streams_every_event_as_it_comes_then_ends_after_completion(
    services: Services, buf: BufCurl
):
    order = "ORD-BUF-WATCH"
    watch_order = f"{PROCESSOR}/WatchOrder"
    async with buf.stream(services.processor, watch_order, {"order_req_id": order}) as watch:
        proposals = {"P-OK": submission("Ada"), "P-FAIL": submission("fail-proposal")}
        for proposal_id, proposed in proposals.items():
            request = {"order_req_id": order, "proposal_id": proposal_id, "submission": proposed}
            accepted = await buf(services.processor, f"{PROCESSOR}/SubmitProposal", request)
            assert accepted.message == {"orderReqId": order, "proposalId": proposal_id}
        # The same (order, proposal) again is accepted once only.
        duplicate = await buf(services.processor, f"{PROCESSOR}/SubmitProposal", request)
        assert duplicate.message["duplicate"] is True

        # Both events arrive while the order is open, before anyone completes it.
        first, second = (await watch.next())["event"], (await watch.next())["event"]
        assert watch.process.returncode is None

        completed = await buf(
            services.processor, f"{PROCESSOR}/CompleteOrder", {"order_req_id": order}
        )
        watched = await watch.finish()

    assert watched.returncode == 0, watched  # the stream ended by itself
    events = [r["event"] for r in watched.messages]
    assert events[:2] == [first, second]
    assert [e["sequence"] for e in events] == ["1", "2", "3"]  # int64: strings
    by_proposal = {e.get("proposalId"): e for e in events}
    priced = by_proposal["P-OK"]
    assert priced["kind"] == "ORDER_EVENT_KIND_PROPOSAL_NEW"
    assert priced["text"] == "P-OK/New"
    assert priced["quote"]["status"] == "MESSAGE_STATUS_COMPLETED"
    assert premium(priced["quote"]) > 0
    failed = by_proposal["P-FAIL"]
    assert failed["kind"] == "ORDER_EVENT_KIND_PROPOSAL_FAILED"
    assert failed["text"] == "P-FAIL/Failed"
    assert "scripted failure" in failed["errorMessage"]
    assert events[-1]["kind"] == "ORDER_EVENT_KIND_ORDER_COMPLETED"
    assert completed.message["event"] == events[-1]

    # Completing again answers with the same event; proposing to it is refused.
    again = await buf(services.processor, f"{PROCESSOR}/CompleteOrder", {"order_req_id": order})
    assert again.message == completed.message
    late = {"order_req_id": order, "proposal_id": "P-LATE", "submission": submission("Late")}
    refused = (await buf(services.processor, f"{PROCESSOR}/SubmitProposal", late)).error
    assert refused["code"] == "failed_precondition"
    assert decoded_details(refused)["google.rpc.ErrorInfo"].reason == "ORDER_INVALID_STATE"

    # A watcher resuming from a cursor gets what follows it, then the stream ends.
    resumed = await buf(
        services.processor, watch_order, {"order_req_id": order, "after_sequence": 2}
    )
    assert resumed.returncode == 0, resumed
    assert [r["event"] for r in resumed.messages] == events[2:]
    beyond = {"order_req_id": order, "after_sequence": 9}
    assert (await buf(services.processor, watch_order, beyond)).error["code"] == "out_of_range"

    stats = (await buf(services.processor, f"{PROCESSOR}/GetStats")).message
    assert stats["eventsByOrder"][order] == "3"


async def test_the_processor_forwards_the_quote_services_field_violations(
    services: Services, buf: BufCurl
):
    request = {
        "order_req_id": "ORD-BUF-INVALID",
        "proposal_id": "P1",
        "submission": {"applicant_name": "Ada", "address": "", "coverage_amount": 0},
    }
    error = (await buf(services.processor, f"{PROCESSOR}/SubmitProposal", request)).error
    assert error["code"] == "invalid_argument"
    violations = decoded_details(error)["google.rpc.BadRequest"].field_violations
    assert {v.field for v in violations} == {"submission.address", "submission.coverage_amount"}

    own = (await buf(services.processor, f"{PROCESSOR}/WatchOrder", {"order_req_id": ""})).error
    assert own["code"] == "invalid_argument"
    fields = [v.field for v in decoded_details(own)["google.rpc.BadRequest"].field_violations]
    assert fields == ["order_req_id"]


async def test_a_processor_without_its_quote_service_is_alive_not_ready_and_unavailable(
    tmp_path, buf: BufCurl
):
    # Nothing listens where this processor looks for the quote service.
    quote_address = await closed_address()

    args = ("--quote-address", quote_address, "--health-interval", "0.05")
    async with start_service("processor_svc", *args, data_dir=tmp_path) as processor:
        check = f"{HEALTH}/Check"
        alive = await buf(processor.address, check, {"service": ""})
        assert alive.message == {"status": "SERVING"}
        ready = await buf(processor.address, check, {"service": PROCESSOR})
        assert ready.message == {"status": "NOT_SERVING"}

        request = {"order_req_id": "O", "proposal_id": "P", "submission": submission("Ada")}
        error = (await buf(processor.address, f"{PROCESSOR}/SubmitProposal", request)).error
    assert error["code"] == "unavailable"
    assert quote_address in error["message"]


# --- the requestor --------------------------------------------------------------------


async def test_an_order_placed_with_the_requestor_collects_every_proposal(
    services: Services, buf: BufCurl
):
    order = "ORD-BUF-FLOW"
    placed = await buf(
        services.requestor,
        f"{REQUESTOR}/PlaceOrder",
        {
            "order_req_id": order,
            "priority": "TASK_PRIORITY_HIGH",
            "submission": submission("Ada"),
            "timeout": "60s",
        },
    )
    task_id = placed.message["taskId"]
    get_result = f"{REQUESTOR}/GetTaskResult"

    coverages = {"PROP-S": 80_000, "PROP-M": 400_000, "PROP-L": 1_500_000}
    for proposal_id, coverage in coverages.items():
        request = {
            "order_req_id": order,
            "proposal_id": proposal_id,
            "submission": submission(proposal_id, coverage),
        }
        assert (await buf(services.processor, f"{PROCESSOR}/SubmitProposal", request)).message
    completed = await buf(services.processor, f"{PROCESSOR}/CompleteOrder", {"order_req_id": order})
    assert completed.message["event"]["sequence"] == "4"

    answer = await answered(
        buf,
        services.requestor,
        get_result,
        {"task_id": task_id},
        lambda a: a["result"]["status"] not in {"TASK_STATUS_QUEUED", "TASK_STATUS_RUNNING"},
        "a final status",
    )
    result = answer["result"]
    assert result["status"] == "TASK_STATUS_SUCCEEDED"
    assert (result["orderReqId"], result["priority"]) == (order, "TASK_PRIORITY_HIGH")
    assert result["submission"]["applicantName"] == "Ada"
    assert result["lastSequence"] == "4"
    assert "deadline" in result
    assert [p["sequence"] for p in result["proposals"]] == ["1", "2", "3"]
    premiums = {p["proposalId"]: premium(p["quote"]) for p in result["proposals"]}
    assert set(premiums) == set(coverages)
    assert premiums["PROP-S"] < premiums["PROP-M"] < premiums["PROP-L"]

    finished = await buf(services.requestor, f"{REQUESTOR}/CancelTask", {"task_id": task_id})
    assert finished.error["code"] == "failed_precondition"


async def test_a_running_task_is_cancelled_and_requestor_errors_are_precise(
    services: Services, buf: BufCurl
):
    placed = await buf(
        services.requestor, f"{REQUESTOR}/PlaceOrder", {"order_req_id": "ORD-BUF-OPEN"}
    )
    task_id = placed.message["taskId"]
    # A task takes a slot once its order has had an event.
    first = {"order_req_id": "ORD-BUF-OPEN", "proposal_id": "P1", "submission": submission("Ada")}
    assert (await buf(services.processor, f"{PROCESSOR}/SubmitProposal", first)).message
    await answered(
        buf,
        services.requestor,
        f"{REQUESTOR}/GetTaskResult",
        {"task_id": task_id},
        lambda a: a["result"]["status"] == "TASK_STATUS_RUNNING",
        "RUNNING",
    )
    cancelled = await buf(services.requestor, f"{REQUESTOR}/CancelTask", {"task_id": task_id})
    assert cancelled.message["result"]["status"] == "TASK_STATUS_CANCELLED"
    assert cancelled.message["result"]["priority"] == "TASK_PRIORITY_MEDIUM"  # the default

    missing = await buf(services.requestor, f"{REQUESTOR}/GetTaskResult", {"task_id": "nope"})
    assert missing.error["code"] == "not_found"
    assert decoded_details(missing.error)["google.rpc.ErrorInfo"].reason == "TASK_NOT_FOUND"

    invalid = (await buf(services.requestor, f"{REQUESTOR}/PlaceOrder", {"order_req_id": ""})).error
    assert invalid["code"] == "invalid_argument"
    fields = [v.field for v in decoded_details(invalid)["google.rpc.BadRequest"].field_violations]
    assert fields == ["order_req_id"]


async def test_get_stats_of_every_service(services: Services, buf: BufCurl):
    quote = (await buf(services.quote, f"{QUOTE}/GetStats")).message
    assert (quote["workers"], quote["maxSize"]) == (4, "1000")
    assert [p["priority"] for p in quote["byPriority"]] == [
        "PRIORITY_LOW",
        "PRIORITY_NORMAL",
        "PRIORITY_HIGH",
        "PRIORITY_URGENT",
    ]
    # Zero counters are left out unless asked for with --emit-defaults.
    processor = await buf(services.processor, f"{PROCESSOR}/GetStats", None, "--emit-defaults")
    assert set(processor.message) == {
        "orderQueuesCount",
        "eventsByOrder",
        "watchersCount",
        "proposalsInFlight",
        "eventsCount",
        "awaitedOrdersCount",
    }
    requestor = (await buf(services.requestor, f"{REQUESTOR}/GetStats")).message
    assert requestor["maxConcurrentTasks"] == "10"


# --- docs/calling.md ------------------------------------------------------------------

CALLING = REPO / "docs" / "calling.md"
#: The function the page defines; its commands call buf curl through it.
BUFCURL_FUNCTION = 'bufcurl() { npx buf curl --protocol grpc --http2-prior-knowledge "$@"; }'
#: The calls the page must show.
CALLING_CALLS = {
    f"{QUOTE}/SubmitQuote",
    f"{QUOTE}/GetMessage",
    f"{QUOTE}/WatchMessage",
    f"{REQUESTOR}/PlaceOrder",
    f"{PROCESSOR}/SubmitProposal",
    f"{PROCESSOR}/CompleteOrder",
    f"{PROCESSOR}/WatchOrder",
    f"{REQUESTOR}/GetTaskResult",
    f"{HEALTH}/Check",
}


def calling_commands() -> list[tuple[list[str], list[str]]]:
    """The shell commands of docs/calling.md, each as (words, words of its
    trailing comment), continuation lines joined."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", CALLING.read_text(), re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if not line.strip() or line.strip() == BUFCURL_FUNCTION:
                continue
            words = shlex.split(line)
            comment = next((i for i, w in enumerate(words) if w.startswith("#")), len(words))
            commands.append((words[:comment], words[comment:]))
    return commands


def expected_failure(comment: list[str]) -> grpc.StatusCode | None:
    """A command whose comment names a status code (as "# NOT_FOUND: exit 40") fails."""
    for word in comment:
        code = grpc.StatusCode.__members__.get(word.strip(",:"))
        if code is not None:
            return code
    return None


async def test_every_command_in_docs_calling_works(services: Services, buf: BufCurl):
    """Each command runs as written, against the test's services instead of the ports
    `make run` uses, with "<message id>" and "<task id>" replaced by the ids the
    commands before it answered with. grpcurl commands run when grpcurl is installed
    (it is not part of the project); otherwise their JSON and method are checked."""
    ports = {"50051": services.quote, "50052": services.processor, "50053": services.requestor}
    ids: dict[str, str] = {}

    def substituted(word: str) -> str:
        for port, address in ports.items():
            word = word.replace(f"127.0.0.1:{port}", address)
        for placeholder, value in ids.items():
            word = word.replace(placeholder, value)
        return word

    commands = calling_commands()
    shown: set[str] = set()
    grpcurl = shutil.which("grpcurl")
    for words, comment in commands:
        words = [substituted(w) for w in words]
        failure = expected_failure(comment)
        if "-d" in words:
            json.loads(words[words.index("-d") + 1])
        if words[0] == "bufcurl":
            argv = [*buf.base(), *words[1:]]
            shown.add(words[-1].split("/", 3)[-1])
        else:
            assert words[:2] == ["grpcurl", "-plaintext"], words
            if "/" in words[-1]:
                shown.add(words[-1])
                methods = await buf.lines(words[-2], "--list-methods")
                assert words[-1] in methods, words
            if grpcurl is None:
                continue
            argv = [grpcurl, *words[1:]]
        finished = await run_killed_on_failure(argv)
        if failure is None:
            assert finished.returncode == 0, (words, finished.stderr)
        else:
            code = failure.value[0]
            assert finished.returncode == (8 * code if words[0] == "bufcurl" else 64 + code)
            continue
        if words[-1].endswith("/SubmitQuote"):
            ids["<message id>"] = json.loads(finished.stdout)["message"]["id"]
        if words[-1].endswith("/PlaceOrder"):
            ids["<task id>"] = json.loads(finished.stdout)["taskId"]
    assert shown >= CALLING_CALLS
    assert {"<message id>", "<task id>"} <= set(ids)
    assert any("--list-services" in words for words, _ in commands)
