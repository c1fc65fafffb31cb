"""The shape every command shares: an async function of its parsed arguments, the
service clients and the output, answering an exit code; and the argparse parts
the command modules build their options with."""

import argparse
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeAlias

from quoteflow_cli.connection import Clients
from quoteflow_cli.errors import UsageError
from quoteflow_cli.output import PROGRAM, Output

Handler = Callable[[argparse.Namespace, Clients, Output], Awaitable[int]]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose mistakes are a UsageError: one line, exit code 2
    (argparse's own would print the usage too)."""

    def error(self, message: str) -> NoReturn:
        # The line starts "quoteflow: " already; name the command after it.
        command = self.prog.removeprefix(PROGRAM).strip()
        where = f"{command}: " if command else ""
        raise UsageError(f"{where}{message} (see {self.prog} --help)")


#: What add_subparsers answers, to which commands are added.
Commands: TypeAlias = "argparse._SubParsersAction[Parser]"

# --json is also accepted after the command, where a script writer tends to put
# it; SUPPRESS leaves the value given before the command alone when it is absent.
_JSON_AFTER_COMMAND = Parser(add_help=False)
_JSON_AFTER_COMMAND.add_argument(
    "--json", action="store_true", default=argparse.SUPPRESS, help="machine output (JSON)"
)


def add_command(
    commands: Commands, name: str, handler: Handler, *, help: str, description: str = ""
) -> Parser:
    parser = commands.add_parser(
        name,
        help=help,
        description=description or help,
        parents=[_JSON_AFTER_COMMAND],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def add_group(commands: Commands, name: str, *, help: str) -> Commands:
    """A command that only groups others (quote, order, dead-letters)."""
    group = commands.add_parser(name, help=help, description=help)
    return group.add_subparsers(title="commands", metavar="COMMAND", required=True)


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds; got {text}")
    return value


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least minimum."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}; got {value}")
        return value

    return parse
