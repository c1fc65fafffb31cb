"""The single-step rating engine: a deterministic premium, and the risk score.

Rating table
============

The base rate is 350 cents per 1,000 of coverage, so the base premium is
coverage x 350 / 1,000 cents. Five factors then apply, always in this order, and
every quote records all five (a factor that changes nothing has multiplier 1.0):

=================  ==============================================================
Factor             Multiplier
=================  ==============================================================
coverage_band      A volume discount banded like income tax: the first 1,000,000
                   of coverage at 1.00, the part from 1,000,000 to 5,000,000 at
                   0.85, the part above 5,000,000 at 0.70. The multiplier is the
                   blend, e.g. 3,000,000 → (1,000,000 x 1.00 + 2,000,000 x 0.85)
                   / 3,000,000 = 0.90. Banding the discount, rather than
                   discounting the whole premium, means more coverage never costs
                   less.
property_type      single-family 1.00 (unspecified is rated as single-family),
                   apartment 0.85, commercial 1.40.
building_age       By year built: unknown (0) 1.00; before 1940 1.30; 1940-1969
                   1.15; 1970-1999 1.00; 2000 or later 0.90. Construction eras,
                   not ages, so a quote does not change with the calendar.
prior_claims       1.00 + 0.20 per prior claim, counting at most 5 claims (so at
                   most 2.00).
minimum_premium    The premium is at least 10,000 cents (100.00): when it is
                   below, it is raised to that and the multiplier is the ratio.
=================  ==============================================================

Rounding: every multiplier is an exact fraction and the first four apply to the
exact base premium (coverage x 350 / 1,000, unrounded), so the only rounding is
once, to whole cents, half up, after the prior_claims factor; the minimum premium
then applies to that. base_premium_cents is the exact base rounded the same way,
for display. Worked example: coverage 3,000,000, apartment, built 1930, 2 prior
claims: 1,050,000 x 0.90 x 0.85 x 1.30 x 1.40 = 1,461,915 cents.

Risk score
==========

From 0 (lowest) to 100: the sum of the points below, capped at 100.

=================  ==============================================================
Driver             Points
=================  ==============================================================
prior claims       15 per claim, at most 60
property type      commercial 20; single-family, unspecified and apartment 0
year built         unknown (0) 5; before 1940 25; 1940-1969 10; 1970 or later 0
coverage           above 5,000,000 20; above 1,000,000 10
=================  ==============================================================
"""

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from quote_svc.domain import PremiumFactor, PropertyType, QuoteResult, Submission
from quote_svc.limits import YEAR_BUILT_UNKNOWN, require_valid
from quote_svc.review_rules import review_reason

BASE_RATE_PER_THOUSAND_CENTS: Final = 350
MINIMUM_PREMIUM_CENTS: Final = 10_000

#: Upper bounds of the coverage bands; the last band has none.
COVERAGE_BAND_LIMITS: Final = (1_000_000, 5_000_000)
#: One multiplier per coverage band, applied to the part of the coverage in it.
COVERAGE_BAND_MULTIPLIERS: Final = (Fraction(1), Fraction(85, 100), Fraction(70, 100))

PROPERTY_TYPE_MULTIPLIERS: Final[Mapping[PropertyType, Fraction]] = {
    PropertyType.UNSPECIFIED: Fraction(1),
    PropertyType.SINGLE_FAMILY: Fraction(1),
    PropertyType.APARTMENT: Fraction(85, 100),
    PropertyType.COMMERCIAL: Fraction(140, 100),
}

#: First years of the construction eras after the earliest one.
ERA_STARTS: Final = (1940, 1970, 2000)
#: One multiplier per construction era, oldest first.
BUILDING_AGE_MULTIPLIERS: Final = (
    Fraction(130, 100),
    Fraction(115, 100),
    Fraction(1),
    Fraction(90, 100),
)

PRIOR_CLAIM_SURCHARGE: Final = Fraction(20, 100)
PRIOR_CLAIMS_SURCHARGED_AT_MOST: Final = 5

RISK_SCORE_MAX: Final = 100
RISK_POINTS_PER_PRIOR_CLAIM: Final = 15
RISK_POINTS_PRIOR_CLAIMS_AT_MOST: Final = 60
RISK_POINTS_COMMERCIAL: Final = 20
RISK_POINTS_YEAR_BUILT_UNKNOWN: Final = 5
#: One number of points per construction era, oldest first.
RISK_POINTS_BY_ERA: Final = (25, 10, 0, 0)
#: One number of points per coverage band.
RISK_POINTS_BY_COVERAGE_BAND: Final = (0, 10, 20)

_Factor = tuple[str, Fraction, str]
"""A factor before it is recorded: name, exact multiplier, reason."""

_PROPERTY_TYPE_WORDS: Final[Mapping[PropertyType, str]] = {
    PropertyType.UNSPECIFIED: "unspecified property, rated as a single-family house",
    PropertyType.SINGLE_FAMILY: "single-family house",
    PropertyType.APARTMENT: "apartment",
    PropertyType.COMMERCIAL: "commercial premises",
}


@dataclass(frozen=True, slots=True)
class RiskDriver:
    """One reason a submission's risk score is above 0."""

    reason: str
    points: int


def rate(submission: Submission, *, processor: str = "rating") -> QuoteResult:
    """Price a submission by the rating table in this module's documentation.

    Deterministic: the same submission always gets the same quote. Raises
    limits.InvalidSubmissionError when the submission breaks a documented limit.
    """
    require_valid(submission)
    exact_base = Fraction(submission.coverage_amount * BASE_RATE_PER_THOUSAND_CENTS, 1000)
    factors = [
        _coverage_band_factor(submission.coverage_amount),
        _property_type_factor(submission.property_type),
        _building_age_factor(submission.year_built),
        _prior_claims_factor(submission.prior_claims),
    ]
    exact = exact_base * math.prod(multiplier for _, multiplier, _ in factors)
    factors.append(_minimum_premium_factor(exact))
    score = risk_score(submission)
    return QuoteResult(
        annual_premium_cents=max(_round_half_up(exact), MINIMUM_PREMIUM_CENTS),
        base_rate_per_thousand_cents=BASE_RATE_PER_THOUSAND_CENTS,
        base_premium_cents=_round_half_up(exact_base),
        factors=tuple(
            PremiumFactor(name, float(multiplier), reason) for name, multiplier, reason in factors
        ),
        steps=(),
        processor=processor,
        risk_score=score,
        review_reason=review_reason(submission, risk_score=score),
    )


def risk_drivers(submission: Submission) -> tuple[RiskDriver, ...]:
    """The drivers that add points to the risk score, by the table above."""
    drivers: list[RiskDriver] = []
    if submission.prior_claims:
        points = submission.prior_claims * RISK_POINTS_PER_PRIOR_CLAIM
        drivers.append(
            RiskDriver(
                _claims(submission.prior_claims), min(points, RISK_POINTS_PRIOR_CLAIMS_AT_MOST)
            )
        )
    if submission.property_type == PropertyType.COMMERCIAL:
        drivers.append(RiskDriver("commercial premises", RISK_POINTS_COMMERCIAL))
    era = _era(submission.year_built)
    if era is None:
        drivers.append(RiskDriver("year built unknown", RISK_POINTS_YEAR_BUILT_UNKNOWN))
    elif RISK_POINTS_BY_ERA[era]:
        drivers.append(RiskDriver(f"built {_era_words(era)}", RISK_POINTS_BY_ERA[era]))
    band = bisect.bisect_left(COVERAGE_BAND_LIMITS, submission.coverage_amount)
    if RISK_POINTS_BY_COVERAGE_BAND[band]:
        drivers.append(
            RiskDriver(
                f"coverage above {COVERAGE_BAND_LIMITS[band - 1]:,}",
                RISK_POINTS_BY_COVERAGE_BAND[band],
            )
        )
    return tuple(drivers)


def risk_score(submission: Submission) -> int:
    """The risk score from 0 to 100: the drivers' points, capped at 100."""
    return min(sum(driver.points for driver in risk_drivers(submission)), RISK_SCORE_MAX)


def format_cents(cents: int) -> str:
    """Cents as currency units with thousands separators, e.g. 1461915 → "14,619.15"."""
    units, rest = divmod(cents, 100)
    return f"{units:,}.{rest:02d}"


def _coverage_band_factor(coverage: int) -> _Factor:
    parts: list[tuple[int, Fraction]] = []
    lower = 0
    for upper, multiplier in zip(
        (*COVERAGE_BAND_LIMITS, coverage), COVERAGE_BAND_MULTIPLIERS, strict=True
    ):
        in_band = min(coverage, upper) - lower
        if in_band <= 0:
            break
        parts.append((in_band, multiplier))
        lower = upper
    if len(parts) == 1:
        reason = (
            f"coverage {coverage:,} is within the first {COVERAGE_BAND_LIMITS[0]:,}, rated in full"
        )
    else:
        bands = ", ".join(f"{amount:,} at {float(multiplier):.2f}" for amount, multiplier in parts)
        reason = f"volume discount on coverage {coverage:,}: {bands}"
    blended = sum((amount * multiplier for amount, multiplier in parts), Fraction(0)) / coverage
    return "coverage_band", blended, reason


def _property_type_factor(property_type: PropertyType) -> _Factor:
    return (
        "property_type",
        PROPERTY_TYPE_MULTIPLIERS[property_type],
        _PROPERTY_TYPE_WORDS[property_type],
    )


def _building_age_factor(year_built: int) -> _Factor:
    era = _era(year_built)
    if era is None:
        return "building_age", Fraction(1), "year built unknown, rated as neutral"
    return (
        "building_age",
        BUILDING_AGE_MULTIPLIERS[era],
        f"built in {year_built} ({_era_words(era)})",
    )


def _prior_claims_factor(prior_claims: int) -> _Factor:
    if not prior_claims:
        return "prior_claims", Fraction(1), "no prior claims"
    surcharged = min(prior_claims, PRIOR_CLAIMS_SURCHARGED_AT_MOST)
    multiplier = 1 + surcharged * PRIOR_CLAIM_SURCHARGE
    reason = f"{_claims(prior_claims)}: +{PRIOR_CLAIM_SURCHARGE * 100}% per claim"
    if surcharged < prior_claims:
        reason += f", capped at {PRIOR_CLAIMS_SURCHARGED_AT_MOST} claims"
    return "prior_claims", multiplier, reason


def _minimum_premium_factor(exact: Fraction) -> _Factor:
    minimum = format_cents(MINIMUM_PREMIUM_CENTS)
    rounded = _round_half_up(exact)
    if rounded >= MINIMUM_PREMIUM_CENTS:
        return "minimum_premium", Fraction(1), f"premium is at least the {minimum} minimum"
    return (
        "minimum_premium",
        MINIMUM_PREMIUM_CENTS / exact,
        f"premium {format_cents(rounded)} raised to the {minimum} minimum",
    )


def _era(year_built: int) -> int | None:
    if year_built == YEAR_BUILT_UNKNOWN:
        return None
    return bisect.bisect_right(ERA_STARTS, year_built)


def _era_words(era: int) -> str:
    if era == 0:
        return f"before {ERA_STARTS[0]}"
    if era == len(ERA_STARTS):
        return f"{ERA_STARTS[-1]} or later"
    return f"{ERA_STARTS[era - 1]}-{ERA_STARTS[era] - 1}"


def _claims(count: int) -> str:
    return f"{count} prior claim" if count == 1 else f"{count} prior claims"


def _round_half_up(amount: Fraction) -> int:
    return math.floor(amount + Fraction(1, 2))
