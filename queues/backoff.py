"""Retry backoff: exponential from a base, capped, with jitter."""

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    #: Delay before the first retry, in seconds, before jitter.
    base: float = 1.0
    #: No delay exceeds this, in seconds.
    cap: float = 60.0
    #: Fraction of the delay that is randomised (0 = none, 1 = "full jitter"), so
    #: that messages failing together do not retry together.
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("backoff base and cap must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"backoff jitter must be between 0 and 1; got {self.jitter}")

    def delay(self, retry_number: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `retry_number` (1 for the first retry)."""
        exponent = min(max(retry_number - 1, 0), 63)
        ceiling = min(self.cap, self.base * 2.0**exponent)
        return ceiling * (1.0 - self.jitter * rand())
