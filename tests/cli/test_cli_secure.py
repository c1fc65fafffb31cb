"""The CLI against a real quote service with TLS, mTLS and tokens on: its
secret written and its tokens minted by `quoteflow token`, its certificates by
trustme. One service for the module; the processor and requestor are nowhere."""

import io
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from support.credentials import Credentials, make_credentials
from support.service_process import Launched, running_service

from quoteflow_cli.app import run

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

SUBMISSION = ("--name", "Ada", "--address", "1 Main St", "--coverage", "250000")


async def quoteflow(*argv: str) -> str:
    """Run the CLI to its end; its stdout (it must succeed)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = await run(argv, stdout=stdout, stderr=stderr)
    assert code == 0, stderr.getvalue()
    return stdout.getvalue()


@dataclass
class Secure:
    credentials: Credentials
    #: Written by `quoteflow token --new-secret`; the service verifies with it.
    secret: str
    quote: Launched
    #: A port held bound but not listening: where the processor and requestor are.
    nowhere: str

    def options(self, *, client_cert: bool = True) -> dict[str, str]:
        """The CLI's options for TLS to the quote service, with the client
        certificate unless told otherwise."""
        creds = self.credentials
        options = {"quote": self.quote.address, "processor": self.nowhere,
                   "requestor": self.nowhere, "ca-file": str(creds.ca_file)}  # fmt: skip
        if client_cert:
            options.update({"cert-file": str(creds.client_cert), "key-file": str(creds.client_key)})
        return options

    async def token(self, *roles: str) -> str:
        """A token from `quoteflow token`."""
        role_options = [option for role in roles for option in ("--role", role)]
        printed = await quoteflow(
            "token", "--key-file", self.secret, "--subject", "alice", *role_options
        )
        return printed.strip()


@pytest.fixture(scope="module")
def nowhere() -> Iterator[str]:
    """An address that refuses connections at once (see conftest's dead_address)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{held.getsockname()[1]}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secure(tmp_path_factory: pytest.TempPathFactory, nowhere: str) -> AsyncIterator[Secure]:
    creds = make_credentials(tmp_path_factory.mktemp("credentials"))
    secret = str(creds.directory / "cli.secret")
    await quoteflow("token", "--new-secret", secret)
    async with running_service(
        "quote_svc", "--store", "memory",
        "--tls-cert-file", str(creds.server_cert),
        "--tls-key-file", str(creds.server_key),
        "--tls-client-ca-file", str(creds.ca_file),
        "--auth-jwt-key-file", secret,
    ) as quote:  # fmt: skip
        yield Secure(creds, secret, quote, nowhere)


async def test_with_a_token_and_the_certificates_a_quote_goes_through(secure, cli_at, monkeypatch):
    token = await secure.token("submitter")
    cli = cli_at(**secure.options())
    submitted = await cli("--token", token, "--json", "quote", "submit", *SUBMISSION, "--wait")
    assert submitted.code == 0, submitted.stderr
    *_, settled = submitted.json_lines()
    assert settled["message"]["status"] == "MESSAGE_STATUS_COMPLETED"

    # $QUOTEFLOW_TOKEN when there is no --token; a server-streaming call (the
    # watch above) and a request-response one both carry it.
    monkeypatch.setenv("QUOTEFLOW_TOKEN", token)
    got = await cli("--json", "quote", "get", settled["message"]["id"])
    assert got.code == 0, got.stderr
    assert got.json()["message"]["status"] == "MESSAGE_STATUS_COMPLETED"


async def test_without_a_token_the_call_is_refused_in_words(secure, cli_at, monkeypatch):
    monkeypatch.delenv("QUOTEFLOW_TOKEN", raising=False)
    cli = cli_at(**secure.options())
    result = await cli("quote", "get", "some-id")
    assert result.code == 7
    assert result.stdout == ""
    assert result.stderr == (
        f"quoteflow: the quote service at {secure.quote.address} needs a token "
        "(UNAUTHENTICATED, TOKEN_MISSING): give one with --token or $QUOTEFLOW_TOKEN\n"
    )

    forged = await cli("--json", "--token", "not.a.token", "quote", "get", "some-id")
    assert forged.code == 7
    error = forged.error()
    assert (error["code"], error["reason"], error["exit_code"]) == (
        "UNAUTHENTICATED",
        "TOKEN_INVALID",
        7,
    )
    assert "did not accept the token" in error["message"]


async def test_a_submitter_token_is_denied_an_operator_command(secure, cli_at):
    cli = cli_at(**secure.options())
    token = await secure.token("submitter")
    result = await cli("--token", token, "stats")
    # The quote service's answer comes first; the other two are unreachable.
    assert result.code == 8
    first = result.stderr.splitlines()[0]
    assert first == (
        f"quoteflow: the quote service at {secure.quote.address} denied the call "
        "(PERMISSION_DENIED, ROLE_REQUIRED): GetStats needs one of the roles: operator "
        "(the token has none)"
    )

    operator = await secure.token("operator")
    allowed = await cli("--json", "--token", operator, "stats")
    assert allowed.json()["quote"]["max_size"] > 0


async def test_without_the_client_certificate_the_service_cannot_be_reached(secure, cli_at):
    token = await secure.token("submitter")
    cli = cli_at(**secure.options(client_cert=False))
    result = await cli("--token", token, "quote", "get", "some-id")
    assert result.code == 5
    assert result.stderr.startswith(
        f"quoteflow: cannot reach the quote service at {secure.quote.address} (UNAVAILABLE)"
    )
