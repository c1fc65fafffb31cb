"""Where results go: rich tables and live displays for people, or JSON for scripts.

With --json, stdout carries only JSON, one object per line (a watch writes one
line per state, flushed as it comes), and an error is one JSON object on stderr.
"""

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, TextIO, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.status import Status
from rich.text import Text

from quoteflow_cli.errors import CliError

PROGRAM = "quoteflow"

_INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


class Output:
    def __init__(self, *, json_mode: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.json = json_mode
        self._stdout = stdout
        self._stderr = stderr
        # markup=False: applicant names and addresses are data, and "[...]" in one
        # must print as written rather than as rich markup.
        self.console = Console(file=stdout, markup=False, highlight=False)
        self._err_console = Console(file=stderr, markup=False, highlight=False)

    def emit(self, data: Mapping[str, Any], *people: RenderableType) -> None:
        """One result: data as a JSON line for scripts, or the renderables for people."""
        if self.json:
            self._stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
            # A watch's lines are read as they come by whoever is on the other end.
            self._stdout.flush()
        else:
            self._print(people)

    def show(self, *people: RenderableType) -> None:
        """Something only people need (a script has it in the JSON already)."""
        if not self.json:
            self._print(people)

    def _print(self, people: tuple[RenderableType, ...]) -> None:
        # A line of text (a watch's state, an event) stays one line however narrow
        # the terminal, so it can be grepped; tables wrap inside their cells instead.
        self.console.print(*people, soft_wrap=all(isinstance(p, Text) for p in people))

    def error(self, problem: CliError) -> None:
        if self.json:
            data = {"error": problem.to_json()}
            self._stderr.write(json.dumps(data, ensure_ascii=False) + "\n")
        else:
            # Plain write, not rich: rich would wrap a long message onto several lines.
            self._stderr.write(f"{PROGRAM}: {problem}\n")
        self._stderr.flush()

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator[Status | None]:
        """A spinner under what is printed meanwhile, on a terminal for people only."""
        if self.json or not self.console.is_terminal:
            yield None
            return
        with self.console.status(text) as status:
            yield status

    def progress(self) -> Progress:
        """A progress display on stderr, so stdout keeps only the results; shown only
        to people at a terminal."""
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self._err_console,
            transient=True,
            disable=self.json or not self._err_console.is_terminal,
        )


def message_data(message: Message) -> dict[str, Any]:
    """A message as JSON: the proto3 JSON mapping with the field names of the .proto
    (the API reference), every field present even at its default (so a script can
    read queue_position 0), and 64-bit integers as JSON numbers rather than the
    mapping's strings (premiums and counts stay far below 2**53)."""
    data = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    # types-protobuf types DESCRIPTOR as either implementation's; both are this.
    _int64_as_numbers(cast(Descriptor, message.DESCRIPTOR), data)
    return data


def _int64_as_numbers(descriptor: Descriptor, data: dict[str, Any]) -> None:
    for field in descriptor.fields:
        if field.name not in data:
            continue
        value = data[field.name]
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            for key, item in value.items():
                value[key] = _converted(value_field, item)
        elif field.is_repeated:
            data[field.name] = [_converted(field, item) for item in value]
        else:
            data[field.name] = _converted(field, value)


def _converted(field: FieldDescriptor, value: Any) -> Any:
    if field.type in _INT64_TYPES:
        return int(value)
    # Timestamps and durations are strings in JSON; only nested messages are dicts.
    if field.message_type is not None and isinstance(value, dict):
        _int64_as_numbers(field.message_type, value)
    return value
