"""Groups decide models and limits (streaming/groups.py): with MODEL_ACCESS=groups the picker
offers a user only what their groups allow, a pick or a message to another model is refused
before anything is written; and of a user's groups the most generous limits apply, over
the site's and under the user's own. Over the real socket (WebsocketCommunicator on the
ASGI application), with the simulator as the models' API."""

import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group, User
from django.test import AsyncClient, Client, override_settings

from streaming.groups import GroupAccess
from streaming.models import Conversation, Message, ProviderModel, Quota
from streaming.services import model_access, providers, quotas
from streaming.simulator import SimulatorThread
from tests.support.frames import receive_until, user_message
from tests.support.providers import make_provider

pytestmark = pytest.mark.django_db(transaction=True)

BY_GROUPS = override_settings(MODEL_ACCESS="groups")


def rules(user: User, name: str, **fields: Any) -> GroupAccess:
    """A group of ``user``'s with chatsite's rules ``fields``."""
    group = Group.objects.create(name=name)
    user.groups.add(group)
    return GroupAccess.objects.create(group=group, **fields)


def offered(owner: User) -> list[tuple[int | None, str]]:
    return [
        (group["provider_id"], entry["model"])
        for group in providers.picker(owner.pk)
        for entry in group["models"]
    ]


@pytest.fixture
def two_models(second: SimulatorThread) -> tuple[ProviderModel, ProviderModel]:
    """A provider with two models: Large (sim-large) and Small (sim-small)."""
    provider = make_provider(second)
    small = ProviderModel.objects.create(provider=provider, model_id="sim-small")
    return provider.models.get(model_id="sim-large"), small


def test_the_picker_offers_what_any_of_the_users_groups_allows(
    user: User,
    other_user: User,
    two_models: tuple[ProviderModel, ProviderModel],
    django_assert_num_queries: Any,
) -> None:
    large, small = two_models
    provider_id = large.provider_id
    everything = [(None, "simulated"), (provider_id, "sim-large"), (provider_id, "sim-small")]
    assert offered(user) == everything  # MODEL_ACCESS=everyone: the default
    with BY_GROUPS:
        assert offered(user) == []  # in no group: nothing
        rules(user, "writers").provider_models.add(small)
        assert offered(user) == [(provider_id, "sim-small")]
        rules(user, "engineers", default_provider=True)
        assert offered(user) == [(None, "simulated"), (provider_id, "sim-small")]
        rules(other_user, "research").providers.add(large.provider)
        assert offered(other_user) == everything[1:]
        # A superuser may use every model, in no group at all.
        root = User.objects.create_superuser("root", password="x")
        assert offered(root) == everything
        # What a user may use is read in one query, however many groups say it.
        with django_assert_num_queries(1):
            model_access.access_of(other_user.pk)


@BY_GROUPS
def test_a_new_conversation_starts_on_a_model_the_user_may_use(
    user: User, two_models: tuple[ProviderModel, ProviderModel]
) -> None:
    _, small = two_models
    rules(user, "writers").provider_models.add(small)
    client = Client()
    client.force_login(user)
    page = client.get("/c/new/").content.decode()
    # Only the allowed model is in the picker, and it is the one chosen.
    assert "sim-small" in page
    assert "sim-large" not in page
    assert ">simulated<" not in page


@BY_GROUPS
async def test_picking_a_model_the_groups_do_not_allow_is_refused(
    connect: Any,
    conversation: Conversation,
    user: User,
    two_models: tuple[ProviderModel, ProviderModel],
) -> None:
    large, small = two_models
    await sync_to_async(lambda: rules(user, "writers").provider_models.add(small))()
    tab = await connect(conversation.id, user)
    await tab.send_json_to(
        {"type": "set_model", "provider_id": large.provider_id, "model": "sim-large"}
    )
    refused = (await receive_until(tab, "error"))[-1]
    await tab.send_json_to({"type": "set_model", "provider_id": None, "model": "simulated"})
    refused_default = (await receive_until(tab, "error"))[-1]
    await tab.disconnect()
    assert refused["code"] == refused_default["code"] == "unknown_model"
    await conversation.arefresh_from_db()
    assert (conversation.provider_id, conversation.model) == (None, "")


async def test_a_message_to_a_model_the_user_lost_is_refused_before_anything_is_written(
    connect: Any,
    conversation: Conversation,
    user: User,
    two_models: tuple[ProviderModel, ProviderModel],
    second: SimulatorThread,
) -> None:
    large, _ = two_models
    writers = await sync_to_async(rules)(user, "writers")
    await sync_to_async(writers.provider_models.add)(large)
    await Conversation.objects.filter(pk=conversation.pk).aupdate(
        provider_id=large.provider_id, model="sim-large"
    )
    with BY_GROUPS:
        tab = await connect(conversation.id, user)
        assert tab.snapshot["model_choice"]["available"] is True
        # Staff take the model from the group while the page is open.
        await sync_to_async(writers.provider_models.remove)(large)
        await tab.send_json_to(user_message("hello"))
        error = (await receive_until(tab, "error"))[-1]
        await tab.send_json_to({"type": "ping"})
        pong = (await receive_until(tab, "pong"))[-1]
        await tab.disconnect()

    assert error["code"] == "model_unavailable"
    assert "groups do not allow" in error["message"]
    assert "Large" in error["message"]
    assert pong["model_choice"]["available"] is False
    assert await Message.objects.filter(conversation=conversation).acount() == 0
    assert second.requests == []


@BY_GROUPS
async def test_a_first_message_to_a_model_the_groups_do_not_allow_makes_nothing(
    user: User, two_models: tuple[ProviderModel, ProviderModel], second: SimulatorThread
) -> None:
    large, small = two_models
    await sync_to_async(lambda: rules(user, "writers").provider_models.add(small))()
    client = AsyncClient()
    await client.aforce_login(user)
    sent = {"content": "hello", "client_id": str(uuid.uuid4())}
    refused = await client.post(
        "/c/new/", {**sent, "provider_id": str(large.provider_id), "model": "sim-large"}
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "unknown_model"
    assert await Conversation.objects.filter(owner=user).acount() == 0
    assert second.requests == []


def test_the_most_generous_of_the_users_groups_applies_over_the_site_defaults(
    user: User,
) -> None:
    with override_settings(
        LIMIT_ANSWERS_PER_USER=3,
        LIMIT_MESSAGES_PER_MINUTE=20,
        DAILY_TOKEN_BUDGET=1000,
        STORAGE_QUOTA_CHARS=5000,
    ):
        site = quotas.standing(user.pk)
        assert (site.answers_at_once, site.messages_per_minute) == (3, 20)
        assert (site.daily_token_budget, site.storage_chars) == (1000, 5000)
        # A group may be stricter than the site: its figure replaces the site's.
        rules(user, "interns", answers_at_once=1, messages_per_minute=2, daily_token_budget=10)
        strict = quotas.standing(user.pk)
        assert (strict.answers_at_once, strict.messages_per_minute) == (1, 2)
        assert (strict.daily_token_budget, strict.storage_chars) == (10, 5000)
        # Of two groups, the more generous figure, each limit on its own.
        rules(user, "research", answers_at_once=5, daily_token_budget=0, storage_chars=90)
        both = quotas.standing(user.pk)
        assert (both.answers_at_once, both.messages_per_minute) == (5, 2)
        # 0 is no budget: more generous than any figure.
        assert (both.daily_token_budget, both.storage_chars) == (0, 90)
        # What staff set for the user comes before every group.
        Quota.objects.create(user=user, daily_token_budget=50, storage_chars=0)
        own = quotas.standing(user.pk)
        assert (own.daily_token_budget, own.storage_chars) == (50, 0)


async def test_a_groups_limit_holds_over_the_socket(
    connect: Any, conversation: Conversation, user: User
) -> None:
    await sync_to_async(rules)(user, "interns", messages_per_minute=1)
    # A group more generous in another limit does not lift this one.
    await sync_to_async(rules)(user, "research", answers_at_once=9)
    tab = await connect(conversation.id, user)
    await tab.send_json_to(user_message("one"))
    await receive_until(tab, "done")
    await tab.send_json_to(user_message("two"))
    error = (await receive_until(tab, "error"))[-1]
    await tab.disconnect()
    assert error["code"] == "rate_limited"
    assert "1 a minute" in error["message"]
    # Only the first question and its answer were written.
    assert await Message.objects.filter(conversation=conversation).acount() == 2


def test_staff_set_a_groups_rules_on_its_admin_page(
    admin_client: Client, two_models: tuple[ProviderModel, ProviderModel]
) -> None:
    _, small = two_models
    page = admin_client.get("/admin/auth/group/add/")
    assert "chatsite rules" in page.content.decode()
    response = admin_client.post(
        "/admin/auth/group/add/",
        {
            "name": "writers",
            "access-TOTAL_FORMS": "1",
            "access-INITIAL_FORMS": "0",
            "access-MIN_NUM_FORMS": "0",
            "access-MAX_NUM_FORMS": "1",
            "access-0-from_provider": "on",
            "access-0-provider_models": [str(small.pk)],
            "access-0-messages_per_minute": "5",
            "access-0-daily_token_budget": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    rules = GroupAccess.objects.get(group__name="writers")
    assert rules.from_provider
    assert list(rules.provider_models.all()) == [small]
    assert (rules.messages_per_minute, rules.daily_token_budget, rules.answers_at_once) == (
        5,
        0,
        None,
    )
    # A count of 0 would stop the group's members altogether: refused, saying so.
    refused = admin_client.post(
        f"/admin/auth/group/{rules.group_id}/change/",
        {
            "name": "writers",
            "access-TOTAL_FORMS": "1",
            "access-INITIAL_FORMS": "1",
            "access-MIN_NUM_FORMS": "0",
            "access-MAX_NUM_FORMS": "1",
            "access-0-group": str(rules.group_id),
            "access-0-answers_at_once": "0",
        },
    )
    assert refused.status_code == 200
    assert "greater than or equal to 1" in refused.content.decode()
    rules.refresh_from_db()
    assert rules.answers_at_once is None
