"""The whole of a company's rollout in real Chromium, against a real OpenID Connect provider
(tests/support/oidc_provider): its people sign in with their provider accounts, see the
models their groups allow under their groups' limits, and share a conversation with a
colleague by link, who reads it signed in the same way and goes on in a chat of their own."""

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import Page, expect

from streaming.groups import GroupAccess
from streaming.models import ProviderModel
from streaming.simulator import SimulatorThread
from tests.support.browser import (
    chromium,
    desktop_context,
    finished_answer,
    orm,
    send,
    wait_until_connected,
)
from tests.support.identity import IdentityProvider, identity_provider, sign_in_at_provider
from tests.support.providers import make_provider
from tests.support.servers import DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = {
    "ada": {"email": "ada@example.com", "given_name": "Ada", "groups": ["engineering"]},
    "bob": {"email": "bob@example.com", "given_name": "Bob", "groups": ["sales"]},
}


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[IdentityProvider]:
    with identity_provider(tmp_path / "idp", PEOPLE) as running:
        yield running
        print(f"--- provider log ---\n{running.log()}")


def picker_models(page: Page) -> list[str]:
    return page.locator("#chat-model option").all_inner_texts()


def test_people_sign_in_use_their_groups_models_and_limits_and_share_by_link(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    second: SimulatorThread,
    provider: IdentityProvider,
) -> None:
    # Staff's setup: a second provider with two models; engineering may use its Large,
    # sales the default (simulated) model, one message a minute.
    def setup() -> None:
        large = ProviderModel.objects.get(provider=make_provider(second), model_id="sim-large")
        ProviderModel.objects.create(provider=large.provider, model_id="sim-small")
        engineering = GroupAccess.objects.create(
            group=Group.objects.create(name="engineering"), from_provider=True
        )
        engineering.provider_models.add(large)
        GroupAccess.objects.create(
            group=Group.objects.create(name="sales"),
            from_provider=True,
            default_provider=True,
            messages_per_minute=1,
        )

    orm(setup)
    port = urlsplit(simulator.base_url).port
    (site,) = live_servers(
        1,
        OPENAI_BASE_URL="",
        SIMULATOR_PORT=str(port),
        MODEL_ACCESS="groups",
        **provider.chatsite_env(),
    )
    with chromium() as browser:
        ada = desktop_context(browser, site).new_page()
        sign_in_at_provider(ada, "ada")
        expect(ada.get_by_role("heading", name="Conversations")).to_be_visible()
        ada.get_by_role("button", name="New chat").click()
        expect(ada.locator("#chat")).to_have_attribute("data-connection", "draft")
        # Engineering's one model, and it is the new chat's.
        assert picker_models(ada) == ["Large"]
        send(ada, "Draft the launch plan sim:tokens=6")
        finished_answer(ada, "complete")
        wait_until_connected(ada)
        assert second.requests, "the answer came from the group's provider"

        ada.get_by_text("Export").click()
        ada.get_by_role("link", name="Share link…").click()
        ada.get_by_role("button", name="Create link").click()
        link = urlsplit(ada.get_by_label("Your link").input_value()).path

        # A colleague in another browser: signed in through the provider, the link opens.
        bob = desktop_context(browser, site).new_page()
        bob.goto(link)
        expect(bob.get_by_role("button", name="Sign in with Test Company")).to_be_visible()
        sign_in_at_provider(bob, "bob")
        expect(bob.get_by_role("heading", name="Conversations")).to_be_visible()
        bob.goto(link)
        expect(bob.locator(".message--user .message-content")).to_have_text(
            "Draft the launch plan sim:tokens=6"
        )
        bob.get_by_role("button", name="Continue in a new chat").click()
        wait_until_connected(bob)
        # Sales' model only, not engineering's: the copy goes on with the default model.
        assert picker_models(bob) == ["simulated"]
        send(bob, "Now for sales sim:tokens=3 sim:rate=100")
        expect(bob.locator(".message--assistant")).to_have_count(2)  # the copy's, and this
        finished_answer(bob, "complete")
        # Sales' limit: one message a minute.
        send(bob, "And again sim:tokens=3")
        expect(bob.locator("#composer-alert")).to_contain_text("Messages are limited to 1 a minute")
