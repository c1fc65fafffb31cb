"""The documented submission limits, applied to the quote domain's Submission.

The limits and their check are service_runtime.submission_limits', shared by
every service that takes a Submission; pricing code calls require_valid() so a
Submission built in-process (by a plugin, say) is held to them too.
"""

from quote_svc.domain import Submission
from service_runtime.submission_limits import YEAR_BUILT_UNKNOWN, Violation, submission_violations

__all__ = ["YEAR_BUILT_UNKNOWN", "InvalidSubmissionError", "require_valid"]


class InvalidSubmissionError(ValueError):
    """A submission breaks the documented limits."""

    def __init__(self, violations: list[Violation]) -> None:
        details = "; ".join(f"{field} {description}" for field, description in violations)
        super().__init__(f"invalid submission: {details}")
        self.violations = violations


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
