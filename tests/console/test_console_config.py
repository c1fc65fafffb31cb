"""The console's configuration: flags and CONSOLE_* variables, as the services'
are (docs/configuration.md lists them, checked by tests/test_configuration_docs.py)."""

import pytest

from console_svc.config import ENV_PREFIX, ConsoleConfig
from service_runtime.config import load_config


def test_defaults_are_the_documented_ones():
    config = load_config(ConsoleConfig, env_prefix=ENV_PREFIX, argv=[])
    assert (config.host, config.port) == ("127.0.0.1", 8080)
    assert (config.quote_address, config.processor_address, config.requestor_address) == (
        "127.0.0.1:50051",
        "127.0.0.1:50052",
        "127.0.0.1:50053",
    )


def test_a_flag_wins_over_its_variable(monkeypatch):
    monkeypatch.setenv("CONSOLE_QUOTE_ADDRESS", "quote:1")
    monkeypatch.setenv("CONSOLE_GRACE_SECONDS", "3")
    config = load_config(ConsoleConfig, env_prefix=ENV_PREFIX, argv=["--quote-address", "quote:2"])
    assert config.quote_address == "quote:2"
    assert config.grace_seconds == 3.0


@pytest.mark.parametrize(
    "bad", [{"port": 70000}, {"grace_seconds": -1}, {"call_deadline": 0}, {"quote_address": " "}]
)
def test_bad_values_are_refused_naming_the_option(bad):
    (name,) = bad
    with pytest.raises(ValueError, match=name):
        ConsoleConfig(**bad)
