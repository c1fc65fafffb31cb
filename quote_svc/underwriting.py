"""The step-by-step ("agentic") underwriting pipeline.

It prices a submission in four steps, always in this order, and records each on
the quote as an UnderwritingStep with what it found or decided:

1. enrichment: facts derived from the submission: the address normalised
   (whitespace collapsed, empty comma-separated parts dropped), a region guessed
   from it (the last comma-separated part, other than the first, that still has
   words once tokens with digits such as postcodes are dropped: "12 Main St,
   Springfield, IL 62701" gives "IL"; "unknown" when no part does) and the
   building's age in years (unknown when year_built is 0).
2. risk_scoring: rating.risk_score and the drivers behind it.
3. pricing: rating.rate, so the premium and factors are exactly the single-step
   rating's.
4. review_decision: review_rules.review_reason, or "auto-approved".

Each step is a coroutine so a deployment can make one call out (a geocoder, a
claims database) without changing the pipeline, and the pipeline yields to the
event loop between steps so that concurrent quotes interleave and a cancellation
takes effect at a step boundary.
"""

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Final

from quote_svc.domain import QuoteResult, Submission, UnderwritingStep
from quote_svc.limits import YEAR_BUILT_UNKNOWN, require_valid
from quote_svc.rating import format_cents, rate, risk_drivers, risk_score
from quote_svc.review_rules import review_reason

STEP_NAMES: Final = ("enrichment", "risk_scoring", "pricing", "review_decision")
AUTO_APPROVED: Final = "auto-approved"
UNKNOWN_REGION: Final = "unknown"


async def underwrite(
    submission: Submission,
    *,
    processor: str = "underwriting",
    clock: Callable[[], float] = time.time,
) -> QuoteResult:
    """Price a submission through the four steps above.

    clock answers the time in seconds since the epoch: it stamps each step and
    gives the current year (UTC) for the building's age. Raises
    limits.InvalidSubmissionError when the submission breaks a documented limit.
    """
    current_year = time.gmtime(clock()).tm_year
    require_valid(submission, current_year=current_year)
    enrichment, risk, pricing, decision = STEP_NAMES
    steps: list[UnderwritingStep] = []

    steps.append(UnderwritingStep(enrichment, await _enrich(submission, current_year), clock()))
    await asyncio.sleep(0)
    score, outcome = await _score_risk(submission)
    steps.append(UnderwritingStep(risk, outcome, clock()))
    await asyncio.sleep(0)
    priced, outcome = await _price(submission, processor)
    steps.append(UnderwritingStep(pricing, outcome, clock()))
    await asyncio.sleep(0)
    reason, outcome = await _decide_review(submission, score)
    steps.append(UnderwritingStep(decision, outcome, clock()))

    return dataclasses.replace(priced, steps=tuple(steps), risk_score=score, review_reason=reason)


def normalise_address(address: str) -> str:
    """The address with whitespace collapsed and empty comma-separated parts dropped."""
    parts = (" ".join(part.split()) for part in address.split(","))
    return ", ".join(part for part in parts if part)


def guess_region(address: str) -> str:
    """The region the address names, by the enrichment rule above."""
    parts = normalise_address(address).split(", ")
    for part in reversed(parts[1:]):
        words = [token for token in part.split() if not any(ch.isdigit() for ch in token)]
        if words:
            return " ".join(words)
    return UNKNOWN_REGION


async def _enrich(submission: Submission, current_year: int) -> str:
    if submission.year_built == YEAR_BUILT_UNKNOWN:
        age = "building age unknown"
    else:
        years = current_year - submission.year_built
        age = (
            f"building {years} year{'' if years == 1 else 's'} old (built {submission.year_built})"
        )
    return (
        f"address {normalise_address(submission.address)!r}; "
        f"region {guess_region(submission.address)!r}; {age}"
    )


async def _score_risk(submission: Submission) -> tuple[int, str]:
    score = risk_score(submission)
    drivers = risk_drivers(submission)
    if not drivers:
        return score, f"risk score {score}: no risk drivers"
    total = sum(driver.points for driver in drivers)
    capped = f" (capped from {total})" if total > score else ""
    listed = ", ".join(f"{driver.reason} +{driver.points}" for driver in drivers)
    return score, f"risk score {score}{capped}: {listed}"


async def _price(submission: Submission, processor: str) -> tuple[QuoteResult, str]:
    priced = rate(submission, processor=processor)
    factors = " x ".join(f"{factor.name} {factor.multiplier:.4g}" for factor in priced.factors)
    outcome = (
        f"annual premium {format_cents(priced.annual_premium_cents)}: "
        f"base {format_cents(priced.base_premium_cents)} x {factors}"
    )
    return priced, outcome


async def _decide_review(submission: Submission, score: int) -> tuple[str, str]:
    reason = review_reason(submission, risk_score=score)
    return reason, f"needs review: {reason}" if reason else AUTO_APPROVED
