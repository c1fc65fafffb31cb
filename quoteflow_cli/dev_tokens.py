"""quoteflow token: development tokens, and the HS256 secrets that sign them.

For development only: production tokens come from an identity provider, and
the services are given its public key.
"""

import argparse
import datetime
import time
from pathlib import Path

import jwt
from rich.text import Text

from quoteflow_cli.command import Commands, add_command, positive_seconds
from quoteflow_cli.connection import Clients
from quoteflow_cli.errors import UsageError
from quoteflow_cli.exit_codes import ExitCode
from quoteflow_cli.output import PROGRAM, Output
from service_runtime.roles import ROLES
from service_runtime.tls import CredentialFileError
from service_runtime.tokens import DEFAULT_AUDIENCE, DEFAULT_ISSUER, mint, write_secret

DEFAULT_TTL_SECONDS = 3600.0
#: The shortest HS256 secret the services accept (service_runtime.tokens).
_MIN_SECRET_BYTES = 32

_DESCRIPTION = f"""\
FOR DEVELOPMENT ONLY: production tokens come from your identity provider.

Print a token signed with --key-file: an HS256 secret, or an RSA or EC P-256
private key (PEM), whose public key the services verify with. Or, with
--new-secret, write a new random HS256 secret (readable by its owner only) for
the services' --auth-jwt-key-file and this command's --key-file.

  {PROGRAM} token --new-secret dev/jwt.secret
  export QUOTEFLOW_TOKEN=$({PROGRAM} token --key-file dev/jwt.secret \\
      --subject alice --role submitter --role operator)

roles: {", ".join(ROLES)}
"""


def register(commands: Commands) -> None:
    parser = add_command(
        commands,
        "token",
        token,
        help="development only: mint a token, or write a new HS256 secret",
        description=_DESCRIPTION,
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--key-file",
        # Not key_file: that is the global --key-file, the mTLS client key.
        dest="signing_key_file",
        metavar="FILE",
        help="sign with this HS256 secret or private key",
    )
    what.add_argument(
        "--new-secret", metavar="FILE", help="write a new HS256 secret to FILE (never overwritten)"
    )
    parser.add_argument("--subject", metavar="NAME", help="who the token names (its sub)")
    parser.add_argument(
        "--role",
        dest="roles",
        metavar="ROLE",
        action="append",
        type=_role,
        help=f"a role the token grants, once per role: {', '.join(ROLES)}",
    )
    parser.add_argument(
        "--ttl",
        metavar="SECONDS",
        type=positive_seconds,
        help=f"how long the token lasts (default {DEFAULT_TTL_SECONDS:g})",
    )
    parser.add_argument("--issuer", help=f"its iss (default {DEFAULT_ISSUER})")
    parser.add_argument("--audience", help=f"its aud (default {DEFAULT_AUDIENCE})")


def _role(text: str) -> str:
    if text not in ROLES:
        raise argparse.ArgumentTypeError(f"no role {text!r}: the roles are {', '.join(ROLES)}")
    return text


async def token(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    if args.new_secret is not None:
        given = {
            "--subject": args.subject,
            "--role": args.roles,
            "--ttl": args.ttl,
            "--issuer": args.issuer,
            "--audience": args.audience,
        }
        minting = [option for option, value in given.items() if value is not None]
        if minting:
            verb = "is" if len(minting) == 1 else "are"
            raise UsageError(
                f"token: --new-secret writes a secret only; {', '.join(minting)} {verb} "
                "for minting a token, with --key-file"
            )
        return _new_secret(Path(args.new_secret), out)
    if not args.subject:
        raise UsageError("token: --key-file needs --subject, the name the token is for")
    if not args.roles:
        raise UsageError(f"token: give at least one --role ({', '.join(ROLES)})")
    return _mint(args, out)


def _new_secret(path: Path, out: Output) -> int:
    # write_secret creates the file exclusively and owner-only: an existing one
    # is never replaced, and the secret is never readable by others.
    try:
        write_secret(path)
    except FileExistsError:
        raise UsageError(
            f"token: {path} exists; a new secret is never written over one "
            "(remove it first, and every token it signed stops working)"
        ) from None
    except OSError as error:
        raise UsageError(f"token: cannot write {path}: {error.strerror}") from None
    out.emit(
        {"secret_file": str(path)},
        Text(f"wrote a new HS256 secret to {path} (for development only)"),
    )
    return ExitCode.OK


def _mint(args: argparse.Namespace, out: Output) -> int:
    key_file = args.signing_key_file
    _check_signing_key(key_file)
    roles = list(dict.fromkeys(args.roles))  # in order, once each
    ttl = args.ttl if args.ttl is not None else DEFAULT_TTL_SECONDS
    issuer = args.issuer if args.issuer is not None else DEFAULT_ISSUER
    audience = args.audience if args.audience is not None else DEFAULT_AUDIENCE
    now = time.time()
    try:
        signed = mint(
            key_file,
            subject=args.subject,
            roles=roles,
            ttl_seconds=ttl,
            issuer=issuer,
            audience=audience,
            now=now,
        )
    except CredentialFileError as error:
        raise UsageError(f"token: {error}") from None
    except (ValueError, TypeError, jwt.PyJWTError) as error:
        # An encrypted, malformed or unsupported key.
        raise UsageError(
            f"token: cannot sign with {key_file} (an HS256 secret, or an RSA or EC P-256 "
            f"private key without a password): {error}"
        ) from None
    expires = datetime.datetime.fromtimestamp(int(now + ttl), datetime.UTC)
    out.emit(
        {
            "token": signed,
            "subject": args.subject,
            "roles": roles,
            "issuer": issuer,
            "audience": audience,
            "expires_at": expires.isoformat().replace("+00:00", "Z"),
        },
        # Alone on its line, so that $(quoteflow token …) is the token.
        Text(signed),
    )
    return ExitCode.OK


def _check_signing_key(path: str) -> None:
    """UsageError for a file that would sign tokens no service accepts."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"token: cannot read the key file {path}: {error.strerror}") from None
    if b"PRIVATE KEY-----" in data:
        return
    if b"PUBLIC KEY-----" in data or b"CERTIFICATE-----" in data:
        raise UsageError(
            f"token: {path} holds a public key or a certificate: sign with the private key "
            "(the services verify with the public one)"
        )
    if len(data.strip()) < _MIN_SECRET_BYTES:
        raise UsageError(
            f"token: {path} is too short for an HS256 secret (at least {_MIN_SECRET_BYTES} "
            f"bytes; {PROGRAM} token --new-secret writes one)"
        )
