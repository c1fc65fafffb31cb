"""A processor that prices nothing: `--processor bench.noop_processor:price`.

The end-to-end and unary figures measure the queue and the RPC path, not the
rating engine, so every submission gets the same precomputed result at once.
The result has the shape of a real rating (five factors), so messages carry as
much to store and serialise as they would in production.
"""

from quote_svc.domain import PremiumFactor, QuoteResult, Submission

RESULT = QuoteResult(
    annual_premium_cents=87_500,
    base_rate_per_thousand_cents=350,
    base_premium_cents=87_500,
    factors=(
        PremiumFactor("coverage_band", 1.0, "all coverage in the first band"),
        PremiumFactor("property_type", 1.0, "single-family"),
        PremiumFactor("building_age", 1.0, "year built unknown"),
        PremiumFactor("prior_claims", 1.0, "no prior claims"),
        PremiumFactor("minimum_premium", 1.0, "above the minimum premium"),
    ),
    steps=(),
    processor="bench-noop",
    risk_score=5,
    review_reason="",
)


async def price(submission: Submission) -> QuoteResult:
    """The fixed RESULT, whatever the submission."""
    return RESULT
