"""The priority SubmitQuote assigns when a request gives none.

As the seed documents: coverage above 500,000 → HIGH; below 100,000 → HIGH;
otherwise NORMAL. URGENT is only assigned when a request asks for it, never
automatically.

Levels are plain ints equal to queues.message.Priority and the proto's Priority,
so this module depends on neither.
"""

from typing import Final

NORMAL: Final = 2
HIGH: Final = 3

#: Coverage strictly above this is HIGH.
HIGH_COVERAGE_ABOVE: Final = 500_000
#: Coverage strictly below this is HIGH.
HIGH_COVERAGE_BELOW: Final = 100_000


def automatic_priority_level(coverage_amount: int) -> int:
    """The priority level for a submission of this coverage, by the rule above."""
    if coverage_amount > HIGH_COVERAGE_ABOVE or coverage_amount < HIGH_COVERAGE_BELOW:
        return HIGH
    return NORMAL
