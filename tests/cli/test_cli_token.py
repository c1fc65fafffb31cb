"""quoteflow token (development secrets and tokens), and the global TLS and
token options refused before anything is sent when they cannot be used."""

import datetime
import time

import pytest
import trustme

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from service_runtime.tokens import TokenRefused, TokenVerifier


async def test_a_new_secret_is_owner_only_and_never_overwritten(cli_at, tmp_path):
    cli = cli_at()
    secret = tmp_path / "jwt.secret"
    made = await cli("--json", "token", "--new-secret", str(secret))
    assert made.code == 0, made.stderr
    assert made.json() == {"secret_file": str(secret)}
    written = secret.read_bytes()
    assert len(written.strip()) >= 32
    assert secret.stat().st_mode & 0o777 == 0o600

    again = await cli("token", "--new-secret", str(secret))
    assert again.code == 2
    assert again.stderr.startswith(f"quoteflow: token: {secret} exists; ")
    assert secret.read_bytes() == written


async def test_a_token_carries_the_subject_roles_and_lifetime_asked_for(cli_at, tmp_path):
    cli = cli_at()
    secret = tmp_path / "jwt.secret"
    assert (await cli("token", "--new-secret", str(secret))).code == 0
    before = time.time()
    minted = await cli(
        "--json", "token", "--key-file", str(secret), "--subject", "alice",
        "--role", "submitter", "--role", "operator", "--role", "submitter",
        "--ttl", "120", "--issuer", "tests", "--audience", "cli-tests",
    )  # fmt: skip
    assert minted.code == 0, minted.stderr
    data = minted.json()
    assert (data["subject"], data["roles"]) == ("alice", ["submitter", "operator"])
    expires = datetime.datetime.fromisoformat(data["expires_at"]).timestamp()
    assert before + 119 <= expires <= time.time() + 120

    verifier = TokenVerifier(str(secret), issuer="tests", audience="cli-tests")
    caller = verifier.verify(data["token"])
    assert (caller.subject, caller.roles) == ("alice", frozenset({"submitter", "operator"}))
    with pytest.raises(TokenRefused):
        TokenVerifier(str(secret), issuer="quoteflow-dev", audience="quoteflow").verify(
            data["token"]
        )

    # For people, the token alone, so that $(quoteflow token …) is the token.
    plain = await cli("token", "--key-file", str(secret), "--subject", "bob", "--role", "reviewer")
    assert plain.code == 0, plain.stderr
    [line] = plain.stdout.splitlines()
    caller = TokenVerifier(str(secret), issuer="quoteflow-dev", audience="quoteflow").verify(line)
    assert (caller.subject, caller.roles) == ("bob", frozenset({"reviewer"}))


async def test_the_token_command_refuses_unknown_roles_and_unusable_keys(cli_at, tmp_path):
    cli = cli_at()
    secret = tmp_path / "jwt.secret"
    assert (await cli("token", "--new-secret", str(secret))).code == 0
    unknown = await cli("token", "--key-file", str(secret), "--subject", "a", "--role", "admin")
    assert (unknown.code, unknown.stdout) == (2, "")
    assert unknown.stderr == (
        "quoteflow: token: argument --role: no role 'admin': the roles are submitter, "
        "reviewer, operator, service (see quoteflow token --help)\n"
    )
    certificate = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(certificate))
    public = await cli(
        "token", "--key-file", str(certificate), "--subject", "a", "--role", "operator"
    )
    assert public.code == 2
    assert "holds a public key or a certificate: sign with the private key" in public.stderr
    no_roles = await cli("token", "--key-file", str(secret), "--subject", "a")
    assert no_roles.code == 2
    assert "give at least one --role" in no_roles.stderr


async def test_the_token_command_says_it_is_for_development(cli_at):
    token_help = await cli_at()("token", "--help")
    assert token_help.code == 0
    assert "FOR DEVELOPMENT ONLY" in token_help.stdout
    listed = await cli_at()("--help")
    assert "development only" in listed.stdout


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--ca-file", "{missing}"],
            "--ca-file {missing}: cannot read it: No such file or directory",
        ),
        (["--ca-file", "{key}"], "--ca-file {key}: not a PEM file with a certificate in it"),
        (
            ["--ca-file", "{cert}", "--cert-file", "{cert}", "--key-file", "{cert}"],
            "--key-file {cert}: not a PEM file with a private key in it",
        ),
        (
            ["--ca-file", "{cert}", "--cert-file", "{cert}"],
            "--cert-file and --key-file go together: a client certificate and its key",
        ),
        (
            ["--cert-file", "{cert}", "--key-file", "{key}"],
            "--cert-file and --key-file need --ca-file: a client certificate is sent over TLS only",
        ),
        (
            ["--token", "Bearer abc"],
            "--token is not a token: it has spaces or characters a token cannot have "
            "(give the token alone, without 'Bearer ')",
        ),
    ],
)
async def test_unusable_credentials_are_a_one_line_usage_error(
    cli, quote, tmp_path, options, message
):
    files = {
        "missing": tmp_path / "missing.pem",
        "key": tmp_path / "k.pem",
        "cert": tmp_path / "c.pem",
    }
    issued = trustme.CA().issue_cert("client")
    issued.private_key_pem.write_to_path(str(files["key"]))
    issued.cert_chain_pems[0].write_to_path(str(files["cert"]))
    paths = {name: str(path) for name, path in files.items()}
    submit = ("quote", "submit", "--name", "Ada", "--address", "1 Main St", "--coverage", "9")
    result = await cli(*(option.format(**paths) for option in options), *submit)
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == f"quoteflow: {message.format(**paths)}\n"
    # Refused before anything was sent: no quote was queued.
    stats = await quote.stub.GetStats(quote_pb.GetStatsRequest())
    assert stats.pending_count + stats.processing_count + stats.completed_count == 0
