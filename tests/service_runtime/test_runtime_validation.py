"""The rules every service applies to ids, to text people read and to Durations."""

import pytest
from google.protobuf.duration_pb2 import Duration

from service_runtime.errors import InvalidArgumentError
from service_runtime.validation import (
    Violations,
    duration_problem,
    id_problem,
    require_id,
    text_problem,
)

# The examples, each a character a reader cannot see or that changes
# what the rest of the text shows.
MISLEADING = {
    "nul": ("\x00", "control", "U+0000 (Cc)"),
    "zero width space": ("\u200b", "format", "U+200B (Cf)"),
    "byte order mark": ("\ufeff", "format", "U+FEFF (Cf)"),
    "ansi escape": ("\x1b[31m", "control", "U+001B (Cc)"),
    "right-to-left override": ("\u202e", "format", "U+202E (Cf)"),
    "line separator": ("\u2028", "line separator", "U+2028 (Zl)"),
    "paragraph separator": ("\u2029", "paragraph separator", "U+2029 (Zp)"),
    "newline": ("\n", "control", "U+000A (Cc)"),
}


@pytest.mark.parametrize(("inserted", "kind", "char"), MISLEADING.values(), ids=MISLEADING)
def test_text_refuses_control_format_and_separator_characters_anywhere(inserted, kind, char):
    for value, index in [(f"{inserted}Ada", 0), (f"Ada{inserted}", 3), (f"Ada {inserted}x", 4)]:
        assert text_problem(value, 200) == (
            f"must not contain {kind} characters; found {char} at index {index}"
        )
    # Alone, a separator or a newline is whitespace: the text is blank.
    alone = "is required" if inserted.isspace() else f"must not contain {kind} characters"
    assert text_problem(inserted, 200).startswith(alone)


@pytest.mark.parametrize(
    "value",
    [
        "Ada Lovelace",
        "José Álvarez-Núñez",
        "O'Brien, Jr.",
        "山田 太郎",
        "Zoë\u00a0Smith",  # a no-break space inside is a space
        "\u0639\u0644\u06cc\u200c\u0631\u0636\u0627",  # Persian is spelt with ZERO WIDTH NON-JOINER
        "क्\u200dष",  # ZERO WIDTH JOINER, in Devanagari
        "e\u0301",  # a combining accent after its letter
        "\u8fba\U000e0100",  # a variation selector after its ideograph
        "x\u0378",  # unassigned in this Python's Unicode, maybe not in the client's
        "x" * 200,
    ],
)
def test_text_accepts_what_real_names_and_addresses_hold(value):
    assert text_problem(value, 200) == ""


@pytest.mark.parametrize(
    ("value", "description"),
    [
        ("", "is required"),
        ("   ", "is required"),
        (" \t ", "is required"),  # blank first, although a tab is refused
        ("\u3000\u00a0\u2003", "is required"),  # Unicode spaces
        (
            "\u200c\u200d",
            "is required: it has no letter, digit, punctuation mark or symbol that shows",
        ),
        (
            "\u0301\u0302",
            "is required: it has no letter, digit, punctuation mark or symbol that shows",
        ),
        ("\u3164", "is required: it has no letter, digit, punctuation mark or symbol that shows"),
        (
            "\u2800 \uffa0",
            "is required: it has no letter, digit, punctuation mark or symbol that shows",
        ),
        (
            "\u115f\u1160",
            "is required: it has no letter, digit, punctuation mark or symbol that shows",
        ),
    ],
)
def test_blank_text_is_refused_as_missing(value, description):
    assert text_problem(value, 200) == description


def test_optional_text_may_be_empty_and_text_with_line_breaks_may_hold_them():
    assert text_problem("", 10, required=False) == ""
    assert text_problem("a\n\tb", 10, required=False, line_breaks=True) == ""
    assert text_problem("a\x1b[0m", 10, required=False, line_breaks=True) == (
        "must not contain control characters; found U+001B (Cc) at index 1"
    )
    assert text_problem("a\u202eb", 10, required=False, line_breaks=True).startswith(
        "must not contain format characters"
    )


def test_too_long_text_is_told_by_its_length_before_anything_else():
    assert text_problem("\x00" * 3_000_000, 200) == (
        "must be at most 200 characters; got 3,000,000"
    )


@pytest.mark.parametrize(
    "value", ["ORD-1", "a" * 128, "proposal-0123abcd", "order/2026:x_y.z~", "注文-7", "ü"]
)
def test_good_ids_are_accepted(value):
    assert id_problem(value) == ""
    assert require_id("order_req_id", value) == value


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("ORD 1", "U+0020 (Zs) at index 3"),
        ("\tORD", "U+0009 (Cc) at index 0"),
        ("ORD\u00a0", "U+00A0 (Zs) at index 3"),
        ("\x00", "U+0000 (Cc) at index 0"),
        ("\u200b", "U+200B (Cf) at index 0"),
        ("\ufeffORD", "U+FEFF (Cf) at index 0"),
        ("ORD\x1b[31m", "U+001B (Cc) at index 3"),
        ("ORD\u202e1", "U+202E (Cf) at index 3"),
        ("ORD\u2028", "U+2028 (Zl) at index 3"),
        ("ORD\ue000", "U+E000 (Co) at index 3"),
        ("ORD\u0378", "U+0378 (Cn) at index 3"),
    ],
)
def test_ids_refuse_whitespace_control_format_separator_and_unassigned_characters(value, found):
    expected = (
        "must not contain whitespace, control, format, separator, private-use or "
        f"unassigned characters; found {found}"
    )
    assert id_problem(value) == expected
    with pytest.raises(InvalidArgumentError) as refused:
        require_id("order_req_id", value)
    [violation] = refused.value.violations
    assert (violation.field, violation.description) == ("order_req_id", expected)


def test_id_length_bounds_and_optional_ids():
    assert id_problem("") == "is required"
    assert id_problem("", required=False) == ""
    assert id_problem("a" * 129) == "must be at most 128 characters; got 129"
    problems = Violations()
    problems.check_id("request_id", "r 1", required=False)
    problems.check_id("proposal_id", "")
    assert [v.field for v in problems.items] == ["request_id", "proposal_id"]


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        (1, 0, 1.0),
        (0, 999_999_999, 0.999999999),
        (-1, -500_000_000, -1.5),
        (0, -1, -1e-9),
        (315_576_000_000, 0, 315_576_000_000.0),
    ],
)
def test_valid_durations_are_read_as_seconds(seconds, nanos, expected):
    problems = Violations()
    assert problems.check_duration("timeout", Duration(seconds=seconds, nanos=nanos)) == expected
    assert problems.items == []


@pytest.mark.parametrize(
    ("seconds", "nanos", "description"),
    [
        (
            1,
            -999_999_999,
            "seconds and nanos must not have opposite signs; got 1 s and -999,999,999 ns",
        ),
        (-1, 5, "seconds and nanos must not have opposite signs; got -1 s and 5 ns"),
        (0, 1_000_000_000, "nanos must be between -999,999,999 and 999,999,999; got 1,000,000,000"),
        (
            0,
            -1_000_000_000,
            "nanos must be between -999,999,999 and 999,999,999; got -1,000,000,000",
        ),
        (
            315_576_000_001,
            0,
            "seconds must be between -315,576,000,000 and 315,576,000,000; got 315,576,000,001",
        ),
    ],
)
def test_invalid_durations_are_a_violation_not_a_value(seconds, nanos, description):
    duration = Duration(seconds=seconds, nanos=nanos)
    assert duration_problem(duration) == f"is not a valid Duration: {description}"
    problems = Violations()
    assert problems.check_duration("attempt_timeout", duration) is None
    [violation] = problems.items
    assert violation.field == "attempt_timeout"
    assert violation.description == f"is not a valid Duration: {description}"
