"""Client timeouts that fire when configured.

aiohttp rounds a deadline of ``ceil_threshold`` (5 s) or more up to the next whole second
of the loop clock, so a configured ``timeout_s = 5`` fired anywhere up to 6 s. Every
outgoing request Tenang makes (deliveries, reads, callbacks, notifications) uses this.
"""

from __future__ import annotations

import math

import aiohttp


def exact_timeout(total_s: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total_s, ceil_threshold=math.inf)
