"""TLS for the gRPC listeners and channels, from PEM files.

A listener's certificate is read again whenever its files change, through
grpc's dynamic server credentials: a renewed Secret (cert-manager's rotation)
reaches new connections without a restart, and connections already open keep
the certificate they were made with.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

from service_runtime.rpc_logging import FIELDS_ATTRIBUTE

logger = logging.getLogger("service_runtime.tls")


#: What tells a file that changed: its modification time and inode (a Secret's
#: files are swapped by a symlink, which changes the inode).
FileStamp = tuple[int, int]


def file_stamps(*paths: str) -> tuple[FileStamp, ...]:
    """The stamps of paths; OSError if one is missing (mid-rotation, say)."""
    stats = [os.stat(path) for path in paths]
    return tuple((stat.st_mtime_ns, stat.st_ino) for stat in stats)


class CredentialFileError(OSError):
    """A certificate, key, CA or token file that cannot be read or used: the
    process cannot start."""


def read_pem(path: str, what: str) -> bytes:
    """The file's bytes; CredentialFileError saying which file, and what it was for."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CredentialFileError(f"cannot read the {what} {path}: {error.strerror}") from error


@dataclass(frozen=True)
class ServerTls:
    """A listener's certificate and key, and with client_ca_file, mTLS: every
    client must present a certificate that CA signed."""

    cert_file: str
    key_file: str
    client_ca_file: str = ""

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials that reload the files when they change (first read here,
        so a missing file stops the start rather than the first handshake)."""
        reloading = _ReloadingCertificate(self)
        initial = reloading.configuration()
        return grpc.dynamic_ssl_server_credentials(
            initial,
            # arg-type: grpc-stubs leaves out that the fetcher may answer None
            # (keep the configuration in use), as grpc documents.
            reloading.fetch,  # type: ignore[arg-type]
            require_client_authentication=bool(self.client_ca_file),
        )


class _ReloadingCertificate:
    """grpc's certificate configuration fetcher: asked at each new handshake,
    it answers a new configuration only when a file's modification changed."""

    def __init__(self, tls: ServerTls) -> None:
        self._tls = tls
        self._seen: tuple[FileStamp, ...] = ()

    def _stamps(self) -> tuple[FileStamp, ...]:
        paths = [self._tls.cert_file, self._tls.key_file]
        if self._tls.client_ca_file:
            paths.append(self._tls.client_ca_file)
        try:
            return file_stamps(*paths)
        except OSError:
            # Mid-rotation: keep the configuration in use until the new files
            # are all there.
            return self._seen

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        self._seen = self._stamps()
        tls = self._tls
        pair = (read_pem(tls.key_file, "TLS key"), read_pem(tls.cert_file, "TLS certificate"))
        client_ca = read_pem(tls.client_ca_file, "client CA") if tls.client_ca_file else None
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=client_ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """None keeps the configuration in use; grpc calls this from its own thread."""
        if self._stamps() == self._seen:
            return None
        try:
            configuration = self.configuration()
        except CredentialFileError as error:
            logger.warning(
                "certificate not reloaded", extra={FIELDS_ATTRIBUTE: {"error": str(error)}}
            )
            return None
        logger.info(
            "certificate reloaded", extra={FIELDS_ATTRIBUTE: {"cert_file": self._tls.cert_file}}
        )
        return configuration


@dataclass(frozen=True)
class ClientTls:
    """How a channel verifies its server (ca_file) and, for mTLS, the
    certificate it presents (cert_file and key_file)."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=read_pem(self.ca_file, "CA file"),
            private_key=read_pem(self.key_file, "client key") if self.key_file else None,
            certificate_chain=(
                read_pem(self.cert_file, "client certificate") if self.cert_file else None
            ),
        )
