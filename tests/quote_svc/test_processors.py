from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import pytest

from quote_svc import processors
from quote_svc.domain import QuoteResult, Submission
from quote_svc.processors import (
    AGENTIC_PROCESSOR,
    DEFAULT_PROCESSOR,
    ENTRY_POINT_GROUP,
    ProcessorLoadError,
    ProcessorRegistry,
    default_registry,
    rating_processor,
)
from quote_svc.rating import rate

SUBMISSION = Submission("Ada Lovelace", "12 Main St, Springfield, IL 62701", 250_000)


async def flat_fee(submission: Submission) -> QuoteResult:
    return QuoteResult(50_000, 0, 0, (), (), "flat-fee", 0, "")


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    loads: Callable[[], object]

    def load(self) -> object:
        return self.loads()


@pytest.fixture
def advertised(monkeypatch):
    """Replace the installed entry points with the ones a test lists."""
    entry_points: list[object] = []
    groups: list[str] = []

    def fake_entry_points(*, group: str) -> list[object]:
        groups.append(group)
        return entry_points

    monkeypatch.setattr(metadata, "entry_points", fake_entry_points)
    yield entry_points
    assert groups == [ENTRY_POINT_GROUP]


def test_names():
    assert (DEFAULT_PROCESSOR, AGENTIC_PROCESSOR, ENTRY_POINT_GROUP) == (
        "rating",
        "underwriting",
        "quoteflow.processors",
    )


def test_register_and_get():
    registry = ProcessorRegistry()
    registry.register("flat-fee", flat_fee)

    assert registry.get("flat-fee") is flat_fee
    assert registry.names() == ("flat-fee",)


def test_names_keep_registration_order():
    registry = ProcessorRegistry()
    for name in ("zeta", "alpha", "mid"):
        registry.register(name, flat_fee)

    assert registry.names() == ("zeta", "alpha", "mid")


def test_a_duplicate_name_is_refused_and_keeps_the_first():
    registry = ProcessorRegistry()
    registry.register("flat-fee", flat_fee)

    with pytest.raises(ValueError, match="'flat-fee' is already registered"):
        registry.register("flat-fee", processors.rating_processor)
    assert registry.get("flat-fee") is flat_fee


def test_an_empty_name_is_refused():
    with pytest.raises(ValueError, match="needs a name"):
        ProcessorRegistry().register("", flat_fee)


def test_an_unknown_name_lists_the_known_ones():
    registry = ProcessorRegistry()
    registry.register("rating", flat_fee)
    registry.register("flat-fee", flat_fee)

    with pytest.raises(KeyError, match="unknown processor 'nope'; known: rating, flat-fee"):
        registry.get("nope")


def test_an_unknown_name_in_an_empty_registry():
    with pytest.raises(KeyError, match="known: none"):
        ProcessorRegistry().get("rating")


async def test_the_default_registry_has_rating_and_underwriting(advertised):
    registry = default_registry()

    assert registry.names() == (DEFAULT_PROCESSOR, AGENTIC_PROCESSOR)
    rated = await registry.get(DEFAULT_PROCESSOR)(SUBMISSION)
    underwritten = await registry.get(AGENTIC_PROCESSOR)(SUBMISSION)
    assert rated == rate(SUBMISSION)
    assert rated.processor == "rating"
    assert underwritten.processor == "underwriting"
    assert len(underwritten.steps) == 4
    assert underwritten.annual_premium_cents == rated.annual_premium_cents


async def test_advertised_processors_are_registered_after_the_built_in_ones(advertised):
    advertised.append(FakeEntryPoint("flat-fee", "acme.quote:flat_fee", lambda: flat_fee))

    registry = default_registry()

    assert registry.names() == ("rating", "underwriting", "flat-fee")
    assert (await registry.get("flat-fee")(SUBMISSION)).annual_premium_cents == 50_000


def test_an_entry_point_that_fails_to_load_is_named(advertised):
    advertised.append(
        metadata.EntryPoint(
            name="broken", value="quoteflow_missing_module:price", group=ENTRY_POINT_GROUP
        )
    )

    with pytest.raises(ProcessorLoadError) as raised:
        default_registry()

    assert raised.value.entry_point_name == "broken"
    assert "'broken' (quoteflow_missing_module:price) failed to load" in str(raised.value)
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)


def test_an_entry_point_that_raises_while_loading_is_named(advertised):
    def explode() -> object:
        raise RuntimeError("bad config")

    advertised.append(FakeEntryPoint("exploding", "acme.quote:price", explode))

    with pytest.raises(ProcessorLoadError, match=r"'exploding'.*bad config"):
        default_registry()


def test_an_entry_point_that_is_not_callable_is_named(advertised):
    advertised.append(FakeEntryPoint("constant", "acme.quote:RATE", lambda: 42))

    with pytest.raises(ProcessorLoadError, match=r"'constant' .* is not callable: 42"):
        default_registry()


def test_an_entry_point_cannot_replace_a_built_in_processor(advertised):
    advertised.append(FakeEntryPoint("rating", "acme.quote:flat_fee", lambda: flat_fee))

    with pytest.raises(ValueError, match="'rating' is already registered"):
        default_registry()


def test_a_name_with_a_colon_is_an_import_path():
    registry = ProcessorRegistry()
    loaded = registry.get("quote_svc.processors:rating_processor")
    assert loaded is rating_processor
    assert "quote_svc.processors:rating_processor" in registry.names()
    with pytest.raises(ProcessorLoadError, match="'no_such_module:price' failed to load"):
        registry.get("no_such_module:price")
    with pytest.raises(ProcessorLoadError, match="is not callable"):
        registry.get("quote_svc.processors:DEFAULT_PROCESSOR")
