"""TLS, mTLS and the bearer token of every call, from the global options.

--ca-file turns TLS on (the CA that signed the services' certificates);
--cert-file and --key-file add a client certificate, for services that require
one (mTLS); --token, or $QUOTEFLOW_TOKEN, is sent as `authorization: Bearer`
with every call. The files are checked before anything is sent, so a missing
or wrong one is a usage error naming the option, not a failed handshake.
"""

import argparse
import os
from pathlib import Path

from quoteflow_cli.errors import UsageError
from service_runtime.channels import ClientSecurity
from service_runtime.tls import ClientTls

TOKEN_ENV = "QUOTEFLOW_TOKEN"

#: What each file must hold: a PEM block whose label ends so.
_PEM_LABELS = {
    "--ca-file": "CERTIFICATE",
    "--cert-file": "CERTIFICATE",
    "--key-file": "PRIVATE KEY",
}


def add_security_options(parser: argparse.ArgumentParser) -> None:
    # The token's default is read later, not here: --help must never print it.
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        default=None,
        help=f"bearer token sent with every call (default ${TOKEN_ENV}, which keeps it "
        "out of the shell history and the process list)",
    )
    parser.add_argument(
        "--ca-file",
        metavar="FILE",
        default="",
        help="TLS: the CA certificate (PEM) that signed the services' certificates",
    )
    parser.add_argument(
        "--cert-file",
        metavar="FILE",
        default="",
        help="mTLS: this client's certificate (PEM), with --key-file and --ca-file",
    )
    parser.add_argument(
        "--key-file", metavar="FILE", default="", help="mTLS: the private key of --cert-file (PEM)"
    )


def security_from_options(args: argparse.Namespace) -> ClientSecurity:
    """The channels' security as the options say; UsageError for a file that
    cannot be used, options that do not go together, or a malformed token."""
    if bool(args.cert_file) != bool(args.key_file):
        raise UsageError("--cert-file and --key-file go together: a client certificate and its key")
    if args.cert_file and not args.ca_file:
        raise UsageError(
            "--cert-file and --key-file need --ca-file: a client certificate is sent over TLS only"
        )
    for option, path in (
        ("--ca-file", args.ca_file),
        ("--cert-file", args.cert_file),
        ("--key-file", args.key_file),
    ):
        if path:
            _check_pem(option, path)
    tls = ClientTls(args.ca_file, args.cert_file, args.key_file) if args.ca_file else None
    token = _token(args.token)
    return ClientSecurity(tls=tls, token=(lambda: token) if token else None)


def _check_pem(option: str, path: str) -> None:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"{option} {path}: cannot read it: {error.strerror}") from None
    label = _PEM_LABELS[option]
    if f"{label}-----".encode() not in data:
        raise UsageError(f"{option} {path}: not a PEM file with a {label.lower()} in it")


def _token(given: str | None) -> str:
    """The token of --token, else of $QUOTEFLOW_TOKEN; "" for none."""
    source = "--token" if given is not None else f"${TOKEN_ENV}"
    token = (given if given is not None else os.environ.get(TOKEN_ENV, "")).strip()
    # A metadata value is printable ASCII; a JWT has no spaces either.
    if any(not (" " < char <= "~") for char in token):
        raise UsageError(
            f"{source} is not a token: it has spaces or characters a token cannot have "
            "(give the token alone, without 'Bearer ')"
        )
    return token
