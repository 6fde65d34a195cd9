"""Which failures are retried: transient ones (a store or remote briefly unreachable, a
preempted process), never bad input, which fails the same way every time."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from dagster import Backoff, Failure, Jitter, RetryPolicy

from data.pipeline import PipelineError
from data.schema import DataError
from training.config import ConfigError

# Two more tries, 10 s then 20 s (±50 %) later.
TRANSIENT = RetryPolicy(max_retries=2, delay=10, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)

BAD_INPUT = (DataError, ConfigError, PipelineError, KeyError)


@contextlib.contextmanager
def final_on_bad_input() -> Iterator[None]:
    """Turn bad-input errors into a ``Failure`` that the retry policy does not retry."""
    try:
        yield
    except BAD_INPUT as err:
        raise Failure(description=f"{type(err).__name__}: {err}", allow_retries=False) from err
