"""The quote domain's plain types: what the queue carries as payload and result.

They mirror the messages of quoteflow.quote.v1 without depending on gRPC or the
generated code, so the queue library and the pricing code stay plain Python.
"""

from dataclasses import dataclass
from enum import IntEnum


class PropertyType(IntEnum):
    """The kind of building a quote insures; values equal the proto's PropertyType."""

    #: Not given: rated as a single-family house.
    UNSPECIFIED = 0
    SINGLE_FAMILY = 1
    APARTMENT = 2
    COMMERCIAL = 3


@dataclass(frozen=True, slots=True)
class Submission:
    """What an applicant asks to have priced; service_runtime.submission_limits has its limits."""

    applicant_name: str
    address: str
    #: Coverage asked for, in whole currency units.
    coverage_amount: int
    property_type: PropertyType = PropertyType.UNSPECIFIED
    #: Year the building was built; 0 means unknown.
    year_built: int = 0
    #: Insurance claims in the last five years.
    prior_claims: int = 0


@dataclass(frozen=True, slots=True)
class PremiumFactor:
    """One adjustment the rating engine applied to the premium."""

    name: str
    multiplier: float
    #: Why the factor has this value, in words.
    reason: str


@dataclass(frozen=True, slots=True)
class UnderwritingStep:
    """One finished step of the underwriting pipeline."""

    name: str
    #: What the step found or decided, in words.
    outcome: str
    #: When the step finished, in seconds since the epoch.
    completed_at: float


@dataclass(frozen=True, slots=True)
class QuoteResult:
    """A priced quote."""

    annual_premium_cents: int
    base_rate_per_thousand_cents: int
    #: The premium before any factor, rounded to the cent.
    base_premium_cents: int
    #: The factors in the order they were applied.
    factors: tuple[PremiumFactor, ...]
    #: The underwriting steps; empty for the single-step rating.
    steps: tuple[UnderwritingStep, ...]
    #: The name of the processor that priced the quote.
    processor: str
    #: From 0 (lowest) to 100.
    risk_score: int
    #: Why the quote needs a human review; "" when it does not.
    review_reason: str
