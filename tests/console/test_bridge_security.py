"""The console with the services' security on: the page's token reaches the
service with every call, unary and streamed; the console's own auth refuses
what the role table refuses; and it serves its page over TLS."""

import asyncio
import ssl
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from connectrpc.client import ConnectClient
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_binary_codec
from connectrpc.errors import ConnectError
from console.support import closed_address
from google.rpc import error_details_pb2
from support.credentials import Credentials, make_credentials
from support.service_process import Launched, running_service

from console_svc.bridge import QUOTE, method_info
from console_svc.config import ConsoleConfig
from console_svc.service import running
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from service_runtime import roles

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secured(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Credentials, Launched]]:
    creds = make_credentials(tmp_path_factory.mktemp("credentials"))
    async with running_service(
        "quote_svc", "--store", "memory", "--workers", "0",
        "--auth-jwt-key-file", str(creds.jwt_secret),
    ) as quote:  # fmt: skip
        yield creds, quote


def _config(quote: str, **extra: object) -> ConsoleConfig:
    away = closed_address()
    return ConsoleConfig(
        port=0, quote_address=quote, processor_address=away, requestor_address=away, **extra
    )


def _method(name: str) -> Any:
    return method_info(QUOTE.descriptor.methods_by_name[name])


def _reason(error: ConnectError) -> str:
    (info,) = [
        error_details_pb2.ErrorInfo.FromString(d.message_bytes)
        for d in error.details
        if d.type_name == "google.rpc.ErrorInfo"
    ]
    return info.reason


async def test_the_pages_token_goes_on_to_the_service(secured) -> None:
    creds, quote = secured
    operator = {"authorization": f"Bearer {creds.token(roles.OPERATOR)}"}
    async with (
        running(_config(quote.address)) as console,
        ConnectClient(f"http://{console.address}", codec=google_protobuf_binary_codec()) as page,
    ):
        with pytest.raises(ConnectError) as refused:
            await page.execute_unary(request=quote_pb.GetStatsRequest(), method=_method("GetStats"))
        assert refused.value.code == Code.UNAUTHENTICATED
        assert _reason(refused.value) == "TOKEN_MISSING"
        stats = await page.execute_unary(
            request=quote_pb.GetStatsRequest(), method=_method("GetStats"), headers=operator
        )
        assert stats.max_size > 0
        stream = page.execute_server_stream(
            request=quote_pb.WatchStatsRequest(), method=_method("WatchStats"), headers=operator
        )
        first = await anext(aiter(stream))
        assert first.stats.max_size == stats.max_size
        await stream.aclose()


async def test_with_auth_of_its_own_the_console_refuses_a_role_the_table_refuses(
    secured,
) -> None:
    creds, quote = secured
    submitter = {"authorization": f"Bearer {creds.token(roles.SUBMITTER)}"}
    config = _config(quote.address, auth_jwt_key_file=str(creds.jwt_secret))
    async with (
        running(config) as console,
        ConnectClient(f"http://{console.address}", codec=google_protobuf_binary_codec()) as page,
    ):
        with pytest.raises(ConnectError) as refused:
            await page.execute_unary(
                request=quote_pb.GetStatsRequest(), method=_method("GetStats"), headers=submitter
            )
        assert refused.value.code == Code.PERMISSION_DENIED
        assert _reason(refused.value) == "ROLE_REQUIRED"
        expired = {"authorization": f"Bearer {creds.token(roles.OPERATOR, ttl=-3600)}"}
        with pytest.raises(ConnectError) as stale:
            await page.execute_unary(
                request=quote_pb.GetStatsRequest(), method=_method("GetStats"), headers=expired
            )
        assert stale.value.code == Code.UNAUTHENTICATED
        assert _reason(stale.value) == "TOKEN_EXPIRED"


def _get(url: str, ca_file: Path | None) -> int:
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    with urllib.request.urlopen(url, timeout=5, context=context) as answer:
        return int(answer.status)


async def test_the_console_serves_over_tls(secured) -> None:
    creds, quote = secured
    config = _config(
        quote.address, tls_cert_file=str(creds.server_cert), tls_key_file=str(creds.server_key)
    )
    async with running(config) as console:
        url = f"https://{console.address}/healthz/live"
        assert await asyncio.to_thread(_get, url, creds.ca_file) == 200
        with pytest.raises(OSError):
            # Plaintext to a TLS port: no HTTP answer.
            await asyncio.to_thread(_get, f"http://{console.address}/healthz/live", None)
