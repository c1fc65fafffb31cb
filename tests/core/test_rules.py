"""The core's rules, without a store."""

from dataclasses import replace

import pytest
from support.jobs import BASE

from queues.backoff import Backoff
from queues.core import rules
from queues.core.jobs import JobState


@pytest.mark.parametrize(
    ("changes", "claimable"),
    [
        ({}, True),
        ({"run_at": 10.0}, True),
        ({"run_at": 10.1}, False),
        ({"state": JobState.RUNNING, "lease_until": 10.0}, True),
        ({"state": JobState.RUNNING, "lease_until": 10.1}, False),
        ({"state": JobState.HELD}, False),
        ({"state": JobState.COMPLETED}, False),
    ],
)
def test_what_a_claim_at_ten_may_take(changes: dict[str, object], claimable: bool) -> None:
    assert rules.is_claimable(replace(BASE, **changes), now=10.0) is claimable  # type: ignore[arg-type]


def test_only_the_current_attempt_holds_a_running_job() -> None:
    running = replace(BASE, state=JobState.RUNNING, attempt=2)
    assert rules.holds(running, 2)
    assert not rules.holds(running, 1)
    assert not rules.holds(replace(running, state=JobState.CANCELLED), 2)


def test_a_failure_retries_with_backoff_until_the_last_attempt() -> None:
    backoff = Backoff(base=1.0, cap=5.0, jitter=0.0)
    assert rules.after_failure(1, 3, backoff, now=100.0) == rules.RetryAt(101.0)
    assert rules.after_failure(2, 3, backoff, now=100.0) == rules.RetryAt(102.0)
    assert rules.after_failure(3, 3, backoff, now=100.0) == rules.DeadLetter()
    jittered = Backoff(base=4.0, cap=60.0, jitter=0.5)
    assert rules.after_failure(1, 3, jittered, now=0.0, rand=lambda: 1.0) == rules.RetryAt(2.0)


def test_each_operation_leaves_only_the_states_it_names() -> None:
    assert rules.TRANSITIONS["cancel"][0] == {JobState.AVAILABLE, JobState.RUNNING, JobState.HELD}
    assert rules.TRANSITIONS["redrive"] == (frozenset({JobState.FAILED}), JobState.AVAILABLE)
    assert all(not state.is_final for state in rules.TRANSITIONS["cancel"][0])
