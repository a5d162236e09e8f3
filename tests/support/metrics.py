"""A daphne process's /metrics, read as Prometheus reads it."""

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import DaphneServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(server: DaphneServer) -> Samples:
    """Every sample /metrics shows now, parsed as Prometheus parses it."""
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.get(f"{server.url}/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when it is not shown (a label set never counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)
