"""A second model provider, as staff would connect one: a simulator with a key of its own."""

from typing import Any

from streaming.models import Provider, ProviderModel
from streaming.simulator import SimulatorThread

#: The second provider's API key (the `second` fixture's simulator asks for it).
KEY = "sk-second-provider-key-2f9c"


def make_provider(simulator: SimulatorThread, *, name: str = "Second", **fields: Any) -> Provider:
    """A provider at ``simulator`` with ``KEY``, offering its model `sim-large` as Large."""
    provider = Provider(name=name, base_url=simulator.base_url, **fields)
    provider.set_api_key(KEY)
    provider.save()
    ProviderModel.objects.create(provider=provider, model_id="sim-large", display_name="Large")
    return provider
