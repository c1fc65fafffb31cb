import asyncio
import itertools

import pytest

from quote_svc.domain import PropertyType, Submission
from quote_svc.limits import InvalidSubmissionError
from quote_svc.rating import rate
from quote_svc.underwriting import (
    AUTO_APPROVED,
    STEP_NAMES,
    guess_region,
    normalise_address,
    underwrite,
)

# 2025-06-15T12:00:00Z.
JUNE_2025 = 1_749_988_800.0


def ticking_clock(start: float = JUNE_2025):
    """A clock that advances one second per reading, so step stamps are distinguishable."""
    ticks = itertools.count()
    return lambda: start + next(ticks)


def submission(
    coverage: int = 250_000,
    property_type: PropertyType = PropertyType.SINGLE_FAMILY,
    year_built: int = 1985,
    prior_claims: int = 0,
    address: str = "12 Main St, Springfield, IL 62701",
) -> Submission:
    return Submission("Ada Lovelace", address, coverage, property_type, year_built, prior_claims)


async def test_records_the_four_steps_in_order_stamped_by_the_clock():
    result = await underwrite(submission(), clock=ticking_clock())

    assert tuple(step.name for step in result.steps) == STEP_NAMES
    assert STEP_NAMES == ("enrichment", "risk_scoring", "pricing", "review_decision")
    stamps = [step.completed_at for step in result.steps]
    assert stamps == sorted(set(stamps))
    assert all(JUNE_2025 <= stamp < JUNE_2025 + 10 for stamp in stamps)
    assert all(step.outcome for step in result.steps)


@pytest.mark.parametrize(
    "quote",
    [
        submission(),
        submission(3_000_000, PropertyType.APARTMENT, 1930, 2),
        submission(20_000, PropertyType.APARTMENT, 2005, 0),
        submission(45_000_000, PropertyType.COMMERCIAL, 0, 11),
    ],
)
async def test_premium_factors_risk_and_review_equal_the_single_step_ratings(quote):
    rated = rate(quote)
    underwritten = await underwrite(quote, clock=ticking_clock())

    assert underwritten.annual_premium_cents == rated.annual_premium_cents
    assert underwritten.base_premium_cents == rated.base_premium_cents
    assert underwritten.base_rate_per_thousand_cents == rated.base_rate_per_thousand_cents
    assert underwritten.factors == rated.factors
    assert underwritten.risk_score == rated.risk_score
    assert underwritten.review_reason == rated.review_reason


async def test_the_result_names_the_processor():
    assert (await underwrite(submission(), clock=ticking_clock())).processor == "underwriting"
    result = await underwrite(submission(), processor="agent-2", clock=ticking_clock())
    assert result.processor == "agent-2"


async def test_enrichment_derives_address_region_and_building_age():
    quote = submission(year_built=1930, address="  12  Main St ,Springfield,,  IL 62701 ")
    result = await underwrite(quote, clock=ticking_clock())

    assert result.steps[0].outcome == (
        "address '12 Main St, Springfield, IL 62701'; region 'IL'; "
        "building 95 years old (built 1930)"
    )


async def test_enrichment_with_an_unknown_year_built():
    result = await underwrite(submission(year_built=0, address="Flat 3"), clock=ticking_clock())

    assert result.steps[0].outcome == "address 'Flat 3'; region 'unknown'; building age unknown"


async def test_the_building_age_follows_the_clock():
    result = await underwrite(submission(year_built=2024), clock=ticking_clock(JUNE_2025))

    assert "building 1 year old (built 2024)" in result.steps[0].outcome


@pytest.mark.parametrize(
    ("address", "region"),
    [
        ("12 Main St, Springfield, IL 62701", "IL"),
        ("221B Baker Street, London NW1 6XE", "London"),
        ("1 Rue de Rivoli, 75001 Paris", "Paris"),
        ("5 High St, Oxford, OX1 4AA", "Oxford"),
        ("5 High St", "unknown"),
        ("5 High St, 12345", "unknown"),
    ],
)
def test_guess_region(address, region):
    assert guess_region(address) == region


def test_normalise_address():
    assert normalise_address(" 12\tMain  St ,, Springfield ,IL ") == "12 Main St, Springfield, IL"


async def test_risk_scoring_lists_the_drivers():
    quote = submission(6_000_000, PropertyType.COMMERCIAL, 1920, 8)
    result = await underwrite(quote, clock=ticking_clock())

    assert result.steps[1].outcome == (
        "risk score 100 (capped from 125): 8 prior claims +60, commercial premises +20, "
        "built before 1940 +25, coverage above 5,000,000 +20"
    )


async def test_risk_scoring_without_drivers():
    result = await underwrite(submission(), clock=ticking_clock())

    assert result.risk_score == 0
    assert result.steps[1].outcome == "risk score 0: no risk drivers"


async def test_pricing_shows_the_arithmetic():
    quote = submission(3_000_000, PropertyType.APARTMENT, 1930, 2)
    result = await underwrite(quote, clock=ticking_clock())

    assert result.steps[2].outcome == (
        "annual premium 14,619.15: base 10,500.00 x coverage_band 0.9 x property_type 0.85 "
        "x building_age 1.3 x prior_claims 1.4 x minimum_premium 1"
    )


async def test_review_decision_auto_approves():
    result = await underwrite(submission(), clock=ticking_clock())

    assert result.review_reason == ""
    assert result.steps[3].outcome == AUTO_APPROVED == "auto-approved"


async def test_review_decision_holds_for_review_with_the_reason():
    result = await underwrite(submission(prior_claims=3), clock=ticking_clock())

    assert result.review_reason == "prior claims 3 is at or above the 3 review threshold"
    assert result.steps[3].outcome == f"needs review: {result.review_reason}"


async def test_an_invalid_submission_is_refused_before_any_step():
    readings = []

    def clock() -> float:
        readings.append(JUNE_2025)
        return JUNE_2025

    with pytest.raises(InvalidSubmissionError) as raised:
        await underwrite(submission(year_built=2026), clock=clock)

    assert [field for field, _ in raised.value.violations] == ["submission.year_built"]
    # Only the reading that gave the current year: no step was stamped.
    assert len(readings) == 1


async def test_concurrent_pipelines_interleave_at_step_boundaries():
    order: list[str] = []

    def clock_for(name: str):
        def clock() -> float:
            order.append(name)
            return JUNE_2025

        return clock

    await asyncio.gather(
        underwrite(submission(), clock=clock_for("a")),
        underwrite(submission(), clock=clock_for("b")),
    )

    # Without yielding between steps, every reading of a's clock would come before b's.
    assert order != sorted(order)
    assert order.count("a") == order.count("b")
