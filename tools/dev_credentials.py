"""`make run-secure`: development credentials for running every service with
TLS, mTLS and tokens on one machine. FOR DEVELOPMENT ONLY: the CA's key is
thrown away, the keys are unprotected files, and the tokens last a day.

Writes, under the directory given (var/dev-credentials):
- ca.pem, and a certificate for 127.0.0.1 and localhost (server.pem, server.key)
  that every service serves and presents as its client certificate;
- jwt.secret, the HS256 secret the services verify tokens with;
- a token per use: processor.token and requestor.token (role service, for
  their downstream calls), submitter.token, and admin.token (every role);
- secure.env: the variables that turn it all on, for `set -a; . secure.env`.
"""

import argparse
from pathlib import Path

import trustme

from service_runtime.roles import ROLES, SERVICE, SUBMITTER
from service_runtime.tokens import mint, write_secret

TOKEN_SECONDS = 24 * 3600
GRPC_PREFIXES = ("QUOTE", "PROCESSOR", "REQUESTOR")
#: Who calls another service, and with which token.
CALLERS = ("PROCESSOR", "REQUESTOR")


def write(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    issued = ca.issue_cert("127.0.0.1", "localhost", "::1")
    (directory / "server.pem").write_bytes(b"".join(p.bytes() for p in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(directory / "server.key"))
    (directory / "server.key").chmod(0o600)
    secret = directory / "jwt.secret"
    secret.unlink(missing_ok=True)
    write_secret(secret)
    tokens = {
        "processor": [SERVICE],
        "requestor": [SERVICE],
        "submitter": [SUBMITTER],
        "admin": list(ROLES),
    }
    for name, roles in tokens.items():
        token = mint(str(secret), subject=name, roles=roles, ttl_seconds=TOKEN_SECONDS)
        (directory / f"{name}.token").write_text(token + "\n")

    def path(name: str) -> str:
        return str((directory / name).resolve())

    lines = []
    for prefix in (*GRPC_PREFIXES, "CONSOLE"):
        lines += [
            f"{prefix}_TLS_CERT_FILE={path('server.pem')}",
            f"{prefix}_TLS_KEY_FILE={path('server.key')}",
            f"{prefix}_AUTH_JWT_KEY_FILE={path('jwt.secret')}",
        ]
        # Browsers have no client certificate: mTLS is for the gRPC services.
        if prefix != "CONSOLE":
            lines.append(f"{prefix}_TLS_CLIENT_CA_FILE={path('ca.pem')}")
    for prefix in (*CALLERS, "CONSOLE"):
        lines += [
            f"{prefix}_DOWNSTREAM_CA_FILE={path('ca.pem')}",
            f"{prefix}_DOWNSTREAM_CERT_FILE={path('server.pem')}",
            f"{prefix}_DOWNSTREAM_KEY_FILE={path('server.key')}",
        ]
    for prefix in CALLERS:
        lines.append(f"{prefix}_DOWNSTREAM_TOKEN_FILE={path(prefix.lower() + '.token')}")
    env = directory / "secure.env"
    env.write_text("\n".join(lines) + "\n")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    env = write(parser.parse_args().directory)
    print(f"development credentials in {env.parent} (not for production)")


if __name__ == "__main__":
    main()
