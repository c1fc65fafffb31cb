"""Processors: the ways a submission can be priced, registered by name.

A processor is a coroutine function taking a Submission and answering a
QuoteResult. default_registry() holds the built-in "rating" (the single-step
rating engine) and "underwriting" (the step-by-step pipeline), plus every
processor an installed distribution advertises in the "quoteflow.processors"
entry-point group, for example in its pyproject.toml::

    [project.entry-points."quoteflow.processors"]
    flood = "acme_flood.quote:price"
"""

import pkgutil
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
    """An entry point of the processors group, or an import path, could not be
    loaded as a processor."""

    def __init__(self, source: metadata.EntryPoint | str, problem: str) -> None:
        if isinstance(source, str):
            super().__init__(f"processor {source!r} {problem}")
            self.entry_point_name = source
        else:
            super().__init__(f"processor entry point {source.name!r} ({source.value}) {problem}")
            self.entry_point_name = source.name


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
        """The processor registered under name or, for a name with a colon, the
        callable at that import path ("package.module:function"), so a deployment
        can use its own processor without packaging it. Raises KeyError naming the
        known ones if there is none, and ProcessorLoadError if the path fails."""
        processor = self._processors.get(name)
        if processor is not None:
            return processor
        if ":" in name:
            return self._import(name)
        known = ", ".join(self._processors) or "none"
        raise KeyError(f"unknown processor {name!r}; known: {known}")

    def _import(self, path: str) -> Processor:
        try:
            loaded = pkgutil.resolve_name(path)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ProcessorLoadError(path, f"failed to load: {exc!r}") from exc
        if not callable(loaded):
            raise ProcessorLoadError(path, f"is not callable: {loaded!r}")
        # Only its call can tell whether it prices a Submission; the queue
        # turns a failing call into a failed attempt.
        processor: Processor = loaded
        self._processors[path] = processor
        return processor

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
    processor: Processor = loaded
    return processor
