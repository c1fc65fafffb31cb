"""Structured logs: one JSON object per line on stderr, with the trace_id and
span_id of the span current where the line was logged, if any.

Structured fields travel in ``extra={"fields": {...}}`` so they cannot collide
with the attributes logging itself sets on a record.
"""

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from opentelemetry import trace

FIELDS_ATTRIBUTE = "fields"

# default=str: a field that JSON cannot represent must not lose the whole line.
# Built once: json.dumps(..., default=str) builds a new encoder for every line.
_ENCODER = json.JSONEncoder(default=str)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: ts, level, logger, msg, then its fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # The line joins its trace: the span current where it was logged.
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        # The fixed keys win over a same-named field so every line keeps its shape.
        for key, value in getattr(record, FIELDS_ATTRIBUTE, {}).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


class _JsonStderrHandler(logging.StreamHandler[TextIO]):
    """Marks the handler configure_logging installed, so a second call replaces it."""


def level_number(level: str) -> int:
    """The numeric logging level a name such as "info" or "WARNING" stands for."""
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_logging(level: str) -> None:
    """Send every log record at or above level to stderr as JSON lines."""
    numeric_level = level_number(level)
    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _JsonStderrHandler)]:
        root.removeHandler(previous)
        previous.close()
    handler = _JsonStderrHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(numeric_level)
