"""The quote service's processor in the console's tests, loaded by import path:
--processor console.plugins:paced (with tests/ on PYTHONPATH). The applicant's
name says what happens: "slow…" never finishes (until cancelled), "fail…"
always fails, anything else is rated after PACE_SECONDS, so that a page has a
PENDING and a PROCESSING to show before COMPLETED."""

import asyncio

from quote_svc.domain import QuoteResult, Submission
from quote_svc.rating import rate

PACE_SECONDS = 0.4


async def paced(submission: Submission) -> QuoteResult:
    name = submission.applicant_name
    if name.startswith("slow"):
        await asyncio.Event().wait()
    await asyncio.sleep(PACE_SECONDS)
    if name.startswith("fail"):
        raise RuntimeError(f"scripted failure of {name}")
    return rate(submission)
