"""The claim policy a service's scheduling options ask for (kept apart from
config.py, which the command line imports and which knows no queue)."""

from queues.core.fairness import ClaimPolicy
from service_runtime.config import SchedulingOptions


def claim_policy(options: SchedulingOptions, *, top_priority: int) -> ClaimPolicy:
    """Aging up to top_priority, and the cap per key (0: none)."""
    return ClaimPolicy(
        aging_interval=options.aging_interval,
        top_priority=top_priority,
        max_per_key=options.max_processing_per_key or None,
    )
