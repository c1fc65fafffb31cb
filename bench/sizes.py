"""How big each measurement is: the full run (`make bench`) and --smoke (the test)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    #: Closed-loop seconds per unary run, and the warm-up before each.
    unary_seconds: float
    unary_warmup: float
    #: Interleaved rounds per comparison (reference and subject alternate).
    rounds: int
    lever_rounds: int
    #: Figure 2: items through the engine; messages pending for GetStats; calls timed.
    engine_items: int
    engine_pending: int
    engine_calls: int
    #: Figure 3: jobs per peer per round, and rounds.
    e2e_count: int
    e2e_rounds: int
    #: Figure 6: quotes completed before RSS is read, and the reference's.
    memory_quotes: int
    memory_reference_quotes: int
    #: Figure 7: messages pending for GetStats on PostgreSQL; calls timed.
    pg_stats_pending: int
    pg_stats_calls: int
    #: Figure 4: the two stream counts, events to replay, seconds at the event rate.
    streams: tuple[int, int]
    streams_per_client: int
    streams_per_channel: int
    replay_events: int
    #: Figure 11: events appended to an order a watcher holds and never reads.
    stalled_events: int
    event_rate: float
    rate_seconds: float
    #: Seconds left for RSS to settle, and for the last events to arrive.
    settle_seconds: float
    #: Figure 9: quotes the page follows for the latency, and pages held open.
    console_quotes: int
    console_pages: int
    #: Profiles: seconds of SubmitQuote load, quotes end to end.
    profile_seconds: float
    profile_quotes: int
    #: Figure 13: key A's burst, and the seconds LOW is submitted under saturating HIGH.
    fairness_burst: int
    fairness_aging_seconds: float


FULL = Sizes(
    unary_seconds=1.0,
    unary_warmup=0.2,
    rounds=5,
    lever_rounds=5,
    engine_items=20_000,
    engine_pending=100_000,
    engine_calls=2_000,
    e2e_count=10_000,
    e2e_rounds=2,
    memory_quotes=200_000,
    memory_reference_quotes=1_000,
    pg_stats_pending=100_000,
    pg_stats_calls=1_000,
    streams=(1_000, 10_000),
    streams_per_client=2_500,
    streams_per_channel=100,
    replay_events=2_000,
    stalled_events=100_000,
    event_rate=200.0,
    rate_seconds=5.0,
    settle_seconds=1.0,
    console_quotes=40,
    console_pages=200,
    profile_seconds=4.0,
    profile_quotes=5_000,
    fairness_burst=5_000,
    fairness_aging_seconds=6.0,
)

SMOKE = Sizes(
    unary_seconds=0.1,
    unary_warmup=0.02,
    rounds=1,
    lever_rounds=1,
    engine_items=200,
    engine_pending=200,
    engine_calls=50,
    e2e_count=30,
    e2e_rounds=1,
    memory_quotes=300,
    memory_reference_quotes=100,
    pg_stats_pending=200,
    pg_stats_calls=20,
    streams=(4, 10),
    streams_per_client=10,
    streams_per_channel=5,
    replay_events=10,
    stalled_events=50,
    event_rate=50.0,
    rate_seconds=0.2,
    settle_seconds=0.1,
    console_quotes=2,
    console_pages=3,
    profile_seconds=0.1,
    profile_quotes=30,
    fairness_burst=200,
    fairness_aging_seconds=1.0,
)
