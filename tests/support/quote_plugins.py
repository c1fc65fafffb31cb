"""A processor for tests that run the quote service as a real process, loaded
by import path: --processor support.quote_plugins:scripted (with tests/ on PYTHONPATH).
The applicant's name says what happens to the quote."""

import asyncio

from quote_svc.domain import QuoteResult, Submission
from quote_svc.rating import rate


async def scripted(submission: Submission) -> QuoteResult:
    name = submission.applicant_name
    if name.startswith("slow"):
        await asyncio.Event().wait()
    if name.startswith("fail"):
        raise RuntimeError(f"scripted failure of {name}")
    if name.startswith("paced"):
        await asyncio.sleep(0.002)
    return rate(submission)
