"""When a priced quote needs a human decision before it stands.

A quote is held for review when any of these applies; the reason names every
rule that applied, joined with "; ":

- coverage above 2,000,000;
- 3 or more prior claims;
- a risk score of 80 or more.
"""

from typing import Final

from quote_svc.domain import Submission

#: Coverage strictly above this needs review.
REVIEW_COVERAGE_ABOVE: Final = 2_000_000
#: This many prior claims or more needs review.
REVIEW_PRIOR_CLAIMS_FROM: Final = 3
#: A risk score of this or more needs review.
REVIEW_RISK_SCORE_FROM: Final = 80


def review_reason(submission: Submission, *, risk_score: int) -> str:
    """Why the quote needs review, by the rules above; "" when it does not."""
    reasons = []
    if submission.coverage_amount > REVIEW_COVERAGE_ABOVE:
        reasons.append(
            f"coverage {submission.coverage_amount:,} is above the "
            f"{REVIEW_COVERAGE_ABOVE:,} review threshold"
        )
    if submission.prior_claims >= REVIEW_PRIOR_CLAIMS_FROM:
        reasons.append(
            f"prior claims {submission.prior_claims} is at or above the "
            f"{REVIEW_PRIOR_CLAIMS_FROM} review threshold"
        )
    if risk_score >= REVIEW_RISK_SCORE_FROM:
        reasons.append(
            f"risk score {risk_score} is at or above the {REVIEW_RISK_SCORE_FROM} review threshold"
        )
    return "; ".join(reasons)
