"""The documented input limits of a quoteflow.quote.v1.Submission, and the one check
that applies them: SubmitQuote, RunQuote, SubmitProposal and PlaceOrder all take
a Submission, and all refuse the same bad fields with the same violations.

=================  ==========================================================
Field              Limit
=================  ==========================================================
applicant_name     required (not blank), at most 200 characters, text as
                   service_runtime.validation defines it (no Cc, Cf, Zl, Zp)
address            required (not blank), at most 500 characters, text as for
                   applicant_name (one line: separate its parts with commas)
coverage_amount    1 to 50,000,000
property_type      a known PropertyType: 0, 1, 2 or 3 (proto3 enums are open,
                   so a client can send any number)
year_built         0 (unknown), or 1800 to the current year
prior_claims       0 to 20
=================  ==========================================================

Every bad field yields its own violation, so a client can fix them all at once.
"""

import datetime
from typing import Final

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from service_runtime.validation import Violations, text_problem

APPLICANT_NAME_MAX_CHARS: Final = 200
ADDRESS_MAX_CHARS: Final = 500
COVERAGE_MIN: Final = 1
COVERAGE_MAX: Final = 50_000_000
YEAR_BUILT_UNKNOWN: Final = 0
YEAR_BUILT_MIN: Final = 1800
PRIOR_CLAIMS_MIN: Final = 0
PRIOR_CLAIMS_MAX: Final = 20

# Read from the proto, whose enum the field is: "1 (SINGLE_FAMILY)" in descriptions.
_PROPERTY_TYPES: Final = {
    int(value): name.removeprefix("PROPERTY_TYPE_") for name, value in quote_pb.PropertyType.items()
}
_KNOWN_PROPERTY_TYPES: Final = ", ".join(f"{v} ({name})" for v, name in _PROPERTY_TYPES.items())

Violation = tuple[str, str]
"""A bad field: its path (for example "submission.coverage_amount") and what is wrong."""


def submission_violations(
    applicant_name: str,
    address: str,
    coverage_amount: int,
    property_type: int,
    year_built: int,
    prior_claims: int,
    *,
    field_prefix: str = "submission",
    current_year: int | None = None,
) -> list[Violation]:
    """Answer one (field path, description) per field that breaks a limit; [] when none does.

    Takes plain values, so it checks a request's message and a domain object
    alike (and a request before anything is built from it).
    current_year defaults to today's year in local time.
    """
    year = datetime.date.today().year if current_year is None else current_year
    checks = (
        ("applicant_name", text_problem(applicant_name, APPLICANT_NAME_MAX_CHARS)),
        ("address", text_problem(address, ADDRESS_MAX_CHARS)),
        ("coverage_amount", _range_problem(coverage_amount, COVERAGE_MIN, COVERAGE_MAX)),
        ("property_type", _property_type_problem(property_type)),
        ("year_built", _year_built_problem(year_built, year)),
        ("prior_claims", _range_problem(prior_claims, PRIOR_CLAIMS_MIN, PRIOR_CLAIMS_MAX)),
    )
    return [(f"{field_prefix}.{field}", problem) for field, problem in checks if problem]


def check_submission(problems: Violations, field: str, given: quote_pb.Submission) -> None:
    """Add to problems a violation per bad field of given, the request's field named field."""
    for path, description in submission_violations(
        given.applicant_name,
        given.address,
        given.coverage_amount,
        given.property_type,
        given.year_built,
        given.prior_claims,
        field_prefix=field,
    ):
        problems.add(path, description)


def _range_problem(value: int, low: int, high: int) -> str:
    if low <= value <= high:
        return ""
    return f"must be between {low:,} and {high:,}; got {value:,}"


def _property_type_problem(value: int) -> str:
    if value in _PROPERTY_TYPES:
        return ""
    return f"must be one of {_KNOWN_PROPERTY_TYPES}; got {value}"


def _year_built_problem(value: int, current_year: int) -> str:
    if value == YEAR_BUILT_UNKNOWN or YEAR_BUILT_MIN <= value <= current_year:
        return ""
    return (
        f"must be {YEAR_BUILT_UNKNOWN} (unknown) or between {YEAR_BUILT_MIN} "
        f"and {current_year}; got {value}"
    )
