"""configure_logging writes one JSON object per line on stderr."""

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from service_runtime.rpc_logging import configure_logging


@pytest.fixture(autouse=True)
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines_of(captured: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in captured.splitlines()]


def test_a_record_is_one_json_line_with_its_fields(capsys):
    configure_logging("info")

    logging.getLogger("quote_svc.worker").info(
        "attempt %s done", 2, extra={"fields": {"message_id": "m-1", "attempt": 2}}
    )

    (line,) = lines_of(capsys.readouterr().err)
    assert list(line)[:4] == ["ts", "level", "logger", "msg"]
    assert line["level"] == "INFO"
    assert line["logger"] == "quote_svc.worker"
    assert line["msg"] == "attempt 2 done"
    assert (line["message_id"], line["attempt"]) == ("m-1", 2)
    assert datetime.fromisoformat(line["ts"]).utcoffset() == timedelta(0)


def test_configuring_twice_does_not_duplicate_lines_and_applies_the_new_level(capsys):
    configure_logging("INFO")
    configure_logging("WARNING")

    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("shown")

    assert [line["msg"] for line in lines_of(capsys.readouterr().err)] == ["shown"]


def test_a_field_cannot_overwrite_the_fixed_keys(capsys):
    configure_logging("INFO")

    logging.getLogger("x").info("real", extra={"fields": {"msg": "forged", "level": "DEBUG"}})

    (line,) = lines_of(capsys.readouterr().err)
    assert (line["msg"], line["level"]) == ("real", "INFO")


def test_an_exception_is_logged_with_its_traceback_on_the_same_line(capsys):
    configure_logging("INFO")

    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed")

    (line,) = lines_of(capsys.readouterr().err)
    assert "Traceback" in line["exc"]
    assert "ValueError: boom" in line["exc"]


def test_a_field_json_cannot_represent_is_written_as_text(capsys):
    configure_logging("INFO")

    logging.getLogger("x").info("odd", extra={"fields": {"when": datetime(2024, 1, 2, tzinfo=UTC)}})

    (line,) = lines_of(capsys.readouterr().err)
    assert line["when"] == "2024-01-02 00:00:00+00:00"


def test_an_unknown_level_is_refused_by_name():
    with pytest.raises(ValueError, match="'LOUD'"):
        configure_logging("LOUD")


def test_a_line_logged_in_a_span_carries_its_trace_and_span_ids(capsys):
    from opentelemetry.sdk.trace import TracerProvider

    configure_logging("info")
    log = logging.getLogger("quote_svc.worker")
    log.info("before")
    # A provider of the test's own: the process's global one stays unset.
    with TracerProvider().get_tracer("test").start_as_current_span("attempt") as span:
        log.info("inside")
    log.info("after")

    before, inside, after = lines_of(capsys.readouterr().err)
    ids = span.get_span_context()
    assert (inside["trace_id"], inside["span_id"]) == (
        format(ids.trace_id, "032x"),
        format(ids.span_id, "016x"),
    )
    assert "trace_id" not in before and "trace_id" not in after
