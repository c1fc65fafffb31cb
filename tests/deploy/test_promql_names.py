"""support.promql_names: metric names told from functions, aggregations,
keywords, labels, strings, durations and numbers."""

import pytest
from support.promql_names import Selector, names


def test_both_sides_of_a_binary_operation_with_a_label_list() -> None:
    found = names("rate(a_total[5m]) / ignoring(x) b")
    assert found.metrics == {"a_total", "b"}
    assert found.labels == {"x"}


def test_aggregations_keywords_and_functions_are_not_metrics() -> None:
    found = names(
        'histogram_quantile(0.99, sum by (le, grpc_method) (rate(h_bucket{job=~"$job"}[5m])))'
    )
    assert found.metrics == {"h_bucket"}
    assert found.labels == {"le", "grpc_method", "job"}


def test_a_grouping_after_the_aggregated_expression() -> None:
    found = names("sum(rate(c_total[1h30m])) without (instance) > bool 0.5")
    assert found.metrics == {"c_total"}
    assert found.labels == {"instance"}


def test_each_selector_keeps_its_matchers_with_the_values_unquoted() -> None:
    found = names('x{grpc_code!~"OK|NotFound", queue!="a b", status=\'pending\',} / y{}')
    assert found.selectors == (
        Selector("x", (("grpc_code", "!~", "OK|NotFound"), ("queue", "!=", "a b"),
                       ("status", "=", "pending"))),
        Selector("y", ()),
    )  # fmt: skip
    assert found.labels == {"grpc_code", "queue", "status"}
    assert found.values("grpc_code") == ("OK|NotFound",)
    assert found.values("queue", "=") == ()


def test_set_operators_offsets_matching_and_grafana_variables() -> None:
    expr = (
        "(up == 0 and on (job, instance) max_over_time(ready[${__range}] offset 1d))"
        " or on (job) group_left (extra) info unless deriv(age[$__rate_interval]) < -1e3"
    )
    found = names(expr)
    assert found.metrics == {"up", "ready", "info", "age"}
    assert found.labels == {"job", "instance", "extra"}


def test_strings_given_to_functions_name_nothing() -> None:
    found = names('label_replace(m, "dst", "$1", "src_label", "(.*)") # a comment names q')
    assert found.metrics == {"m"}
    assert found.labels == frozenset()


def test_aggregation_names_are_case_insensitive() -> None:
    assert names("SUM BY (job) (v)").metrics == {"v"}


@pytest.mark.parametrize(
    "expr",
    [
        "rate(x[5m]",
        "x{a=~'b'",
        "sum(x]",
        "x ; y",
        # Nothing to check a selector by.
        '{__name__="x"}',
        # Matchers it cannot read: a bare value, a missing operator, an empty one.
        "x{a=b}",
        'x{a "b"}',
        'x{a="b",,c="d"}',
    ],
)
def test_what_it_cannot_read_fails(expr: str) -> None:
    with pytest.raises(ValueError):
        names(expr)
