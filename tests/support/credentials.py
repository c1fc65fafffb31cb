"""Certificates, keys and tokens made in the test, never committed: a CA with
a server certificate for 127.0.0.1 and localhost and a client certificate,
another CA's client certificate (which mTLS must refuse), an HS256 secret,
and tokens signed with it."""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trustme

from service_runtime.tokens import DEFAULT_AUDIENCE, DEFAULT_ISSUER, mint, write_secret


@dataclass(frozen=True)
class Credentials:
    directory: Path
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path
    jwt_secret: Path

    def token(
        self,
        *roles: str,
        subject: str = "alice",
        ttl: float = 3600,
        audience: str = DEFAULT_AUDIENCE,
        issuer: str = DEFAULT_ISSUER,
        issued: float | None = None,
    ) -> str:
        return mint(
            str(self.jwt_secret),
            subject=subject,
            roles=roles,
            ttl_seconds=ttl,
            audience=audience,
            issuer=issuer,
            now=time.time() if issued is None else issued,
        )

    def token_file(self, name: str, roles: Sequence[str]) -> Path:
        path = self.directory / f"{name}.token"
        path.write_text(self.token(*roles, subject=name) + "\n")
        return path

    def server_flags(self, *, mtls: bool = True) -> list[str]:
        flags = [
            "--tls-cert-file", str(self.server_cert),
            "--tls-key-file", str(self.server_key),
            "--auth-jwt-key-file", str(self.jwt_secret),
        ]  # fmt: skip
        return [*flags, "--tls-client-ca-file", str(self.ca_file)] if mtls else flags

    def downstream_flags(self, token_file: Path) -> list[str]:
        return [
            "--downstream-ca-file", str(self.ca_file),
            "--downstream-cert-file", str(self.client_cert),
            "--downstream-key-file", str(self.client_key),
            "--downstream-token-file", str(token_file),
        ]  # fmt: skip


def issue_certificate(ca: trustme.CA, directory: Path, name: str, *hosts: str) -> tuple[Path, Path]:
    """(certificate chain, key) files of a certificate ca issues for hosts."""
    issued = ca.issue_cert(*hosts)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    for blob in issued.cert_chain_pems:
        with cert.open("ab") as out:
            out.write(blob.bytes())
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


def make_credentials(directory: Path) -> Credentials:
    directory.mkdir(parents=True, exist_ok=True)
    ca, stranger_ca = trustme.CA(), trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_cert, server_key = issue_certificate(ca, directory, "server", "127.0.0.1", "localhost")
    client_cert, client_key = issue_certificate(ca, directory, "client", "client.quoteflow")
    stranger_cert, stranger_key = issue_certificate(
        stranger_ca, directory, "stranger", "stranger.example"
    )
    secret = directory / "jwt.secret"
    write_secret(secret)
    return Credentials(
        directory, ca_file, server_cert, server_key, client_cert, client_key,
        stranger_cert, stranger_key, secret,
    )  # fmt: skip
