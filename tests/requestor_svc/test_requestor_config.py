"""RequestorConfig: the defaults the issue names, REQUESTOR_* variables, flags, and checks."""

import dataclasses

import pytest

from requestor_svc.config import ENV_PREFIX, RequestorConfig
from service_runtime.config import load_config


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for option in dataclasses.fields(RequestorConfig):
        monkeypatch.delenv(f"{ENV_PREFIX}_{option.name.upper()}", raising=False)


def load(*argv: str) -> RequestorConfig:
    return load_config(RequestorConfig, env_prefix=ENV_PREFIX, argv=list(argv))


def test_the_defaults():
    config = load()
    assert (config.port, config.processor_address) == (50053, "127.0.0.1:50052")
    assert (config.max_concurrent_tasks, config.default_task_timeout) == (10, 3600.0)
    assert (config.result_retention_seconds, config.cleanup_interval) == (3600.0, 60.0)
    assert (config.call_deadline, config.health_interval, config.watch_max_seconds) == (
        5.0,
        2.0,
        3600.0,
    )
    assert (config.reconnect_backoff_base, config.reconnect_backoff_cap) == (0.05, 2.0)


def test_a_flag_wins_over_its_variable(monkeypatch):
    monkeypatch.setenv("REQUESTOR_PROCESSOR_ADDRESS", "processor:9000")
    monkeypatch.setenv("REQUESTOR_MAX_CONCURRENT_TASKS", "3")
    config = load("--max-concurrent-tasks", "4", "--watch-max-seconds", "30")
    assert (config.processor_address, config.max_concurrent_tasks) == ("processor:9000", 4)
    assert config.watch_max_seconds == 30.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_concurrent_tasks": 0}, "max_concurrent_tasks must be at least 1"),
        ({"default_task_timeout": 0.0}, "default_task_timeout must be positive"),
        ({"processor_address": " "}, "processor_address must not be empty"),
        ({"cleanup_interval": 0.0}, "cleanup_interval must be positive"),
        ({"call_deadline": 0.0}, "call_deadline must be positive"),
        ({"health_interval": -1.0}, "health_interval must be positive"),
        ({"watch_max_seconds": 0.0}, "watch_max_seconds must be positive"),
        ({"result_retention_seconds": -1.0}, "result_retention_seconds must not be negative"),
        ({"reconnect_backoff_base": -1.0}, "reconnect_backoff_base must not be negative"),
        ({"reconnect_backoff_cap": -1.0}, "reconnect_backoff_cap must not be negative"),
    ],
)
def test_bad_values_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        RequestorConfig(**change)


def test_store_postgres_needs_its_database_named_by_the_requestors_variable(monkeypatch):
    with pytest.raises(ValueError, match=r"needs database_url \(REQUESTOR_DATABASE_URL\)$"):
        RequestorConfig(store="postgres")
    monkeypatch.setenv("REQUESTOR_DATABASE_URL", "postgresql://db/tasks")
    config = load("--store", "postgres", "--max-waiting-tasks", "5")
    assert (config.store, config.database_url, config.max_waiting_tasks) == (
        "postgres",
        "postgresql://db/tasks",
        5,
    )
