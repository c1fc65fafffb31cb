"""The quote service's start over its own quote-jobs.sqlite3 (store sqlite)."""

from queues.core.jobs import JobState, NewJob
from queues.core.sqlite_store import SqliteJobStore
from queues.message import MessageStatus
from quote_svc.codecs import QuoteJobCodec
from quote_svc.config import QuoteConfig
from quote_svc.domain import Submission
from quote_svc.pricing import QuoteJob
from quote_svc.service import QUEUE_NAME, opened_queue


async def test_an_attempt_the_file_says_is_running_is_handed_back_at_start(tmp_path):
    """Only one service opens a data dir (its lock), so a running attempt in the
    file died with the one before: PENDING again at once, not at its lease's end."""
    store = SqliteJobStore(tmp_path / "quote-jobs.sqlite3")
    await store.open()
    payload = {"p": QuoteJobCodec().encode(QuoteJob(Submission("Ada", "1 Main St", 250_000)))}
    [claimed, waiting] = await store.submit(
        [NewJob(QUEUE_NAME, payload, 2, 4), NewJob(QUEUE_NAME, payload, 1, 4)], now=1.0
    )
    [claim] = await store.claim(QUEUE_NAME, "killed:1", limit=1, lease=3600.0, now=2.0)
    assert (claim.id, claim.job.state) == (claimed.job.id, JobState.RUNNING)
    await store.close()
    config = QuoteConfig(port=0, data_dir=str(tmp_path), workers=1)
    async with opened_queue(config) as (queue, _):
        again = await queue.get(claimed.job.id)
        assert (again.status, again.retry_count) == (MessageStatus.PENDING, 0)
        assert (await queue.get(waiting.job.id)).status is MessageStatus.PENDING
        assert (await queue.stats()).processing == 0
