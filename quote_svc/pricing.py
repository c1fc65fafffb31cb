"""What the quote service queues, and how a worker prices it."""

from dataclasses import dataclass

from queues.message import Handler, Outcome
from quote_svc.domain import QuoteResult, Submission
from quote_svc.processors import ProcessorRegistry


@dataclass(frozen=True, slots=True)
class QuoteJob:
    """A queued quote: the submission and which pipeline prices it."""

    submission: Submission
    use_agentic: bool = False


def job_handler(
    registry: ProcessorRegistry, *, default: str, agentic: str
) -> Handler[QuoteJob, QuoteResult]:
    """The queue's handler: price with the named processor the job asks for.

    Both names are looked up now, so a misconfigured service fails at start-up
    rather than on its first message.
    """
    single_step = registry.get(default)
    step_by_step = registry.get(agentic)

    async def price(job: QuoteJob) -> Outcome[QuoteResult]:
        result = await (step_by_step if job.use_agentic else single_step)(job.submission)
        return Outcome(result, result.review_reason)

    return price
