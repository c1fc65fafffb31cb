"""Processors: the ways a submission can be priced, registered by name.

A processor is a coroutine function taking a Submission and answering a
QuoteResult. default_registry() holds the built-in "rating" (the single-step
rating engine) and "underwriting" (the step-by-step pipeline), plus every
processor an installed distribution advertises in the "quoteflow.processors"
entry-point group, for example in its pyproject.toml::

    [project.entry-points."quoteflow.processors"]
    flood = "acme_flood.quote:price"
"""

from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Final

from quote_svc.domain import QuoteResult, Submission
from quote_svc.rating import rate
from quote_svc.underwriting import underwrite

Processor = Callable[[Submission], Awaitable[QuoteResult]]

DEFAULT_PROCESSOR: Final = "rating"
AGENTIC_PROCESSOR: Final = "underwriting"
ENTRY_POINT_GROUP: Final = "quoteflow.processors"


class ProcessorLoadError(RuntimeError):
    """An entry point in the processors group could not be loaded as a processor."""

    def __init__(self, entry_point: metadata.EntryPoint, problem: str) -> None:
        super().__init__(
            f"processor entry point {entry_point.name!r} ({entry_point.value}) {problem}"
        )
        self.entry_point_name = entry_point.name


class ProcessorRegistry:
    """Processors by name, in the order they were registered."""

    def __init__(self) -> None:
        self._processors: dict[str, Processor] = {}

    def register(self, name: str, processor: Processor) -> None:
        """Add a processor; raises ValueError for an empty or already registered name."""
        if not name:
            raise ValueError("a processor needs a name")
        if name in self._processors:
            raise ValueError(f"processor {name!r} is already registered")
        self._processors[name] = processor

    def get(self, name: str) -> Processor:
        """The processor of that name; raises KeyError naming the known ones if none."""
        try:
            return self._processors[name]
        except KeyError:
            known = ", ".join(self._processors) or "none"
            raise KeyError(f"unknown processor {name!r}; known: {known}") from None

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._processors)


async def rating_processor(submission: Submission) -> QuoteResult:
    """The single-step rating engine (rating.rate) as a processor."""
    return rate(submission, processor=DEFAULT_PROCESSOR)


def default_registry() -> ProcessorRegistry:
    """The built-in processors, then those of the entry-point group, in its order.

    Raises ProcessorLoadError naming an entry point that fails to load or loads
    something that is not callable, and ValueError for one that reuses a name.
    """
    registry = ProcessorRegistry()
    registry.register(DEFAULT_PROCESSOR, rating_processor)
    registry.register(AGENTIC_PROCESSOR, underwrite)
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        registry.register(entry_point.name, _load(entry_point))
    return registry


def _load(entry_point: metadata.EntryPoint) -> Processor:
    try:
        loaded = entry_point.load()
    except Exception as exc:
        raise ProcessorLoadError(entry_point, f"failed to load: {exc!r}") from exc
    if not callable(loaded):
        raise ProcessorLoadError(entry_point, f"is not callable: {loaded!r}")
    return loaded
