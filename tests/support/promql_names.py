"""The metric and label names a PromQL expression refers to, for the tests that
check the dashboard and the alert rules against the metrics the services expose.

A tokenizer, not a parser: enough to tell a metric name from a function, an
aggregation, a keyword or a label, which is all the checks need. What it cannot
read fails loudly (an unknown character, an unclosed bracket, a selector with no
metric name), so a query is never passed unread. Grafana's template variables
($name, ${name}) are taken as opaque values: in the dashboard they stand only
for durations and label values."""

import ast
import re
from dataclasses import dataclass

# A number's trailing letters are a duration's units: 5m, 1h30m.
_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$\w+)
  | (?P<number>(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\w*)
  | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<matcher>=~|!~|!=)
  | (?P<punct>==|<=|>=|[-+*/%^<>=(),@:{}\[\]])
    """,
    re.VERBOSE,
)
_PAIRS = {"(": ")", "[": "]", "{": "}"}
_MATCH_OPERATORS = frozenset({"=", "!=", "=~", "!~"})
#: Keywords followed by a parenthesised list of label names.
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
#: Keywords that are neither metrics nor labels; inf and nan are numbers.
_OTHER_KEYWORDS = frozenset({"offset", "bool", "and", "or", "unless", "atan2", "inf", "nan"})
#: Aggregations may be followed by `by (...)` before their `(`, unlike functions.
_AGGREGATIONS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    }
)

Token = tuple[str, str]
#: (label, operator, value): job=~"$job" is ("job", "=~", "$job").
Matcher = tuple[str, str, str]


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...]


@dataclass(frozen=True)
class Names:
    selectors: tuple[Selector, ...]
    #: The labels of by, without, on, ignoring, group_left and group_right.
    grouping: frozenset[str]

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(s.metric for s in self.selectors)

    @property
    def labels(self) -> frozenset[str]:
        matched = {label for s in self.selectors for label, _, _ in s.matchers}
        return self.grouping | matched

    def values(self, label: str, operator: str | None = None) -> tuple[str, ...]:
        """The values label is matched against, with operator if given."""
        return tuple(
            value
            for s in self.selectors
            for name, op, value in s.matchers
            if name == label and operator in (None, op)
        )


def _tokens(expr: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot read {expr[position:]!r} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group()))
        position = match.end()
    return tokens


def _check_balanced(tokens: list[Token], expr: str) -> None:
    # An unclosed bracket would otherwise hide the rest of the query from the scan.
    opened: list[str] = []
    for kind, text in tokens:
        if kind != "punct":
            continue
        if text in _PAIRS:
            opened.append(_PAIRS[text])
        elif text in _PAIRS.values() and (not opened or opened.pop() != text):
            raise ValueError(f"unbalanced {text!r} in {expr!r}")
    if opened:
        raise ValueError(f"{opened[-1]!r} missing in {expr!r}")


def _closing(tokens: list[Token], start: int, close: str) -> int:
    """The index of the first `close` token after start (balanced, so there is one)."""
    return next(i for i in range(start, len(tokens)) if tokens[i] == ("punct", close))


def _unquoted(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    value: str = ast.literal_eval(text)
    return value


def _matchers(inside: list[Token], expr: str) -> tuple[Matcher, ...]:
    """The label matchers between a selector's braces: label op "value", ..."""
    if not inside:
        return ()
    chunks: list[list[Token]] = [[]]
    for token in inside:
        if token == ("punct", ","):
            chunks.append([])
        else:
            chunks[-1].append(token)
    if len(chunks) > 1 and not chunks[-1]:
        chunks.pop()  # a trailing comma
    matchers: list[Matcher] = []
    for chunk in chunks:
        match chunk:
            case [("name", label), (_, operator), ("string", value)] if (
                operator in _MATCH_OPERATORS
            ):
                matchers.append((label, operator, _unquoted(value)))
            case _:
                raise ValueError(f"cannot read the matcher {chunk} in {expr!r}")
    return tuple(matchers)


def names(expr: str) -> Names:
    """The selectors (metric names and their matchers) and the grouping labels
    that expr refers to."""
    tokens = _tokens(expr)
    _check_balanced(tokens, expr)
    selectors: list[Selector] = []
    grouping: set[str] = set()
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if (kind, text) == ("punct", "{"):
            raise ValueError(f"a selector without a metric name cannot be checked: {expr!r}")
        if (kind, text) == ("punct", "["):
            # A range or subquery: durations and variables only.
            index = _closing(tokens, index, "]")
        elif kind == "name":
            word = text.lower()
            if word in _LABEL_LIST_KEYWORDS and following == ("punct", "("):
                end = _closing(tokens, index, ")")
                grouping.update(t for k, t in tokens[index + 2 : end] if k == "name")
                index = end
            elif word in _LABEL_LIST_KEYWORDS or word in _OTHER_KEYWORDS:
                pass
            elif word in _AGGREGATIONS or following == ("punct", "("):
                pass  # an aggregation or a function
            elif following == ("punct", "{"):
                end = _closing(tokens, index + 1, "}")
                selectors.append(Selector(text, _matchers(tokens[index + 2 : end], expr)))
                index = end
            else:
                selectors.append(Selector(text, ()))
        index += 1
    return Names(tuple(selectors), frozenset(grouping))
