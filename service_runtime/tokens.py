"""Bearer tokens: JWTs verified with PyJWT, and minted for development.

The key file decides the algorithm: a PEM public key verifies RS256 (RSA) or
ES256 (EC P-256) tokens; any other file is an HS256 shared secret. A token
names its caller in `sub` and what it may do in `roles`.
"""

import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service_runtime.tls import CredentialFileError, read_pem

#: How far the verifier's clock and the issuer's may disagree, in seconds.
CLOCK_SKEW_SECONDS = 30
#: The issuer and audience a `quoteflow token` mints for by default, and the
#: services expect when --auth-issuer and --auth-audience are left empty.
DEFAULT_ISSUER = "quoteflow-dev"
DEFAULT_AUDIENCE = "quoteflow"
_MIN_SECRET_BYTES = 32
#: Tokens whose signature was checked, kept so that the next call with the
#: same token costs a dictionary lookup, not a signature check (~150 µs).
_VERIFIED_CACHE_SIZE = 4096


class AuthOptions(Protocol):
    """The options that turn authentication on (service_runtime.config.ListenerOptions)."""

    auth_jwt_key_file: str
    auth_issuer: str
    auth_audience: str


@dataclass(frozen=True)
class Caller:
    """Who a verified token says is calling."""

    subject: str
    roles: frozenset[str]


class TokenRefused(Exception):
    """A token that proves nothing. reason is the ErrorInfo reason; the message
    says what to fix without saying which part of a secret was wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class _Key:
    material: Any
    algorithm: str


def _verifying_key(path: str) -> _Key:
    data = read_pem(path, "JWT key file")
    if b"-----BEGIN PUBLIC KEY-----" in data:
        public = serialization.load_pem_public_key(data)
        if isinstance(public, rsa.RSAPublicKey):
            return _Key(public, "RS256")
        if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1":
            return _Key(public, "ES256")
        raise CredentialFileError(f"{path}: only RSA and EC P-256 public keys are supported")
    if b"PRIVATE KEY-----" in data:
        raise CredentialFileError(
            f"{path} holds a private key: give the services the public key only"
        )
    secret = data.strip()
    if len(secret) < _MIN_SECRET_BYTES:
        raise CredentialFileError(
            f"{path}: an HS256 secret needs at least {_MIN_SECRET_BYTES} bytes"
        )
    return _Key(secret, "HS256")


class TokenVerifier:
    """Verifies signature, exp, nbf, iss and aud of every token it is given."""

    def __init__(self, key_file: str, *, issuer: str, audience: str) -> None:
        self._key = _verifying_key(key_file)
        self._issuer = issuer
        self._audience = audience
        #: token → (its caller, nbf, exp): what a full check found, which only
        #: time can change.
        self._verified: dict[str, tuple[Caller, float, float]] = {}

    @classmethod
    def for_options(cls, options: "AuthOptions") -> "TokenVerifier | None":
        """The verifier a listener's options ask for (auth_jwt_key_file), or None."""
        if not options.auth_jwt_key_file:
            return None
        return cls(
            options.auth_jwt_key_file, issuer=options.auth_issuer, audience=options.auth_audience
        )

    def verify(self, token: str) -> Caller:
        known = self._verified.get(token)
        if known is None:
            return self._check(token)
        caller, not_before, expires = known
        now = time.time()
        if now < not_before - CLOCK_SKEW_SECONDS:
            raise TokenRefused("TOKEN_NOT_YET_VALID", "the token is not valid yet")
        if now > expires + CLOCK_SKEW_SECONDS:
            del self._verified[token]
            raise TokenRefused("TOKEN_EXPIRED", "the token has expired")
        return caller

    def _check(self, token: str) -> Caller:
        try:
            claims = jwt.decode(
                token,
                self._key.material,
                # One algorithm, the key's: a token cannot choose "none", or
                # HS256 keyed with the public key.
                algorithms=[self._key.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise TokenRefused("TOKEN_EXPIRED", "the token has expired") from error
        except jwt.ImmatureSignatureError as error:
            raise TokenRefused("TOKEN_NOT_YET_VALID", "the token is not valid yet") from error
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError) as error:
            raise TokenRefused(
                "TOKEN_WRONG_AUDIENCE", "the token was not issued for this service"
            ) from error
        except jwt.InvalidTokenError as error:
            # A bad signature, a malformed token, a missing claim: one answer,
            # so a forger learns nothing from which check failed.
            raise TokenRefused("TOKEN_INVALID", "the token is not valid") from error
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise TokenRefused("TOKEN_INVALID", "the token's roles claim is not a list of names")
        caller = Caller(subject=str(claims["sub"]), roles=frozenset(roles))
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()
        not_before = float(claims.get("nbf", 0))
        self._verified[token] = (caller, not_before, float(claims["exp"]))
        return caller


def mint(
    key_file: str,
    *,
    subject: str,
    roles: Sequence[str],
    ttl_seconds: float,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
    now: float | None = None,
) -> str:
    """A token signed with key_file: an HS256 secret, or an RSA or EC P-256
    private key in PEM. For development: production tokens come from your
    identity provider."""
    data = read_pem(key_file, "signing key")
    key: Any
    if b"PRIVATE KEY-----" in data:
        key = serialization.load_pem_private_key(data, password=None)
        algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    else:
        key, algorithm = data.strip(), "HS256"
    issued = time.time() if now is None else now
    claims = {
        "sub": subject,
        "roles": list(roles),
        "iss": issuer,
        "aud": audience,
        "iat": int(issued),
        "nbf": int(issued),
        "exp": int(issued + ttl_seconds),
    }
    return jwt.encode(claims, key, algorithm=algorithm)


def write_secret(path: Path) -> None:
    """A new random HS256 secret at path, readable by its owner only;
    FileExistsError if path exists (a secret is never written over)."""
    # Created owner-only, so the secret is never readable by others, even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(secrets.token_urlsafe(48) + "\n")
