import math

import pytest

from quote_svc.domain import PropertyType, Submission
from quote_svc.limits import InvalidSubmissionError
from quote_svc.rating import (
    BASE_RATE_PER_THOUSAND_CENTS,
    MINIMUM_PREMIUM_CENTS,
    RiskDriver,
    format_cents,
    rate,
    risk_drivers,
    risk_score,
)

FACTOR_NAMES = ("coverage_band", "property_type", "building_age", "prior_claims", "minimum_premium")


def submission(
    coverage: int = 250_000,
    property_type: PropertyType = PropertyType.SINGLE_FAMILY,
    year_built: int = 1985,
    prior_claims: int = 0,
) -> Submission:
    return Submission(
        "Ada Lovelace",
        "12 Main St, Springfield, IL 62701",
        coverage,
        property_type,
        year_built,
        prior_claims,
    )


def multipliers(quote: Submission) -> dict[str, float]:
    return {factor.name: factor.multiplier for factor in rate(quote).factors}


def test_rating_is_deterministic():
    assert rate(submission(3_000_000, PropertyType.APARTMENT, 1930, 2)) == rate(
        submission(3_000_000, PropertyType.APARTMENT, 1930, 2)
    )


@pytest.mark.parametrize(
    ("quote", "base_premium_cents", "annual_premium_cents"),
    [
        # 250,000 x 350 / 1,000 = 87,500; every factor 1.00.
        (submission(250_000, PropertyType.SINGLE_FAMILY, 1985, 0), 87_500, 87_500),
        # 3,000,000 x 350 / 1,000 = 1,050,000;
        # band (1,000,000 x 1.00 + 2,000,000 x 0.85) / 3,000,000 = 0.90, apartment 0.85,
        # built 1930 1.30, 2 claims 1.40:
        # 1,050,000 x 0.90 x 0.85 x 1.30 x 1.40 = 1,461,915.
        (submission(3_000_000, PropertyType.APARTMENT, 1930, 2), 1_050_000, 1_461_915),
        # 123,457 x 350 / 1,000 = 43,209.95 (shown as 43,210); built 2010 0.90, 1 claim 1.20:
        # 43,209.95 x 0.90 x 1.20 = 46,666.746 -> 46,667.
        (submission(123_457, PropertyType.SINGLE_FAMILY, 2010, 1), 43_210, 46_667),
        # 10,000,000 x 350 / 1,000 = 3,500,000;
        # band (1,000,000 + 4,000,000 x 0.85 + 5,000,000 x 0.70) / 10,000,000 = 0.79,
        # commercial 1.40, built 1955 1.15, 7 claims capped at 5: 2.00:
        # 3,500,000 x 0.79 x 1.40 x 1.15 x 2.00 = 8,903,300.
        (submission(10_000_000, PropertyType.COMMERCIAL, 1955, 7), 3_500_000, 8_903_300),
    ],
)
def test_hand_computed_premiums(quote, base_premium_cents, annual_premium_cents):
    result = rate(quote)

    assert result.base_rate_per_thousand_cents == BASE_RATE_PER_THOUSAND_CENTS == 350
    assert result.base_premium_cents == base_premium_cents
    assert result.annual_premium_cents == annual_premium_cents


def test_amounts_round_half_up_not_to_even():
    # 30 x 350 / 1,000 = 10.5 cents: half up gives 11, banker's rounding would give 10.
    assert rate(submission(coverage=30)).base_premium_cents == 11


def test_every_factor_is_recorded_in_a_fixed_order_with_a_reason():
    for quote in (submission(), submission(10_000_000, PropertyType.COMMERCIAL, 1900, 9)):
        factors = rate(quote).factors

        assert tuple(factor.name for factor in factors) == FACTOR_NAMES
        assert all(factor.reason for factor in factors)


def test_premium_is_the_base_times_the_factors_within_a_cent():
    for coverage in (1_234, 99_999, 777_777, 2_345_678, 49_999_999):
        for property_type in PropertyType:
            result = rate(submission(coverage, property_type, 1961, 3))
            product = math.prod(factor.multiplier for factor in result.factors)

            # The exact base differs from the displayed one by at most half a cent.
            assert abs(result.annual_premium_cents - result.base_premium_cents * product) <= (
                0.5 * product + 0.5
            )


@pytest.mark.parametrize(
    ("coverage", "multiplier", "reason_part"),
    [
        (1, 1.0, "within the first 1,000,000"),
        (1_000_000, 1.0, "within the first 1,000,000"),
        (3_000_000, 0.9, "1,000,000 at 1.00, 2,000,000 at 0.85"),
        (5_000_000, 0.88, "1,000,000 at 1.00, 4,000,000 at 0.85"),
        (10_000_000, 0.79, "4,000,000 at 0.85, 5,000,000 at 0.70"),
    ],
)
def test_coverage_band_discounts_the_coverage_above_each_band(coverage, multiplier, reason_part):
    factor = rate(submission(coverage=coverage)).factors[0]

    assert factor.multiplier == pytest.approx(multiplier)
    assert reason_part in factor.reason


def test_more_coverage_never_costs_less_even_across_band_limits():
    coverages = [
        *range(999_990, 1_000_011),
        *range(4_999_990, 5_000_011),
        *range(1, 50_000_001, 123_457),
    ]
    premiums = [rate(submission(coverage=c)).annual_premium_cents for c in sorted(coverages)]

    assert premiums == sorted(premiums)


@pytest.mark.parametrize(
    ("property_type", "multiplier"),
    [
        (PropertyType.UNSPECIFIED, 1.0),
        (PropertyType.SINGLE_FAMILY, 1.0),
        (PropertyType.APARTMENT, 0.85),
        (PropertyType.COMMERCIAL, 1.4),
    ],
)
def test_property_type_factor(property_type, multiplier):
    assert multipliers(submission(property_type=property_type))["property_type"] == multiplier


def test_unspecified_property_is_rated_as_a_single_family_house():
    unspecified = rate(submission(property_type=PropertyType.UNSPECIFIED))
    single_family = rate(submission(property_type=PropertyType.SINGLE_FAMILY))

    assert unspecified.annual_premium_cents == single_family.annual_premium_cents
    assert "rated as a single-family house" in unspecified.factors[1].reason


def test_apartments_are_cheaper_and_commercial_premises_dearer():
    apartment, house, commercial = (
        rate(submission(property_type=t)).annual_premium_cents
        for t in (PropertyType.APARTMENT, PropertyType.SINGLE_FAMILY, PropertyType.COMMERCIAL)
    )

    assert apartment < house < commercial


@pytest.mark.parametrize(
    ("year_built", "multiplier"),
    [
        (0, 1.0),
        (1800, 1.3),
        (1939, 1.3),
        (1940, 1.15),
        (1969, 1.15),
        (1970, 1.0),
        (1999, 1.0),
        (2000, 0.9),
        (2024, 0.9),
    ],
)
def test_building_age_factor_by_construction_era(year_built, multiplier):
    assert multipliers(submission(year_built=year_built))["building_age"] == multiplier


def test_unknown_year_built_is_neutral():
    factor = rate(submission(year_built=0)).factors[2]

    assert factor.multiplier == 1.0
    assert "unknown" in factor.reason


def test_an_older_building_never_costs_less():
    premiums = [
        rate(submission(year_built=year)).annual_premium_cents for year in range(1800, 2025)
    ]

    assert premiums == sorted(premiums, reverse=True)
    assert premiums[0] > premiums[-1]


@pytest.mark.parametrize(
    ("prior_claims", "multiplier"),
    [(0, 1.0), (1, 1.2), (2, 1.4), (4, 1.8), (5, 2.0), (6, 2.0), (20, 2.0)],
)
def test_each_prior_claim_adds_a_capped_surcharge(prior_claims, multiplier):
    assert multipliers(submission(prior_claims=prior_claims))["prior_claims"] == pytest.approx(
        multiplier
    )


def test_the_prior_claims_reason_says_when_the_cap_applies():
    assert "capped at 5 claims" in rate(submission(prior_claims=6)).factors[3].reason
    assert "capped" not in rate(submission(prior_claims=5)).factors[3].reason


def test_more_prior_claims_never_cost_less():
    premiums = [rate(submission(prior_claims=n)).annual_premium_cents for n in range(21)]

    assert premiums == sorted(premiums)
    assert premiums[0] < premiums[5] == premiums[20]


def test_a_premium_below_the_minimum_is_raised_to_it():
    # 20,000 x 350 / 1,000 = 7,000; apartment 0.85, built 2005 0.90: 5,355 < 10,000.
    result = rate(submission(20_000, PropertyType.APARTMENT, 2005, 0))
    minimum = result.factors[4]

    assert result.annual_premium_cents == MINIMUM_PREMIUM_CENTS == 10_000
    assert minimum.multiplier == pytest.approx(10_000 / 5_355)
    assert "53.55 raised to the 100.00 minimum" in minimum.reason


def test_the_smallest_coverage_still_gets_the_minimum_premium():
    # 1 x 350 / 1,000 = 0.35 cents, which rounds to 0 before the minimum applies.
    assert rate(submission(coverage=1)).annual_premium_cents == MINIMUM_PREMIUM_CENTS


def test_a_premium_at_or_above_the_minimum_is_unchanged():
    # 28,572 x 350 / 1,000 = 10,000.2 -> 10,000: exactly the minimum, so it is left alone.
    result = rate(submission(coverage=28_572))

    assert result.annual_premium_cents == 10_000
    assert result.factors[4].multiplier == 1.0


def test_rating_records_processor_no_steps_risk_score_and_review_reason():
    quote = submission(3_000_000, PropertyType.COMMERCIAL, 1930, 4)
    result = rate(quote, processor="custom")

    assert result.processor == "custom"
    assert result.steps == ()
    assert result.risk_score == risk_score(quote) == 100
    assert "coverage 3,000,000" in result.review_reason
    assert "prior claims 4" in result.review_reason
    assert "risk score 100" in result.review_reason


def test_rating_an_invalid_submission_names_every_bad_field():
    with pytest.raises(InvalidSubmissionError) as raised:
        rate(Submission("", "12 Main St", 0, PropertyType.APARTMENT, 0, 21))

    assert [field for field, _ in raised.value.violations] == [
        "submission.applicant_name",
        "submission.coverage_amount",
        "submission.prior_claims",
    ]


@pytest.mark.parametrize(
    ("quote", "drivers"),
    [
        (submission(), ()),
        (submission(year_built=0), (RiskDriver("year built unknown", 5),)),
        (submission(year_built=1939), (RiskDriver("built before 1940", 25),)),
        (submission(year_built=1969), (RiskDriver("built 1940-1969", 10),)),
        (submission(prior_claims=1), (RiskDriver("1 prior claim", 15),)),
        (submission(prior_claims=4), (RiskDriver("4 prior claims", 60),)),
        (submission(prior_claims=9), (RiskDriver("9 prior claims", 60),)),
        (
            submission(property_type=PropertyType.COMMERCIAL),
            (RiskDriver("commercial premises", 20),),
        ),
        (submission(property_type=PropertyType.APARTMENT), ()),
        (submission(coverage=1_000_000), ()),
        (submission(coverage=1_000_001), (RiskDriver("coverage above 1,000,000", 10),)),
        (submission(coverage=5_000_001), (RiskDriver("coverage above 5,000,000", 20),)),
    ],
)
def test_risk_drivers(quote, drivers):
    assert risk_drivers(quote) == drivers
    assert risk_score(quote) == sum(driver.points for driver in drivers)


def test_risk_score_adds_the_drivers_and_caps_at_100():
    # 2 claims 30 + commercial 20 + before 1940 25 = 75.
    assert risk_score(submission(500_000, PropertyType.COMMERCIAL, 1920, 2)) == 75
    # 60 + 20 + 25 + 20 = 125, capped.
    assert risk_score(submission(6_000_000, PropertyType.COMMERCIAL, 1920, 8)) == 100


@pytest.mark.parametrize(
    ("cents", "text"), [(0, "0.00"), (5, "0.05"), (10_000, "100.00"), (1_461_915, "14,619.15")]
)
def test_format_cents(cents, text):
    assert format_cents(cents) == text
