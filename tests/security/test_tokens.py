"""Bearer tokens as the services verify them: each key kind, each claim, and
refusals that say what to fix but not which part of a secret was wrong."""

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service_runtime.access import CallRefused, bearer_token
from service_runtime.tls import CredentialFileError
from service_runtime.tokens import (
    CLOCK_SKEW_SECONDS,
    TokenRefused,
    TokenVerifier,
    mint,
    write_secret,
)

ISSUER, AUDIENCE = "quoteflow-dev", "quoteflow"


def _key_pair(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    private_file, public_file = tmp_path / f"{kind}.key", tmp_path / f"{kind}.pub"
    private_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_file.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_file, public_file


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "jwt.secret"
    write_secret(path)
    return path


def _verifier(key: Path) -> TokenVerifier:
    return TokenVerifier(str(key), issuer=ISSUER, audience=AUDIENCE)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_public_keys_verify_what_their_private_keys_signed(tmp_path: Path, kind: str) -> None:
    private, public = _key_pair(tmp_path, kind)
    token = mint(str(private), subject="svc", roles=["service"], ttl_seconds=60)
    assert jwt.get_unverified_header(token)["alg"] == {"rsa": "RS256", "ec": "ES256"}[kind]
    caller = _verifier(public).verify(token)
    assert (caller.subject, caller.roles) == ("svc", frozenset({"service"}))


def test_a_secret_verifies_hs256(secret: Path) -> None:
    token = mint(str(secret), subject="alice", roles=["submitter"], ttl_seconds=60)
    assert _verifier(secret).verify(token).roles == {"submitter"}


def _refusal(secret: Path, token: str) -> TokenRefused:
    with pytest.raises(TokenRefused) as refused:
        _verifier(secret).verify(token)
    return refused.value


def test_expiry_and_not_before_allow_the_clock_skew_and_no_more(secret: Path) -> None:
    now = time.time()
    within = mint(
        str(secret), subject="a", roles=[], ttl_seconds=1, now=now - CLOCK_SKEW_SECONDS + 5
    )
    assert _verifier(secret).verify(within).subject == "a"
    expired = mint(
        str(secret), subject="a", roles=[], ttl_seconds=1, now=now - CLOCK_SKEW_SECONDS - 5
    )
    assert _refusal(secret, expired).reason == "TOKEN_EXPIRED"
    early = mint(
        str(secret), subject="a", roles=[], ttl_seconds=600, now=now + CLOCK_SKEW_SECONDS + 60
    )
    assert _refusal(secret, early).reason == "TOKEN_NOT_YET_VALID"


@pytest.mark.parametrize("claim", ["issuer", "audience"])
def test_another_issuer_or_audience_is_refused(secret: Path, claim: str) -> None:
    token = mint(str(secret), subject="a", roles=[], ttl_seconds=60, **{claim: "elsewhere"})
    refused = _refusal(secret, token)
    assert refused.reason == "TOKEN_WRONG_AUDIENCE"


def test_forgeries_get_one_answer_that_names_no_secret(tmp_path: Path, secret: Path) -> None:
    other = tmp_path / "other.secret"
    write_secret(other)
    good = mint(str(secret), subject="a", roles=["operator"], ttl_seconds=60)
    claims = jwt.decode(good, options={"verify_signature": False})
    forgeries = {
        "another key": mint(str(other), subject="a", roles=["operator"], ttl_seconds=60),
        "alg none": jwt.encode(claims, key=None, algorithm="none"),
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "garbage": "not-a-jwt",
        "no sub": jwt.encode(
            {k: v for k, v in claims.items() if k != "sub"}, secret.read_text().strip(), "HS256"
        ),
    }
    for name, token in forgeries.items():
        refused = _refusal(secret, token)
        assert (refused.reason, str(refused)) == ("TOKEN_INVALID", "the token is not valid"), name


def test_roles_must_be_a_list_of_names(secret: Path) -> None:
    token = jwt.encode(
        {"sub": "a", "roles": "operator", "iss": ISSUER, "aud": AUDIENCE,
         "exp": int(time.time()) + 60},
        secret.read_text().strip(), "HS256",
    )  # fmt: skip
    assert _refusal(secret, token).reason == "TOKEN_INVALID"


def test_unusable_key_files_stop_the_start(tmp_path: Path) -> None:
    private, _ = _key_pair(tmp_path, "ec")
    short = tmp_path / "short.secret"
    short.write_text("too short")
    for path, words in (
        (private, "private key"),
        (short, "at least 32 bytes"),
        (tmp_path / "missing", "cannot read"),
    ):
        with pytest.raises(CredentialFileError, match=words):
            _verifier(path)


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ([], "TOKEN_MISSING"),
        ([("authorization", "Basic dXNlcjpwYXNz")], "TOKEN_MALFORMED"),
        ([("authorization", "Bearer ")], "TOKEN_MALFORMED"),
        ([("authorization", "Bearer a"), ("authorization", "Bearer b")], "TOKEN_MALFORMED"),
    ],
)
def test_the_authorization_header_must_be_one_bearer_token(metadata, reason) -> None:
    with pytest.raises(CallRefused) as refused:
        bearer_token(metadata)
    assert refused.value.status.code.name == "UNAUTHENTICATED"
    assert (
        reason.encode() in dict(refused.value.status.trailing_metadata)["grpc-status-details-bin"]
    )


def test_the_scheme_is_case_insensitive() -> None:
    assert bearer_token([("authorization", "bearer abc.def.ghi")]) == "abc.def.ghi"


def test_a_token_checked_once_still_expires(secret: Path, monkeypatch) -> None:
    verifier = _verifier(secret)
    issued = time.time()
    token = mint(str(secret), subject="a", roles=["operator"], ttl_seconds=60, now=issued)
    assert verifier.verify(token).subject == "a"
    # A second use is answered from what the first check found...
    assert verifier.verify(token).roles == {"operator"}
    # ...until the token's time is up, skew allowed.
    monkeypatch.setattr(time, "time", lambda: issued + 60 + CLOCK_SKEW_SECONDS + 1)
    with pytest.raises(TokenRefused) as refused:
        verifier.verify(token)
    assert refused.value.reason == "TOKEN_EXPIRED"
