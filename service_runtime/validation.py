"""Collecting every bad field of a request before answering INVALID_ARGUMENT once,
and the rules every service applies to ids, to text people read and to Durations.

Ids (order, proposal, task, request and message ids) are 1 to ID_MAX_CHARS
characters, none of them whitespace, control, format, separator, private-use or
unassigned (Unicode categories Z* and C*): an id is copied into logs, metrics
and terminals, where such characters hide, reorder or forge what is shown. Ids
are compared code point by code point, without normalisation.

Text (names, addresses) may hold any character except those of the Unicode
categories Cc (controls, ANSI escapes among them), Cf (format characters such as
U+200B, U+FEFF and the bidirectional overrides), Zl and Zp (line and paragraph
separators). Two format characters are allowed because real names are spelt
with them: U+200C ZERO WIDTH NON-JOINER (Persian, Indic scripts) and U+200D
ZERO WIDTH JOINER (Indic scripts, emoji). Required text must hold at least one
letter, digit, punctuation mark or symbol that shows, so text made only of
whitespace (Unicode spaces included), joiners, combining marks or the letters
and symbols that render as nothing (the Hangul fillers, U+2800 BRAILLE PATTERN
BLANK) is refused as blank.
"""

import unicodedata
from collections.abc import Iterable
from typing import Final

from google.protobuf.duration_pb2 import Duration

from service_runtime.errors import FieldViolation, InvalidArgumentError

#: Longest id accepted anywhere a client names something (order, proposal, request).
ID_MAX_CHARS: Final = 128

#: Characters a line of text may not contain, by Unicode category.
_REFUSED_IN_TEXT: Final = {
    "Cc": "control",
    "Cf": "format",
    "Zl": "line separator",
    "Zp": "paragraph separator",
}
_JOINERS: Final = frozenset("\u200c\u200d")
#: What text with line breaks (a note) may hold of the refused characters.
_JOINERS_AND_LINE_BREAKS: Final = _JOINERS | frozenset("\n\t")
#: The first letters of the categories of the characters that show: letters,
#: numbers, punctuation and symbols.
_VISIBLE_CATEGORY_CLASSES: Final = frozenset("LNPS")
#: Letters and symbols by category that render as blank space: Hangul fillers
#: (U+115F, U+1160, U+3164, U+FFA0) and U+2800 BRAILLE PATTERN BLANK.
_BLANK_LOOKING: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800")

# google.protobuf.Duration's documented range: about ±10,000 years.
_DURATION_SECONDS_MAX: Final = 315_576_000_000
_NANOS_MAX: Final = 999_999_999


class Violations:
    """Field violations of one request; raise_if_any() raises them all together."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def add_under(self, path: str, found: Iterable[FieldViolation]) -> None:
        """Add violations found in a part of the request, the part at path (for
        example "requests[3]"), their fields named from the request's top."""
        self.items.extend(FieldViolation(f"{path}.{v.field}", v.description) for v in found)

    def check_id(self, field: str, value: str, *, required: bool = True) -> None:
        """An id (see the module's rule): required unless told otherwise."""
        problem = id_problem(value, required=required)
        if problem:
            self.add(field, problem)

    def check_text(
        self,
        field: str,
        value: str,
        max_chars: int,
        *,
        required: bool = True,
        line_breaks: bool = False,
    ) -> None:
        """Text people read (see the module's rule), at most max_chars characters."""
        problem = text_problem(value, max_chars, required=required, line_breaks=line_breaks)
        if problem:
            self.add(field, problem)

    def check_duration(self, field: str, duration: Duration) -> float | None:
        """duration in seconds, or None with a violation when it is not a valid Duration."""
        problem = duration_problem(duration)
        if problem:
            self.add(field, problem)
            return None
        return duration.seconds + duration.nanos / 1e9

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgumentError(self.items)


def require_id(field: str, value: str) -> str:
    """value, or INVALID_ARGUMENT naming field if it is not an id."""
    # A good id, the usual case, needs no Violations built.
    if not _is_id(value):
        problems = Violations()
        problems.check_id(field, value)
        problems.raise_if_any()
    return value


def id_problem(value: str, *, required: bool = True) -> str:
    """What is wrong with value as an id, or "" when nothing is (or it is empty and optional)."""
    if not value:
        return "is required" if required else ""
    if len(value) > ID_MAX_CHARS:
        return f"must be at most {ID_MAX_CHARS} characters; got {len(value)}"
    if _is_id(value):
        return ""
    index, char = next((i, c) for i, c in enumerate(value) if c == " " or not c.isprintable())
    return (
        "must not contain whitespace, control, format, separator, private-use or "
        f"unassigned characters; found {_describe(char)} at index {index}"
    )


def text_problem(
    value: str, max_chars: int, *, required: bool = True, line_breaks: bool = False
) -> str:
    """What is wrong with value as text people read, or "" when nothing is.

    line_breaks allows "\\n" and "\\t" too, for text of several lines.
    """
    # The length first, so a huge value costs no scan.
    if len(value) > max_chars:
        return f"must be at most {max_chars:,} characters; got {len(value):,}"
    # Blank text is told as missing, even when its whitespace is a refused tab.
    shown = value.strip() if required else value
    if required and not shown:
        return "is required"
    # isprintable() is False for every refused character, and runs in C: good
    # text takes no per-character look-up.
    if not value.isprintable():
        allowed = _JOINERS_AND_LINE_BREAKS if line_breaks else _JOINERS
        for index, char in enumerate(value):
            kind = _REFUSED_IN_TEXT.get(unicodedata.category(char))
            if kind is not None and char not in allowed:
                return (
                    f"must not contain {kind} characters; found {_describe(char)} at index {index}"
                )
    # Printable text that is not blank shows something, unless it is all
    # combining marks: its first character, a letter as a rule, settles it.
    if not required or shown.isascii():
        return ""
    if _shows(shown[0]) or any(_shows(char) for char in shown):
        return ""
    return "is required: it has no letter, digit, punctuation mark or symbol that shows"


def duration_problem(duration: Duration) -> str:
    """What makes duration an invalid google.protobuf.Duration, or "" when nothing does."""
    seconds, nanos = duration.seconds, duration.nanos
    if not -_NANOS_MAX <= nanos <= _NANOS_MAX:
        return (
            f"is not a valid Duration: nanos must be between {-_NANOS_MAX:,} and "
            f"{_NANOS_MAX:,}; got {nanos:,}"
        )
    if (seconds < 0 < nanos) or (nanos < 0 < seconds):
        return (
            "is not a valid Duration: seconds and nanos must not have opposite signs; "
            f"got {seconds:,} s and {nanos:,} ns"
        )
    if not -_DURATION_SECONDS_MAX <= seconds <= _DURATION_SECONDS_MAX:
        return (
            f"is not a valid Duration: seconds must be between {-_DURATION_SECONDS_MAX:,} "
            f"and {_DURATION_SECONDS_MAX:,}; got {seconds:,}"
        )
    return ""


def _shows(char: str) -> bool:
    return unicodedata.category(char)[0] in _VISIBLE_CATEGORY_CLASSES and char not in _BLANK_LOOKING


def _is_id(value: str) -> bool:
    # isprintable() is False for every C* and Z* character but the ASCII space.
    return 0 < len(value) <= ID_MAX_CHARS and value.isprintable() and " " not in value


def _describe(char: str) -> str:
    """A character named by code point (never shown as itself), e.g. "U+202E (Cf)"."""
    return f"U+{ord(char):04X} ({unicodedata.category(char)})"
