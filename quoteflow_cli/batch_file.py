"""Reading a batch file: JSON lines or CSV, each row a quote to submit.

A row that cannot become a request (bad JSON, a missing column, a word where a
number belongs) is kept with its line number and what is wrong, so the batch
reports and skips it; only a file that cannot be read at all is fatal.
"""

import csv
import io
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow_cli.errors import UsageError
from quoteflow_cli.submissions import REQUIRED_FIELDS, ROW_FIELDS, RowError, request_from_row

FORMATS = ("jsonl", "csv")
_FORMAT_BY_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}


@dataclass(frozen=True)
class Row:
    #: The line the row is on (for CSV, the line its record ends on).
    line: int
    request: quote_pb.SubmitQuoteRequest | None
    #: Why the row cannot be sent; empty when request is set.
    problem: str = ""


def read_rows(path: str, file_format: str | None) -> list[Row]:
    file_format = file_format or _format_of(path)
    try:
        # utf-8-sig: spreadsheets often start a CSV export with a byte-order mark.
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    rows = _json_lines(text) if file_format == "jsonl" else _csv_rows(text, path)
    return list(rows)


def _format_of(path: str) -> str:
    found = _FORMAT_BY_SUFFIX.get(Path(path).suffix.lower())
    if found is None:
        raise UsageError(
            f"cannot tell the format of {path} from its name; give --format {' or '.join(FORMATS)}"
        )
    return found


def _json_lines(text: str) -> Iterator[Row]:
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            value = json.loads(content)
        except json.JSONDecodeError as error:
            yield Row(line, None, f"not JSON: {error.msg} at column {error.colno}")
            continue
        if not isinstance(value, dict):
            yield Row(line, None, f"not a JSON object: {content.strip()[:40]}")
            continue
        yield _row(line, value)


def _csv_rows(text: str, path: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        columns = next(reader, None)
        if columns is None:
            return
        _check_header(columns, path)
        for values in reader:
            if not values:  # a blank line
                continue
            if len(values) != len(columns):
                yield Row(
                    reader.line_num,
                    None,
                    f"{len(values)} values for the header's {len(columns)} columns",
                )
                continue
            yield _row(reader.line_num, dict(zip(columns, values, strict=True)))
    except csv.Error as error:
        raise UsageError(f"{path} line {reader.line_num}: {error}") from None


def _check_header(columns: list[str], path: str) -> None:
    """The header is every row's: a wrong one is the file's problem, not a row's."""
    unknown = [c for c in columns if c not in ROW_FIELDS]
    missing = [c for c in REQUIRED_FIELDS if c not in columns]
    wrong = [f"unknown column {', '.join(unknown)}"] if unknown else []
    wrong += [f"no {', '.join(missing)} column"] if missing else []
    if wrong:
        raise UsageError(
            f"{path}: {'; '.join(wrong)} (columns: {', '.join(ROW_FIELDS)}; "
            f"required: {', '.join(REQUIRED_FIELDS)})"
        )


def _row(line: int, fields: Mapping[str, object]) -> Row:
    try:
        return Row(line, request_from_row(fields))
    except RowError as error:
        return Row(line, None, str(error))
