"""The quote service's processor for the console's figures:
`--processor bench.console_processor:price`. A submission whose applicant's
name starts with "held" is never priced (an open page's message that stays
PROCESSING, until cancelled); any other gets bench.noop_processor's result."""

import asyncio

from bench.noop_processor import RESULT
from quote_svc.domain import QuoteResult, Submission


async def price(submission: Submission) -> QuoteResult:
    if submission.applicant_name.startswith("held"):
        await asyncio.Event().wait()
    return RESULT
