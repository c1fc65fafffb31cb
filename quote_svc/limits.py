"""The documented input limits of a submission, and the check that applies them.

=================  ==========================================================
Field              Limit
=================  ==========================================================
applicant_name     required (not blank), at most 200 characters
address            required (not blank), at most 500 characters
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

from quote_svc.domain import PropertyType, Submission

APPLICANT_NAME_MAX_CHARS: Final = 200
ADDRESS_MAX_CHARS: Final = 500
COVERAGE_MIN: Final = 1
COVERAGE_MAX: Final = 50_000_000
YEAR_BUILT_UNKNOWN: Final = 0
YEAR_BUILT_MIN: Final = 1800
PRIOR_CLAIMS_MIN: Final = 0
PRIOR_CLAIMS_MAX: Final = 20

_PROPERTY_TYPE_VALUES: Final = frozenset(PropertyType)

Violation = tuple[str, str]
"""A bad field: its path (for example "submission.coverage_amount") and what is wrong."""


class InvalidSubmissionError(ValueError):
    """A submission breaks the documented limits."""

    def __init__(self, violations: list[Violation]) -> None:
        details = "; ".join(f"{field} {description}" for field, description in violations)
        super().__init__(f"invalid submission: {details}")
        self.violations = violations


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

    Takes plain values rather than a Submission so a service can check a request
    before building one (an unknown property_type has no PropertyType member).
    current_year defaults to today's year in local time.
    """
    year = datetime.date.today().year if current_year is None else current_year
    checks = (
        ("applicant_name", _text_problem(applicant_name, APPLICANT_NAME_MAX_CHARS)),
        ("address", _text_problem(address, ADDRESS_MAX_CHARS)),
        ("coverage_amount", _range_problem(coverage_amount, COVERAGE_MIN, COVERAGE_MAX)),
        ("property_type", _property_type_problem(property_type)),
        ("year_built", _year_built_problem(year_built, year)),
        ("prior_claims", _range_problem(prior_claims, PRIOR_CLAIMS_MIN, PRIOR_CLAIMS_MAX)),
    )
    return [(f"{field_prefix}.{field}", problem) for field, problem in checks if problem]


def require_valid(submission: Submission, *, current_year: int | None = None) -> None:
    """Raise InvalidSubmissionError listing every limit the submission breaks."""
    violations = submission_violations(
        submission.applicant_name,
        submission.address,
        submission.coverage_amount,
        submission.property_type,
        submission.year_built,
        submission.prior_claims,
        current_year=current_year,
    )
    if violations:
        raise InvalidSubmissionError(violations)


def _text_problem(value: str, max_chars: int) -> str:
    if not value.strip():
        return "is required"
    if len(value) > max_chars:
        return f"must be at most {max_chars:,} characters; got {len(value):,}"
    return ""


def _range_problem(value: int, low: int, high: int) -> str:
    if low <= value <= high:
        return ""
    return f"must be between {low:,} and {high:,}; got {value:,}"


def _property_type_problem(value: int) -> str:
    if value in _PROPERTY_TYPE_VALUES:
        return ""
    known = ", ".join(f"{member.value} ({member.name})" for member in PropertyType)
    return f"must be one of {known}; got {value}"


def _year_built_problem(value: int, current_year: int) -> str:
    if value == YEAR_BUILT_UNKNOWN or YEAR_BUILT_MIN <= value <= current_year:
        return ""
    return (
        f"must be {YEAR_BUILT_UNKNOWN} (unknown) or between {YEAR_BUILT_MIN} "
        f"and {current_year}; got {value}"
    )
