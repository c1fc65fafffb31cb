"""Typed configuration from command-line flags and environment variables.

A configuration is a dataclass whose fields all have defaults. Field
``some_name`` is set by ``--some-name`` or by ``{PREFIX}_SOME_NAME``; a flag
wins over the variable, which wins over the default.
"""

import argparse
import dataclasses
import ipaddress
import os
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from service_runtime.event_loop import loop_factory
from service_runtime.rpc_logging import level_number
from service_runtime.tokens import DEFAULT_AUDIENCE, DEFAULT_ISSUER

T = TypeVar("T")

_TRUE_WORDS = frozenset({"true", "1", "yes"})
_FALSE_WORDS = frozenset({"false", "0", "no"})


def _parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(text)


_PARSERS: dict[type, Callable[[str], Any]] = {
    int: int,
    float: float,
    str: str,
    bool: _parse_bool,
}


#: 4 MiB, gRPC's own default, made explicit: the largest BatchSubmitQuotes fits.
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
#: As many as the processor's default pricing_concurrency: the most a
#: well-behaved client holds (without auth, the processor is a peer like any).
DEFAULT_MAX_STREAMS_PER_CALLER = 1000
#: Above DEFAULT_MAX_STREAMS_PER_CALLER, so one channel can carry them all.
DEFAULT_MAX_STREAMS_PER_CONNECTION = 2048

#: The stores a service can keep its state in; a service that can share one
#: database among its replicas adds "postgres" (its config's store_kinds).
STORE_KINDS = ("sqlite", "memory")
#: The event loops a service can run on (service_runtime.event_loop).
EVENT_LOOPS = ("auto", "uvloop", "asyncio")


@dataclass
class ListenerOptions:
    """What every process that listens needs: where, how it logs, how it
    drains, and its event loop. Each process subclasses it (the services
    through ServerOptions), overriding port.

    A subclass that validates its own fields in __post_init__ must call
    super().__post_init__().
    """

    host: str = field(
        default="127.0.0.1",
        metadata={"help": "address to listen on; 0.0.0.0 or :: listens on every interface"},
    )
    port: int = field(default=0, metadata={"help": "TCP port to listen on; 0 picks a free one"})
    metrics_port: int = field(
        default=0,
        metadata={"help": "TCP port of /metrics (Prometheus, plaintext, on host); 0: none"},
    )
    log_level: str = field(
        default="INFO", metadata={"help": "lowest level logged: DEBUG, INFO, WARNING or ERROR"}
    )
    grace_seconds: float = field(
        default=10.0,
        metadata={"help": "on SIGTERM, how long in-flight calls may run before they are cut"},
    )
    event_loop: str = field(
        default="auto",
        metadata={"help": "uvloop, asyncio (the standard library's) or auto: uvloop if installed"},
    )
    tls_cert_file: str = field(
        default="",
        metadata={
            "help": "PEM certificate (chain) to serve TLS with; read again when it changes, "
            "so a renewed certificate needs no restart"
        },
    )
    tls_key_file: str = field(default="", metadata={"help": "PEM private key of tls_cert_file"})
    tls_client_ca_file: str = field(
        default="",
        metadata={
            "help": "PEM CA: turns on mTLS, every client must present a certificate it signed"
        },
    )
    auth_jwt_key_file: str = field(
        default="",
        metadata={
            "help": "turns on authentication: the PEM public key (RS256, ES256) or HS256 secret "
            "that callers' bearer tokens are verified with"
        },
    )
    auth_issuer: str = field(
        default=DEFAULT_ISSUER, metadata={"help": "the iss a token must carry"}
    )
    auth_audience: str = field(
        default=DEFAULT_AUDIENCE, metadata={"help": "the aud a token must carry"}
    )
    insecure: bool = field(
        default=False,
        metadata={
            "help": "allow listening on a non-loopback address without TLS and authentication"
        },
    )

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file)

    @property
    def auth(self) -> bool:
        return bool(self.auth_jwt_key_file)

    def __post_init__(self) -> None:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        if self.tls_client_ca_file and not self.tls:
            raise ValueError("tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file")
        refusal = exposure_refusal(self.host, tls=self.tls, auth=self.auth, insecure=self.insecure)
        if refusal:
            raise ValueError(refusal)
        if self.event_loop not in EVENT_LOOPS:
            raise ValueError(
                f"event_loop must be one of {', '.join(EVENT_LOOPS)}, not {self.event_loop!r}"
            )
        loop_factory(self.event_loop)  # uvloop asked for but not installed: refused here
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0 to 65535, not {self.port}")
        if not 0 <= self.metrics_port <= 65535 or (
            self.metrics_port and self.metrics_port == self.port
        ):
            raise ValueError(
                f"metrics_port must be 0 (none) or a port of its own, not {self.metrics_port}"
            )
        if self.grace_seconds < 0:
            raise ValueError(f"grace_seconds must not be negative, not {self.grace_seconds}")
        level_number(self.log_level)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_refusal(host: str, *, tls: bool, auth: bool, insecure: bool) -> str:
    """Why a listener must not start this way, or "": beyond loopback it needs
    TLS and authentication both, unless insecure is asked for by name."""
    if is_loopback(host) or insecure or (tls and auth):
        return ""
    missing = " and ".join(
        name
        for name, on in (("TLS (tls_cert_file)", tls), ("authentication (auth_jwt_key_file)", auth))
        if not on
    )
    return (
        f"refusing to listen on {host} without {missing}: anyone who can reach the port "
        "could call every RPC; set them, listen on 127.0.0.1, or pass --insecure"
    )


@dataclass
class ServerOptions(ListenerOptions):
    """What a gRPC service adds: the store it keeps its state in, reflection,
    and the limits on what one caller can hold."""

    #: The stores this service can use.
    store_kinds: ClassVar[tuple[str, ...]] = STORE_KINDS

    store: str = field(
        default="sqlite",
        metadata={"help": "sqlite: durable, in data_dir; memory: lost when the process ends"},
    )
    data_dir: str = field(
        default="var", metadata={"help": "directory of the service's SQLite database"}
    )
    reflection: bool = field(
        default=True,
        metadata={"help": "serve gRPC reflection (for grpcurl and buf curl); off in production"},
    )
    max_request_bytes: int = field(
        default=DEFAULT_MAX_REQUEST_BYTES,
        metadata={
            "help": "largest request message accepted (a full BatchSubmitQuotes fits); a "
            "larger one is RESOURCE_EXHAUSTED"
        },
    )
    max_streams_per_caller: int = field(
        default=DEFAULT_MAX_STREAMS_PER_CALLER,
        metadata={
            "help": "open WatchMessage, WatchOrder and WatchStats streams one caller (a "
            "token's sub, or a peer address without auth) may hold; callers with the "
            "service role are bounded by their own concurrency instead"
        },
    )
    max_streams_per_connection: int = field(
        default=DEFAULT_MAX_STREAMS_PER_CONNECTION,
        metadata={"help": "concurrent calls one HTTP/2 connection may carry"},
    )
    health_port: int = field(
        default=0,
        metadata={
            "help": "a plaintext port serving only grpc.health.v1, for probes that speak no "
            "TLS (the kubelet's gRPC probes); 0: health on the main port only"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(
            self, "max_request_bytes", "max_streams_per_caller", "max_streams_per_connection"
        )
        if not 0 <= self.health_port <= 65535 or (
            self.health_port and self.health_port == self.port
        ):
            raise ValueError(
                f"health_port must be 0 (none) or a port of its own, not {self.health_port}"
            )
        if self.store not in self.store_kinds:
            raise ValueError(
                f"store must be one of {', '.join(self.store_kinds)}, not {self.store!r}"
            )


@dataclass
class SharedStoreOptions(ServerOptions):
    """What a service whose replicas can share one PostgreSQL database adds."""

    store_kinds: ClassVar[tuple[str, ...]] = (*STORE_KINDS, "postgres")
    #: The prefix of the service's environment variables, for the errors.
    env_prefix: ClassVar[str] = ""

    store: str = field(
        default="sqlite",
        metadata={
            "help": "sqlite: durable, in data_dir; memory: lost when the process ends; "
            "postgres: durable, in database_url, shared by every replica"
        },
    )
    database_url: str = field(
        default="",
        metadata={
            "help": "with store postgres: the database every replica shares, "
            "as postgresql://user:password@host:port/database"
        },
    )
    lease_seconds: float = field(
        default=30.0,
        metadata={
            "help": "with store postgres or memory: how long a claim holds its work without "
            "a heartbeat; a dead replica's work runs again after it"
        },
    )
    heartbeat_seconds: float = field(
        default=10.0,
        metadata={"help": "how often a replica extends the leases it holds; under lease_seconds"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, "lease_seconds")
        if self.store == "postgres" and not self.database_url:
            raise ValueError(f"store postgres needs database_url ({self.env_prefix}_DATABASE_URL)")
        if not 0 < self.heartbeat_seconds < self.lease_seconds:
            raise ValueError(
                f"heartbeat_seconds must be positive and under lease_seconds "
                f"({self.lease_seconds}), not {self.heartbeat_seconds}"
            )


@dataclass
class SchedulingOptions:
    """What a service whose queue serves priorities adds: aging, and a cap per
    fairness key (queues/core/fairness.py)."""

    aging_interval: float = field(
        default=60.0,
        metadata={
            "help": "seconds of waiting that serve work one priority higher, up to the top; "
            "0: no aging"
        },
    )
    max_processing_per_key: int = field(
        default=0,
        metadata={"help": "most items of one fairness key processed at once; 0: no cap"},
    )

    def check_scheduling(self) -> None:
        require_non_negative(self, "aging_interval", "max_processing_per_key")


@dataclass
class DownstreamOptions:
    """How a process reaches the services it calls: over TLS when
    downstream_ca_file is set, presenting a certificate for mTLS."""

    downstream_ca_file: str = field(
        default="",
        metadata={"help": "PEM CA that signed the downstream services' certificates: turns on TLS"},
    )
    downstream_cert_file: str = field(
        default="", metadata={"help": "PEM client certificate to present to them (mTLS)"}
    )
    downstream_key_file: str = field(
        default="", metadata={"help": "PEM private key of downstream_cert_file"}
    )

    def check_downstream(self) -> None:
        if bool(self.downstream_cert_file) != bool(self.downstream_key_file):
            raise ValueError(
                "downstream_cert_file and downstream_key_file go together: give both or neither"
            )
        if self.downstream_cert_file and not self.downstream_ca_file:
            raise ValueError("downstream_cert_file (mTLS) needs downstream_ca_file (TLS)")


@dataclass
class ServiceCallerOptions(DownstreamOptions):
    """What a service that calls another adds: the token it calls with."""

    downstream_token_file: str = field(
        default="",
        metadata={
            "help": "file holding the bearer token (with the service role) sent on every "
            "downstream call; read again when it changes"
        },
    )


def load_config(
    cls: type[T],
    *,
    env_prefix: str,
    argv: Sequence[str] | None = None,
    description: str = "",
    prog: str | None = None,
) -> T:
    """Build cls from flags (argv, default sys.argv[1:]), environment variables and defaults.
    prog names the command in --help and errors (default: the script's file name).

    Bad values, from a flag, a variable or cls's own validation, end the
    process with a usage error, as argparse does.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="Every option can also be set by its environment variable; a flag wins.",
    )
    hints = typing.get_type_hints(cls)
    env_names: dict[str, str] = {}
    converters: dict[str, Callable[[str], Any]] = {}
    for option in dataclasses.fields(cls):
        if not option.init:
            continue
        kind = hints[option.name]
        env_name = f"{env_prefix}_{option.name.upper()}"
        env_names[option.name] = env_name
        converters[option.name] = _converter(kind)
        _add_flag(parser, option, kind, env_name, converters[option.name])

    # SUPPRESS leaves absent flags out of the namespace, which is how a flag
    # left unset is told apart from one set to the default's value.
    given = vars(parser.parse_args(argv))
    for name, env_name in env_names.items():
        if name in given or env_name not in os.environ:
            continue
        try:
            given[name] = converters[name](os.environ[env_name])
        except argparse.ArgumentTypeError as error:
            parser.error(f"environment variable {env_name}: {error}")
    try:
        return cls(**given)
    except ValueError as error:
        parser.error(str(error))


def _converter(kind: type) -> Callable[[str], Any]:
    parse = _PARSERS.get(kind)
    if parse is None:
        raise TypeError(f"unsupported option type {kind!r}; use one of int, float, str, bool")

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None

    return convert


def _add_flag(
    parser: argparse.ArgumentParser,
    option: dataclasses.Field[Any],
    kind: type,
    env_name: str,
    convert: Callable[[str], Any],
) -> None:
    if option.default is not dataclasses.MISSING:
        default = option.default
    elif option.default_factory is not dataclasses.MISSING:
        default = option.default_factory()
    else:
        raise TypeError(f"option {option.name!r} needs a default")
    accepted = " (true/false/1/0/yes/no)" if kind is bool else ""
    described = f"{option.metadata.get('help', '')}{accepted} [env {env_name}; default {default!r}]"
    parser.add_argument(
        "--" + option.name.replace("_", "-"),
        dest=option.name,
        type=convert,
        default=argparse.SUPPRESS,
        metavar=kind.__name__.upper(),
        # argparse %-formats help text, so a literal % in it must be doubled.
        help=described.replace("%", "%%"),
        # A bare boolean flag means true, so --verbose reads like a switch.
        nargs="?" if kind is bool else None,
        const=True if kind is bool else None,
    )


def require_positive(options: object, *names: str) -> None:
    """Raise ValueError naming the first option that is not above zero."""
    for name in names:
        value = getattr(options, name)
        if value <= 0:
            need = "at least 1" if isinstance(value, int) else "positive"
            raise ValueError(f"{name} must be {need}, not {value}")


def require_non_negative(options: object, *names: str) -> None:
    """Raise ValueError naming the first option that is below zero."""
    for name in names:
        value = getattr(options, name)
        if value < 0:
            raise ValueError(f"{name} must not be negative, not {value}")
