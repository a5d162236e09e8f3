"""Providers meet the user's pages: a default model on the settings page, usage and admin
totals by provider, and export files that name the provider without letting an import
choose a model."""

import json
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from streaming.models import Conversation, Message, Provider, ProviderModel, UserSettings
from streaming.services import exports, imports, usage
from streaming.services.conversations import do_create_conversation
from tests.support.users import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider() -> Provider:
    # Never asked here: nothing in this file streams an answer.
    provider = Provider.objects.create(name="Lab", base_url="http://127.0.0.1:9/v1")
    ProviderModel.objects.create(provider=provider, model_id="llama3:8b", display_name="Llama")
    # A second model, so a count of models joined in would multiply the token sums.
    ProviderModel.objects.create(provider=provider, model_id="qwen", enabled=False)
    return provider


def test_the_settings_page_offers_the_pickers_models(logged_in: Client, provider: Provider) -> None:
    body = logged_in.get("/settings/").content.decode()

    assert '<optgroup label="Lab">' in body
    assert f'value="{provider.pk}:llama3:8b"' in body
    # The site's default provider is a group as the chat header's picker shows it, chosen
    # until another is saved.
    assert f'<optgroup label="{settings.OPENAI_PROVIDER_NAME}">' in body
    assert f'value=":{settings.OPENAI_MODEL}"' in body
    assert f'data-model="{settings.OPENAI_MODEL}" selected>' in body
    assert 'class="model-picker"' in body


def test_the_site_default_picked_as_the_header_offers_it_is_saved_as_the_default(
    logged_in: Client, user: User, provider: Provider
) -> None:
    UserSettings.objects.create(user=user, default_provider=provider, default_model="llama3:8b")

    response = logged_in.post(
        "/settings/",
        {"default_system_prompt": "", "default_model_choice": f":{settings.OPENAI_MODEL}"},
    )

    assert response.status_code == 302
    saved = UserSettings.objects.get(user=user)
    assert (saved.default_provider_id, saved.default_model) == (None, "")


def test_a_default_model_is_saved_and_new_conversations_start_with_it(
    logged_in: Client, user: User, provider: Provider
) -> None:
    response = logged_in.post(
        "/settings/",
        {"default_system_prompt": "", "default_model_choice": f"{provider.pk}:llama3:8b"},
    )

    assert response.status_code == 302
    saved = UserSettings.objects.get(user=user)
    assert (saved.default_provider_id, saved.default_model) == (provider.pk, "llama3:8b")
    conversation = do_create_conversation(user)
    assert (conversation.provider_id, conversation.model) == (provider.pk, "llama3:8b")
    page = logged_in.get("/settings/").content.decode()
    assert f'data-provider-id="{provider.pk}" data-model="llama3:8b" selected>' in page


def test_a_model_not_offered_is_refused_and_nothing_saved(
    logged_in: Client, user: User, provider: Provider
) -> None:
    response = logged_in.post(
        "/settings/",
        {"default_system_prompt": "Be brief.", "default_model_choice": f"{provider.pk}:gpt-5"},
    )

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not UserSettings.objects.filter(user=user).exists()


def test_a_default_model_no_longer_offered_gives_way_to_the_sites(
    logged_in: Client, user: User, provider: Provider
) -> None:
    UserSettings.objects.create(user=user, default_provider=provider, default_model="llama3:8b")
    ProviderModel.objects.filter(provider=provider).update(enabled=False)

    conversation = do_create_conversation(user)

    assert (conversation.provider_id, conversation.model) == (None, "")
    # The page shows the stale choice as such rather than quietly picking another.
    assert "llama3:8b (no longer offered)" in logged_in.get("/settings/").content.decode()


def test_the_site_default_stays_when_chosen_and_another_users_choice_is_not_taken(
    logged_in: Client, user: User, other_user: User, provider: Provider
) -> None:
    UserSettings.objects.create(
        user=other_user, default_provider=provider, default_model="llama3:8b"
    )
    logged_in.post("/settings/", {"default_system_prompt": "", "default_model_choice": ""})

    conversation = do_create_conversation(user)

    assert UserSettings.objects.get(user=user).default_provider_id is None
    assert (conversation.provider_id, conversation.model) == (None, "")


def answered(conversation: Conversation, provider: Provider | None, name: str, tokens: int) -> None:
    question = Message.objects.create(conversation=conversation, role="user", content="q")
    Message.objects.create(
        conversation=conversation,
        parent=question,
        role="assistant",
        content="a",
        model="m",
        provider=provider,
        provider_name=name,
        prompt_tokens=tokens,
        completion_tokens=tokens * 2,
    )


def test_usage_sums_by_provider_and_the_admin_totals_each_provider(
    user: User, other_user: User, provider: Provider, django_user_model: Any
) -> None:
    other = Provider.objects.create(name="Other", base_url="http://127.0.0.1:9/v1")
    answered(Conversation.objects.create(owner=user), provider, "Lab", 10)
    answered(Conversation.objects.create(owner=other_user), provider, "Lab", 1)
    answered(Conversation.objects.create(owner=user), None, "Simulator", 100)

    rows = usage.summarize(Message.objects.all(), by=("provider",))
    assert [(r["provider"], r["prompt_tokens"]) for r in rows] == [("Lab", 11), ("Simulator", 100)]

    staff = Client()
    staff.force_login(django_user_model.objects.create_superuser("root", password=PASSWORD))
    for params in ({}, {"enabled__exact": "1"}, {"q": "Lab"}):
        listed = staff.get("/admin/streaming/provider/", params).context["cl"].result_list
        totals = {p.name: (p.prompt_tokens_used, p.completion_tokens_used) for p in listed}
        assert totals["Lab"] == (11, 22), params
        assert totals.get("Other", (0, 0)) == (0, 0), params
    response = staff.post(
        "/admin/streaming/provider/",
        {"action": "export_usage", "_selected_action": [provider.pk, other.pk]},
    )
    lines = response.content.decode().splitlines()
    assert lines[0] == "user,provider,model,answers,prompt_tokens,completion_tokens,total_tokens"
    assert sorted(lines[1:]) == ["alice,Lab,m,1,10,20,30", "mallory,Lab,m,1,1,2,3"]


def test_an_export_names_the_provider_and_an_import_takes_the_importers_model(
    user: User, other_user: User, provider: Provider
) -> None:
    mine = Conversation.objects.create(owner=user, provider=provider, model="llama3:8b")
    answered(mine, provider, "Lab", 5)
    document = json.loads(exports.export_json([mine]))
    assert [m.get("provider") for m in document["conversations"][0]["messages"]] == ["", "Lab"]
    assert "Lab" in exports.export_markdown(mine)
    # A file that asks for a model the picker does not offer.
    document["conversations"][0]["model"] = "gpt-4-32k"

    (imported,) = imports.do_import(other_user, json.dumps(document).encode())

    assert (imported.provider_id, imported.model) == (None, "")
    answer = imported.messages.get(role="assistant")
    assert (answer.provider_name, answer.provider_id) == ("Lab", None)
