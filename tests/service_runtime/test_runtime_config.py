"""load_config: flag over environment variable over default, typed and validated."""

from dataclasses import dataclass, field

import pytest

from service_runtime.config import ServerOptions, load_config


@dataclass
class QuoteConfig(ServerOptions):
    port: int = field(default=50051, metadata={"help": "TCP port to listen on"})
    workers: int = field(default=4, metadata={"help": "concurrent workers"})
    agentic: bool = field(default=False, metadata={"help": "use the 100% agentic pipeline"})


def load(argv=()) -> QuoteConfig:
    return load_config(QuoteConfig, env_prefix="QUOTE", argv=list(argv))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("HOST", "PORT", "LOG_LEVEL", "GRACE_SECONDS", "WORKERS", "AGENTIC"):
        monkeypatch.delenv(f"QUOTE_{name}", raising=False)


def test_defaults_apply_including_a_subclass_override_of_the_base():
    config = load()

    assert config == QuoteConfig(
        host="127.0.0.1",
        port=50051,
        log_level="INFO",
        grace_seconds=10.0,
        workers=4,
        agentic=False,
    )


def test_an_environment_variable_overrides_the_default(monkeypatch):
    monkeypatch.setenv("QUOTE_WORKERS", "8")
    monkeypatch.setenv("QUOTE_GRACE_SECONDS", "2.5")

    config = load()

    assert (config.workers, config.grace_seconds) == (8, 2.5)


def test_a_flag_overrides_the_environment_variable(monkeypatch):
    monkeypatch.setenv("QUOTE_PORT", "6000")
    monkeypatch.setenv("QUOTE_HOST", "::1")

    config = load(["--port", "7000"])

    assert (config.port, config.host) == (7000, "::1")


def test_a_flag_set_to_the_default_value_still_beats_the_environment(monkeypatch):
    monkeypatch.setenv("QUOTE_WORKERS", "8")

    assert load(["--workers", "4"]).workers == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("No", False),
    ],
)
def test_booleans_parse_from_flag_and_environment(monkeypatch, text, expected):
    assert load(["--agentic", text]).agentic is expected

    monkeypatch.setenv("QUOTE_AGENTIC", text)
    assert load().agentic is expected


def test_a_bare_boolean_flag_means_true(monkeypatch):
    monkeypatch.setenv("QUOTE_AGENTIC", "false")

    assert load(["--agentic"]).agentic is True


@pytest.mark.parametrize(("name", "value"), [("QUOTE_WORKERS", "many"), ("QUOTE_AGENTIC", "maybe")])
def test_a_bad_environment_value_exits_naming_the_variable(monkeypatch, capsys, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(SystemExit) as exited:
        load()

    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert name in error
    assert repr(value) in error


def test_a_bad_flag_value_exits_naming_the_flag(capsys):
    with pytest.raises(SystemExit) as exited:
        load(["--port", "fifty"])

    assert exited.value.code == 2
    assert "--port" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--port", "70000"], "port"),
        (["--grace-seconds", "-1"], "grace_seconds"),
        (["--log-level", "loud"], "loud"),
        (["--event-loop", "trio"], "event_loop"),
    ],
)
def test_values_the_options_reject_exit_with_a_usage_error(capsys, argv, complaint):
    with pytest.raises(SystemExit) as exited:
        load(argv)

    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


def test_help_shows_each_options_variable_and_default(capsys):
    with pytest.raises(SystemExit) as exited:
        load(["--help"])

    assert exited.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--port INT TCP port to listen on [env QUOTE_PORT; default 50051]" in help_text
    assert "--grace-seconds FLOAT" in help_text
    assert "[env QUOTE_GRACE_SECONDS; default 10.0]" in help_text
    assert "use the 100% agentic pipeline" in help_text
    assert "[env QUOTE_AGENTIC; default False]" in help_text


def test_an_unsupported_field_type_is_refused():
    @dataclass
    class Listy:
        hosts: list = field(default_factory=list)

    with pytest.raises(TypeError, match="unsupported"):
        load_config(Listy, env_prefix="X", argv=[])
