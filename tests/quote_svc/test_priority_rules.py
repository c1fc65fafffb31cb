import pytest

from quote_svc.priority_rules import (
    HIGH,
    HIGH_COVERAGE_ABOVE,
    HIGH_COVERAGE_BELOW,
    NORMAL,
    automatic_priority_level,
)


def test_levels_match_the_proto_priority_numbers():
    assert (NORMAL, HIGH) == (2, 3)
    assert (HIGH_COVERAGE_BELOW, HIGH_COVERAGE_ABOVE) == (100_000, 500_000)


@pytest.mark.parametrize(
    ("coverage", "level"),
    [
        (1, HIGH),
        (99_999, HIGH),
        (100_000, NORMAL),
        (300_000, NORMAL),
        (500_000, NORMAL),
        (500_001, HIGH),
        (50_000_000, HIGH),
    ],
)
def test_boundaries(coverage, level):
    assert automatic_priority_level(coverage) == level
