"""Fixtures of the simulator's tests (test_simulator.py, test_simulator_parts.py)."""

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from streaming.simulator import Simulator


# Named so as not to shadow conftest's session `simulator` or pytest-django's `client`.
@pytest_asyncio.fixture
async def server() -> AsyncIterator[Simulator]:
    """A fresh simulator per test: no delay, 20-token answers."""
    async with Simulator(rate=0, tokens=20) as sim:
        yield sim


@pytest_asyncio.fixture
async def http(server: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """A pooled client on the simulator's base URL."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as client:
        yield client
