"""Aging, ranks, the cap and rate limits as plain functions, without a store."""

from dataclasses import replace

import pytest
from support.jobs import BASE

from queues.core import fairness, rate_limits
from queues.core.fairness import ClaimPolicy
from queues.core.rate_limits import Bucket, RateLimit

AGING = ClaimPolicy(aging_interval=10.0, top_priority=4)


@pytest.mark.parametrize(
    ("priority", "waited", "served_at"),
    [(1, 0.0, 1), (1, 9.9, 1), (1, 10.0, 2), (1, 25.0, 3), (1, 1e6, 4), (4, 1e6, 4), (2, -5, 2)],
)
def test_a_job_is_served_one_priority_higher_per_interval_up_to_the_top(
    priority: int, waited: float, served_at: int
) -> None:
    assert fairness.effective_priority(priority, 100.0, 100.0 + waited, AGING) == served_at


def test_no_aging_keeps_the_stated_priority() -> None:
    assert fairness.effective_priority(1, 0.0, 1e9, ClaimPolicy()) == 1


def test_the_claim_order_is_priority_then_rank_then_submission() -> None:
    jobs = [
        replace(BASE, seq=1, priority=1, rank=0.0),
        replace(BASE, seq=2, priority=3, rank=5.0),
        replace(BASE, seq=3, priority=3, rank=1.0),
        replace(BASE, seq=4, priority=3, rank=1.0),
    ]
    ordered = sorted(jobs, key=lambda j: fairness.claim_order(j, 0.0, ClaimPolicy()))
    assert [j.seq for j in ordered] == [3, 4, 2, 1]
    aged = replace(BASE, seq=9, priority=2, rank=9.0, ready_at=0.0)
    native = replace(BASE, seq=1, priority=3, rank=0.0, ready_at=99.0)
    raised = sorted([native, aged], key=lambda j: fairness.claim_order(j, 100.0, AGING))
    assert [j.seq for j in raised] == [9, 1]


def test_ranks_start_at_the_clock_and_step_by_one_over_the_weight() -> None:
    ranked, following = fairness.ranks(
        [("A", 1.0), ("B", 2.0), ("A", 1.0), ("B", 2.0), ("C", 1.0)], {"A": 3.0, "C": 1.0}, 2.0
    )
    assert ranked == [3.0, 2.0, 4.0, 2.5, 2.0]
    assert following == {"A": 5.0, "B": 3.0, "C": 3.0}


def test_choose_passes_over_a_key_at_its_cap_or_out_of_allowance() -> None:
    jobs = [
        replace(BASE, id=f"{key}{n}", seq=n, fairness_key=key) for n, key in enumerate("AABBCC")
    ]
    chosen, passed = fairness.choose(
        jobs,
        limit=10,
        now=0.0,
        policy=ClaimPolicy(max_per_key=2),
        running={"A": 1},
        allowance={"C": 1},
    )
    assert [j.id for j in chosen] == ["A0", "B2", "B3", "C4"]
    assert passed
    none_passed = fairness.choose(jobs[:2], limit=10, now=0.0, policy=ClaimPolicy(), running={})
    assert none_passed == (jobs[:2], False)


def test_the_busiest_keys_are_bounded_and_leave_out_empty_ones() -> None:
    pending = {f"k{n:02}": n for n in range(20)}
    busiest = fairness.busiest(pending)
    assert len(busiest) == fairness.BUSIEST_KEYS
    assert busiest[0] == ("k19", 19) and ("k00", 0) not in busiest


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = rate_limits.fresh(RateLimit(per_second=2.0, burst=3), None, now=10.0)
    assert rate_limits.tokens(bucket, 10.0) == 3.0
    spent = rate_limits.taken(bucket, 3, now=10.0)
    assert rate_limits.tokens(spent, 10.25) == 0.5
    assert rate_limits.next_token(spent, 10.0) == 10.5
    assert rate_limits.tokens(spent, 100.0) == 3.0
    assert rate_limits.allowances({"A": spent}, 11.0) == {"A": 2}
    assert rate_limits.exhausted({"A": 0, "B": 2}) == frozenset({"A"})


def test_a_new_limit_keeps_what_the_bucket_held() -> None:
    held = Bucket(RateLimit(1.0, 10), tokens=1.0, at=0.0)
    lowered = rate_limits.fresh(RateLimit(per_second=1.0, burst=5), held, now=0.0)
    assert lowered.tokens == 1.0
    full = Bucket(RateLimit(1.0, 10), tokens=10.0, at=0.0)
    assert rate_limits.fresh(RateLimit(1.0, 5), full, now=0.0).tokens == 5.0
