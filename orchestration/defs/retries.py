"""Which failures are retried: transient ones (a store or remote briefly unreachable, a
preempted process), never bad input, which fails the same way every time.

``PALITUNE_RETRIES`` (default 2) and ``PALITUNE_RETRY_DELAY_S`` (default 10, doubled each
time, ±50 % jitter) set the policy.
"""

import contextlib
import os
from collections.abc import Iterator

from dagster import Backoff, Failure, Jitter, RetryPolicy

from data.pipeline import PipelineError
from data.schema import DataError
from data.versioning import PushError
from models.loading import ModelError
from training.config import ConfigError

TRANSIENT = RetryPolicy(
    max_retries=int(os.environ.get("PALITUNE_RETRIES", "2")),
    delay=float(os.environ.get("PALITUNE_RETRY_DELAY_S", "10")),
    backoff=Backoff.EXPONENTIAL,
    jitter=Jitter.PLUS_MINUS,
)

BAD_INPUT = (DataError, ConfigError, ModelError, PipelineError, KeyError)


@contextlib.contextmanager
def final_on_bad_input() -> Iterator[None]:
    """Turn bad-input errors into a ``Failure`` that the retry policy does not retry."""
    try:
        yield
    except PushError:
        raise  # the DVC remote, not the data: worth another try
    except BAD_INPUT as err:
        raise Failure(description=f"{type(err).__name__}: {err}", allow_retries=False) from err
