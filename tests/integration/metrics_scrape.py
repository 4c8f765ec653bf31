"""Reading Tenang's /metrics in tests: every sample by name and labels."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from proxy.app import Tenang

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: aiohttp.ClientSession, tenang: Tenang) -> Samples:
    async with http.get(f"{tenang.admin_url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def v(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]
