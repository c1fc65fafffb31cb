"""Rate limits per fairness key, as token buckets: plain functions every
store applies to the buckets it keeps (one per limited key of a queue).

A key limited to per_second with burst b may start b attempts at once, and
then one each 1/per_second: its bucket holds up to b tokens, gains per_second
a second, and each claim of one of its jobs takes one. A key without a token
is passed over, its work waiting (never failed); the worker wakes when it
next has one (JobStore.next_due).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    #: Attempts started per second, on average (positive).
    per_second: float
    #: Attempts that may start at once after an idle spell (at least 1).
    burst: int


@dataclass(frozen=True, slots=True)
class Bucket:
    limit: RateLimit
    #: The tokens it held at `at`.
    tokens: float
    at: float


def fresh(limit: RateLimit, previous: Bucket | None, now: float) -> Bucket:
    """The bucket of a key whose limit is set to limit at now: full when the
    key had none, else keeping what it held (so lowering a limit cannot hand
    out a new burst), up to the new burst."""
    held = limit.burst if previous is None else tokens(previous, now)
    return Bucket(limit, min(float(limit.burst), held), now)


def tokens(bucket: Bucket, now: float) -> float:
    """What bucket holds at now."""
    gained = max(0.0, now - bucket.at) * bucket.limit.per_second
    return min(float(bucket.limit.burst), bucket.tokens + gained)


def taken(bucket: Bucket, count: int, now: float) -> Bucket:
    """bucket after count claims at now."""
    return Bucket(bucket.limit, tokens(bucket, now) - count, now)


def allowances(buckets: Mapping[str, Bucket], now: float) -> dict[str, int]:
    """How many attempts each limited key may start at now."""
    # A hair of slack, so that float error never keeps back a token that is due.
    return {key: math.floor(tokens(b, now) + 1e-9) for key, b in buckets.items()}


def next_token(bucket: Bucket, now: float) -> float:
    """When bucket next holds a whole token: now, if it does already."""
    held = tokens(bucket, now)
    return now if held >= 1 - 1e-9 else now + (1 - held) / bucket.limit.per_second


def exhausted(allowance: Mapping[str, int]) -> frozenset[str]:
    """The keys a claim passes over for their rate."""
    return frozenset(key for key, left in allowance.items() if left <= 0)
