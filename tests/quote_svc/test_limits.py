import pytest

from quote_svc.domain import PropertyType, Submission
from quote_svc.limits import InvalidSubmissionError, require_valid
from service_runtime.submission_limits import submission_violations

VALID = {
    "applicant_name": "Ada Lovelace",
    "address": "12 Main St, Springfield, IL 62701",
    "coverage_amount": 250_000,
    "property_type": 1,
    "year_built": 1985,
    "prior_claims": 0,
}


def violations(current_year: int = 2025, **changes: object) -> list[tuple[str, str]]:
    return submission_violations(**{**VALID, **changes}, current_year=current_year)


def test_a_valid_submission_has_no_violations():
    assert violations() == []


@pytest.mark.parametrize(
    "changes",
    [
        {"applicant_name": "x" * 200},
        {"address": "x" * 500},
        {"coverage_amount": 1},
        {"coverage_amount": 50_000_000},
        {"property_type": 0},
        {"property_type": 3},
        {"year_built": 0},
        {"year_built": 1800},
        {"year_built": 2025},
        {"prior_claims": 20},
    ],
)
def test_values_at_the_limits_are_accepted(changes):
    assert violations(**changes) == []


@pytest.mark.parametrize(
    ("changes", "field", "description"),
    [
        ({"applicant_name": ""}, "applicant_name", "is required"),
        ({"applicant_name": " \t "}, "applicant_name", "is required"),
        (
            {"applicant_name": "x" * 201},
            "applicant_name",
            "must be at most 200 characters; got 201",
        ),
        ({"address": ""}, "address", "is required"),
        ({"address": "x" * 501}, "address", "must be at most 500 characters; got 501"),
        ({"coverage_amount": 0}, "coverage_amount", "must be between 1 and 50,000,000; got 0"),
        (
            {"coverage_amount": 50_000_001},
            "coverage_amount",
            "must be between 1 and 50,000,000; got 50,000,001",
        ),
        (
            {"property_type": 99},
            "property_type",
            "must be one of 0 (UNSPECIFIED), 1 (SINGLE_FAMILY), 2 (APARTMENT), "
            "3 (COMMERCIAL); got 99",
        ),
        (
            {"property_type": -1},
            "property_type",
            "must be one of 0 (UNSPECIFIED), 1 (SINGLE_FAMILY), 2 (APARTMENT), "
            "3 (COMMERCIAL); got -1",
        ),
        (
            {"year_built": 1799},
            "year_built",
            "must be 0 (unknown) or between 1800 and 2025; got 1799",
        ),
        (
            {"year_built": 2026},
            "year_built",
            "must be 0 (unknown) or between 1800 and 2025; got 2026",
        ),
        ({"year_built": -5}, "year_built", "must be 0 (unknown) or between 1800 and 2025; got -5"),
        ({"prior_claims": -1}, "prior_claims", "must be between 0 and 20; got -1"),
        ({"prior_claims": 21}, "prior_claims", "must be between 0 and 20; got 21"),
    ],
)
def test_each_bad_field_is_one_violation(changes, field, description):
    [(path, found)] = violations(**changes)

    assert path == f"submission.{field}"
    assert found == description


def test_every_bad_field_is_reported_in_field_order():
    found = violations(
        applicant_name="",
        address="",
        coverage_amount=0,
        property_type=7,
        year_built=1700,
        prior_claims=99,
    )

    assert [path for path, _ in found] == [
        "submission.applicant_name",
        "submission.address",
        "submission.coverage_amount",
        "submission.property_type",
        "submission.year_built",
        "submission.prior_claims",
    ]


def test_the_field_prefix_names_where_the_submission_sits_in_the_request():
    found = submission_violations(**{**VALID, "coverage_amount": 0}, field_prefix="request.sub")

    assert [path for path, _ in found] == ["request.sub.coverage_amount"]


def test_the_current_year_bounds_year_built():
    assert violations(current_year=2030, year_built=2030) == []
    assert [path for path, _ in violations(current_year=2029, year_built=2030)] == [
        "submission.year_built"
    ]


def test_require_valid_accepts_a_valid_submission_and_rejects_with_every_violation():
    require_valid(Submission("Ada", "12 Main St", 1, PropertyType.COMMERCIAL, 2000, 20))

    with pytest.raises(InvalidSubmissionError) as raised:
        require_valid(Submission(" ", "", 1, PropertyType.APARTMENT, 0, 0))

    assert isinstance(raised.value, ValueError)
    assert raised.value.violations == [
        ("submission.applicant_name", "is required"),
        ("submission.address", "is required"),
    ]
    assert "submission.address is required" in str(raised.value)
