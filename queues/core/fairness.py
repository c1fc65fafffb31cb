"""Which claimable jobs a claim takes, as plain functions every store applies:
aging, fairness keys served round-robin (weighted), and a cap per key.

Fairness is start-time fair queuing. Each job gets a rank when it is
submitted: its key's next rank, or the queue's clock if that is later, and
the key's next rank moves 1/weight past it. The clock is the highest rank a
claim has taken. So within one effective priority, claiming in rank order
serves the keys in turn (a key of weight 2 twice per turn), a burst of one key
is spread over the ranks after the clock, and a key that was idle starts at
the clock, neither behind the others' backlog nor ahead of it with credit
saved up.

Aging serves a job that has waited as if it were one priority higher for each
aging interval waited, up to the top priority, so no priority starves. It
counts from when the job became due (its schedule, else its submission), and
a job aging raised goes before those submitted at the priority it reached.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from queues.core import rate_limits

#: How many keys stats name, busiest first.
BUSIEST_KEYS = 10


@dataclass(frozen=True, slots=True)
class ClaimPolicy:
    """What a service asks of its claims beyond priority and rank."""

    #: Seconds of waiting that serve a job one priority higher; 0 turns aging off.
    aging_interval: float = 0.0
    #: The priority aging stops at.
    top_priority: int = 0
    #: The most jobs of one fairness key that may run at once; None for no cap.
    max_per_key: int | None = None


NO_POLICY = ClaimPolicy()


class Ranked(Protocol):
    """What the claim order reads of a job (a Job, or a store's lighter row)."""

    @property
    def id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def priority(self) -> int: ...
    @property
    def rank(self) -> float: ...
    @property
    def ready_at(self) -> float: ...
    @property
    def fairness_key(self) -> str: ...


J = TypeVar("J", bound=Ranked)


def effective_priority(priority: int, ready_at: float, now: float, policy: ClaimPolicy) -> int:
    """The priority a job due since ready_at is served at, at now."""
    if policy.aging_interval <= 0 or priority >= policy.top_priority or now <= ready_at:
        return priority
    return min(policy.top_priority, priority + int((now - ready_at) // policy.aging_interval))


def claim_order(job: Ranked, now: float, policy: ClaimPolicy) -> tuple[int, int, float, int]:
    """Sort key of the claim order: higher effective priority first; within
    one, the jobs aging raised to it before those submitted at it (a LOW
    raised to HIGH has waited two intervals, and under a flood of HIGH would
    otherwise wait for the top); then lower rank (the keys in turn), then
    submission order."""
    effective = effective_priority(job.priority, job.ready_at, now, policy)
    return -effective, job.priority, job.rank, job.seq


def ranks(
    jobs: Sequence[tuple[str, float]], next_ranks: Mapping[str, float], clock: float
) -> tuple[list[float], dict[str, float]]:
    """The ranks of jobs, given as (fairness key, weight) in submission order,
    from each key's next rank (absent: none yet) and the queue's clock; and
    each key's next rank after them."""
    following = dict(next_ranks)
    given = []
    for key, weight in jobs:
        rank = max(following.get(key, clock), clock)
        given.append(rank)
        following[key] = rank + 1.0 / weight
    return given, {key: following[key] for key, _ in jobs}


def forgettable(next_rank: float, clock: float) -> bool:
    """Whether a key's next rank can be forgotten: ranks gives a key it has
    none of the clock, so once the clock has reached the key's next rank,
    forgetting it changes no rank (what the retention sweep relies on, so that
    keys used once, such as an order's, do not pile up)."""
    return next_rank <= clock


def choose(
    candidates: Iterable[J],
    *,
    limit: int,
    now: float,
    policy: ClaimPolicy,
    running: Mapping[str, int],
    allowance: Mapping[str, int] | None = None,
) -> tuple[list[J], bool]:
    """The best limit of candidates in claim order, none twice, passing over a
    key once it has policy.max_per_key running (running: each key's running
    jobs, the candidates aside) or once this claim has taken its allowance
    (rate_limits.allowances: what a rate-limited key may start now); and
    whether any was passed over so, when a store may read again without the
    keys now at their limit."""
    cap = policy.max_per_key
    held = Counter(running)
    left = dict(allowance or {})
    chosen: list[J] = []
    seen: set[str] = set()
    capped = False
    for job in sorted(candidates, key=lambda job: claim_order(job, now, policy)):
        if len(chosen) == limit:
            break
        if job.id in seen:
            continue
        seen.add(job.id)
        key = job.fairness_key
        if (cap is not None and held[key] >= cap) or left.get(key, 1) <= 0:
            capped = True
            continue
        held[key] += 1
        if key in left:
            left[key] -= 1
        chosen.append(job)
    return chosen, capped


class Rounds(Generic[J]):
    """A claim's choice, made in rounds: each round the store reads
    candidates passing over `passed` and offers them; the round chooses
    (choose) and counts what it took against each key's cap and allowance.
    Another round is wanted only while the last passed a key over at its
    limit, so that reading past that key may find more:

        rounds = Rounds(limit=..., ...)
        while rounds.wanted:
            rounds.offer(read(passed=rounds.passed, limit=rounds.wanted))
    """

    def __init__(
        self,
        *,
        limit: int,
        now: float,
        policy: ClaimPolicy,
        running: Mapping[str, int],
        allowance: Mapping[str, int],
    ) -> None:
        self.chosen: list[J] = []
        self._limit = limit
        self._now = now
        self._policy = policy
        self._running = dict(running)
        self._allowance = dict(allowance)
        self._ended = False

    @property
    def wanted(self) -> int:
        """How many more the next round may choose; 0 when the choice is made."""
        return 0 if self._ended else self._limit - len(self.chosen)

    @property
    def passed(self) -> frozenset[str]:
        """The keys the next read passes over: at their cap, or out of allowance."""
        return at_cap(self._running, self._policy) | rate_limits.exhausted(self._allowance)

    def offer(self, candidates: Iterable[J]) -> None:
        taken = {job.id for job in self.chosen}
        more, passed_over = choose(
            (job for job in candidates if job.id not in taken),
            limit=self.wanted,
            now=self._now,
            policy=self._policy,
            running=self._running,
            allowance=self._allowance,
        )
        self.chosen += more
        for job in more:
            key = job.fairness_key
            self._running[key] = self._running.get(key, 0) + 1
            if key in self._allowance:
                self._allowance[key] -= 1
        self._ended = not (more and passed_over)


def at_cap(running: Mapping[str, int], policy: ClaimPolicy) -> frozenset[str]:
    """The keys a claim passes over: those with policy.max_per_key running."""
    cap = policy.max_per_key
    if cap is None:
        return frozenset()
    return frozenset(key for key, count in running.items() if count >= cap)


def candidates_per_read(limit: int) -> int:
    """How many jobs each of a claim's reads takes: enough beyond limit that
    a few passed over (capped within the claim, locked by another) still
    leave limit to choose from."""
    return 2 * limit + 8


def busiest(pending: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """The BUSIEST_KEYS keys with the most pending jobs, most first (ties by
    key), as (key, count), with none of count 0."""
    ordered = sorted(
        ((key, count) for key, count in pending.items() if count > 0),
        key=lambda item: (-item[1], item[0]),
    )
    return tuple(ordered[:BUSIEST_KEYS])
