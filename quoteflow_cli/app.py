"""The command line: argparse, dispatch, and every failure turned into one line and
an exit code.

``run(argv)`` runs one command, awaitable, for callers already inside an event loop
(the tests run it next to in-process servers); ``quoteflow_cli.__main__.main`` runs
it as the console script.
"""

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from quoteflow_cli import batch, dead_letters, dev_tokens, exit_codes, orders, quotes, stats
from quoteflow_cli.command import Parser, add_group, positive_seconds
from quoteflow_cli.connection import DEFAULT_TIMEOUT, Clients, default_address, env_name
from quoteflow_cli.errors import CliError, UnexpectedError, UsageError
from quoteflow_cli.exit_codes import ExitCode
from quoteflow_cli.output import PROGRAM, Output
from quoteflow_cli.security import TOKEN_ENV, add_security_options, security_from_options

_EPILOG = f"""\
Global options go before the command: {PROGRAM} --json --timeout 30 quote get ID
(--json may also follow it). Every command has its own --help.

{exit_codes.HELP}
environment:
  QUOTEFLOW_QUOTE_ADDRESS, QUOTEFLOW_PROCESSOR_ADDRESS, QUOTEFLOW_REQUESTOR_ADDRESS
       default addresses of the services (the options win)
  {TOKEN_ENV}
       the bearer token sent with every call, unless --token is given
  QUOTEFLOW_DEBUG=1
       a traceback instead of the one line, for an unexpected error
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROGRAM,
        description="A command line for the quoteflow services, for people and for scripts.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for service in ("quote", "processor", "requestor"):
        parser.add_argument(
            f"--{service}",
            metavar="ADDR",
            default=default_address(service),
            help=f"the {service} service, host:port (default %(default)s; ${env_name(service)})",
        )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        help="deadline of each request-response call (default %(default)g); watches last "
        "as long as what they watch",
    )
    add_security_options(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="machine output: JSON on stdout (one object per line), errors as JSON on stderr",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    quote_commands = add_group(commands, "quote", help="submit, watch and manage quotes")
    quotes.register(quote_commands)
    batch.register(quote_commands)
    stats.register(commands)
    dead_letters.register(add_group(commands, "dead-letters", help="list and redrive dead letters"))
    orders.register(add_group(commands, "order", help="place, feed and follow orders"))
    dev_tokens.register(commands)
    return parser


async def run(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one command; answer its exit code. Output goes to stdout and stderr
    (the process's by default)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    # Parsing may fail before --json is known; a usage error is JSON if it was asked for.
    out = Output(json_mode="--json" in argv, stdout=stdout, stderr=stderr)
    try:
        # argparse prints --help to sys.stdout itself.
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help
        return exit.code if isinstance(exit.code, int) else ExitCode.USAGE
    except UsageError as error:
        out.error(error)
        return error.exit_code
    out = Output(json_mode=args.json, stdout=stdout, stderr=stderr)
    try:
        security = security_from_options(args)
    except UsageError as error:
        out.error(error)
        return error.exit_code
    clients = Clients(
        quote=args.quote,
        processor=args.processor,
        requestor=args.requestor,
        timeout=args.timeout,
        security=security,
    )
    try:
        return int(await args.handler(args, clients, out))
    except CliError as error:
        out.error(error)
        return error.exit_code
    except Exception as error:
        if os.environ.get("QUOTEFLOW_DEBUG"):
            raise
        problem = UnexpectedError(error)
        out.error(problem)
        return problem.exit_code
    finally:
        await clients.close()
