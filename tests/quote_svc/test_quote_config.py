"""The services' shared-store options: postgres needs its database (named by
the service's own prefix), and only a shared store lets a quote process serve
calls without workers, or work without serving calls."""

import pytest

from processor_svc.config import ProcessorConfig
from quote_svc.config import QuoteConfig


def test_postgres_is_a_quote_store_given_its_database() -> None:
    config = QuoteConfig(store="postgres", database_url="postgresql://db/quotes", workers=0)
    assert (config.store, config.workers) == ("postgres", 0)


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"store": "postgres"}, r"store postgres needs database_url \(QUOTE_DATABASE_URL\)"),
        ({"store": "sqlite", "workers": 0}, "workers must be at least 1 with store sqlite, not 0"),
        ({"workers": -1}, "workers must not be negative, not -1"),
        (
            {"api": False},
            "api false needs store postgres: a worker process prices what other "
            "processes accept, and store sqlite is not shared",
        ),
        (
            {"api": False, "store": "memory"},
            "api false needs store postgres: a worker process prices what other "
            "processes accept, and store memory is not shared",
        ),
        (
            {"api": False, "store": "postgres", "database_url": "postgresql://db/q", "workers": 0},
            "with api false, workers must be at least 1, not 0",
        ),
        (
            {"lease_seconds": 5.0, "heartbeat_seconds": 5.0},
            r"heartbeat_seconds must be positive and under lease_seconds \(5.0\), not 5.0",
        ),
        ({"lease_seconds": 0.0}, "lease_seconds must be positive, not 0.0"),
        ({"store": "redis"}, "store must be one of sqlite, memory, postgres, not 'redis'"),
    ],
)
def test_store_options_that_cannot_work_are_refused(options: dict, complaint: str) -> None:
    with pytest.raises(ValueError, match=f"^{complaint}$"):
        QuoteConfig(**options)


def test_the_processor_names_its_own_database_variable() -> None:
    with pytest.raises(ValueError, match=r"needs database_url \(PROCESSOR_DATABASE_URL\)$"):
        ProcessorConfig(store="postgres")
    assert ProcessorConfig(store="postgres", database_url="postgresql://db/p").lease_seconds == 30.0
