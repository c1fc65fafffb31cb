"""A figure: one measured value, the reference it is a ratio against, and its target.

bench/results.json is a list of Figure.as_json() objects. `reference` is the
value of the reference measurement (same unit, same run, same client), and
`ratio` is value / reference. `target` says what is asked, on the value or on
the ratio; `met` is whether it holds (null when there is no target or no value).
"""

from dataclasses import dataclass, field
from typing import Any, Literal

Subject = Literal["value", "ratio"]
Comparison = Literal[">=", "<="]


@dataclass(frozen=True)
class Target:
    on: Subject
    op: Comparison
    threshold: float

    def holds(self, value: float | None, ratio: float | None) -> bool | None:
        subject = value if self.on == "value" else ratio
        if subject is None:
            return None
        return subject >= self.threshold if self.op == ">=" else subject <= self.threshold

    def describe(self, unit: str) -> str:
        if self.on == "ratio":
            return f"ratio {self.op} {self.threshold:g}"
        return f"{self.op} {self.threshold:g} {unit}"


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    reference: float | None = None
    #: What the reference is, in words (the no-op server, arq, ...).
    reference_label: str = ""
    target: Target | None = None
    note: str = ""
    #: What the run used: concurrency, counts, store ... (differs in --smoke).
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.holds(self.value, self.ratio)

    def as_json(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "name": self.name,
            "value": _rounded(self.value),
            "unit": self.unit,
            "reference": _rounded(self.reference),
            "reference_label": self.reference_label,
            "ratio": None if ratio is None else round(ratio, 4),
            "target": None
            if self.target is None
            else {"on": self.target.on, "op": self.target.op, "threshold": self.target.threshold},
            "met": self.met,
            "note": self.note,
            "params": self.params,
        }


def _rounded(number: float | None) -> float | None:
    return None if number is None else round(number, 4)
