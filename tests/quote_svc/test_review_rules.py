import pytest

from quote_svc.domain import Submission
from quote_svc.review_rules import (
    REVIEW_COVERAGE_ABOVE,
    REVIEW_PRIOR_CLAIMS_FROM,
    REVIEW_RISK_SCORE_FROM,
    review_reason,
)


def submission(coverage: int = 250_000, prior_claims: int = 0) -> Submission:
    return Submission("Ada Lovelace", "12 Main St", coverage, prior_claims=prior_claims)


def test_thresholds():
    assert (REVIEW_COVERAGE_ABOVE, REVIEW_PRIOR_CLAIMS_FROM, REVIEW_RISK_SCORE_FROM) == (
        2_000_000,
        3,
        80,
    )


def test_no_rule_applies():
    assert review_reason(submission(2_000_000, 2), risk_score=79) == ""


@pytest.mark.parametrize(
    ("quote", "score", "reason"),
    [
        (
            submission(coverage=2_500_000),
            0,
            "coverage 2,500,000 is above the 2,000,000 review threshold",
        ),
        (
            submission(coverage=2_000_001),
            0,
            "coverage 2,000,001 is above the 2,000,000 review threshold",
        ),
        (submission(prior_claims=3), 0, "prior claims 3 is at or above the 3 review threshold"),
        (submission(prior_claims=20), 0, "prior claims 20 is at or above the 3 review threshold"),
        (submission(), 80, "risk score 80 is at or above the 80 review threshold"),
        (submission(), 100, "risk score 100 is at or above the 80 review threshold"),
    ],
)
def test_each_rule(quote, score, reason):
    assert review_reason(quote, risk_score=score) == reason


def test_every_applying_rule_is_named_joined_with_semicolons():
    assert review_reason(submission(3_000_000, 5), risk_score=90) == (
        "coverage 3,000,000 is above the 2,000,000 review threshold; "
        "prior claims 5 is at or above the 3 review threshold; "
        "risk score 90 is at or above the 80 review threshold"
    )


def test_two_rules_without_the_third():
    assert review_reason(submission(prior_claims=4), risk_score=85) == (
        "prior claims 4 is at or above the 3 review threshold; "
        "risk score 85 is at or above the 80 review threshold"
    )
