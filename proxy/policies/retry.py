"""Retry schedule: exponential backoff computed with tenacity's wait strategies.

The delay is a pure function of (attempt, policy, rng) so the schedule can be persisted
as ``next_attempt_at`` and tested deterministically; nothing sleeps in memory.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from tenacity import RetryCallState, wait_exponential

Jitter = Literal["full", "none"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 12
    initial_delay_s: float = 2.0
    max_delay_s: float = 300.0
    max_age_s: float = 86_400.0
    jitter: Jitter = "full"
    # A server-sent Retry-After is honoured, but never beyond this many seconds.
    max_retry_after_s: float = 3_600.0
    # A request refused this many times in a row for a reason of its own (its user_key;
    # refused while others get through) ends failed instead of using up its attempts.
    max_own_refusals: int = 3


def capped_exponential_s(attempt: int, initial_s: float, max_s: float) -> float:
    """``initial_s`` doubling with each failed attempt (1-based), capped at ``max_s``:
    tenacity's ``wait_exponential``, asked outside a retry loop. The one place Tenang
    fakes the ``RetryCallState`` it needs (the relay's and the callbacks' schedules)."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    delay: float = wait_exponential(multiplier=initial_s, min=initial_s, max=max_s)(state)
    return delay


def backoff_delay_s(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    "full" jitter draws uniformly from [0, capped exponential] (AWS's full jitter), with
    a floor of a tenth of the initial delay so a backlog never spins hot.
    """
    ceiling = capped_exponential_s(attempt, policy.initial_delay_s, policy.max_delay_s)
    if policy.jitter == "none":
        return ceiling
    return max(policy.initial_delay_s / 10, rng.uniform(0, ceiling))
