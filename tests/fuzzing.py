"""Hypothesis settings shared by the fuzz tests: `@fuzz(n)` runs n examples, with no deadline (a model call's
time varies on a shared machine) and no health check on function-scoped fixtures, slow or large data."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
