"""The model picker in real Chromium: a second provider (a second simulator, on its own port)
picked in one tab, seen in another, answering, and named under its answer."""

import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from streaming.models import Conversation, Message, Provider, ProviderModel, UserSettings
from streaming.simulator import SimulatorThread
from tests.support.browser import (
    OpenChat,
    Sockets,
    composer,
    finished_answer,
    log_in,
    open_new_chat,
    open_saved_chat,
    orm,
    orm_until,
    script_problems,
    send,
    wait_until_connected,
)
from tests.support.providers import make_provider

pytestmark = pytest.mark.django_db(transaction=True)

# A model picker as a reader sees it: its groups with their options, and its look.
PICKER_SHAPE = """(select) => ({
    groups: [...select.querySelectorAll("optgroup")].map(
        (group) => [group.label, [...group.querySelectorAll("option")].map((o) => o.text)]),
    look: ["border-radius", "border-top-width", "font-size"].map(
        (name) => getComputedStyle(select).getPropertyValue(name)),
})"""


def test_a_model_of_a_second_provider_is_picked_answers_and_is_named_under_the_answer(
    page: Page,
    user: User,
    simulator: SimulatorThread,
    second: SimulatorThread,
    tmp_path: Path,
) -> None:
    problems = script_problems(page)
    provider = orm(lambda: make_provider(second))
    assert second.port != simulator.port
    open_saved_chat(page, user)
    other = page.context.new_page()
    other.goto(page.url)
    wait_until_connected(other)
    picker = page.get_by_role("combobox", name="Model")
    expect(picker).to_have_value(":simulated")
    expect(picker.locator("optgroup")).to_have_count(2)
    expect(picker.locator('optgroup[label="Second"] option')).to_have_text(["Large"])

    picker.select_option(label="Large")

    chosen = f"{provider.pk}:sim-large"
    expect(other.get_by_role("combobox", name="Model")).to_have_value(chosen)
    orm_until(lambda: Conversation.objects.filter(owner=user, provider=provider).exists())
    m = uuid.uuid4().hex[:8]
    send(page, f"hello {m}")
    # Named while it streams (the `start` frame), and once it has ended.
    expect(page.locator(".message--assistant .message-source")).to_have_text("sim-large · Second")
    bubble = finished_answer(page, "complete")
    expect(bubble.locator(".message-source")).to_have_text("sim-large · Second")
    expect(other.locator(".message--assistant .message-source")).to_have_text("sim-large · Second")
    page.screenshot(path=tmp_path / "second-provider.png")

    # The second simulator answered, with its key; the first was never asked.
    [request] = [r for r in second.requests if m in str(r["messages"])]
    assert (request["model"], request["headers"]["authorization"]) == ("sim-large", "present")
    assert not [r for r in simulator.requests if m in str(r["messages"])]
    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert (answer.provider_id, answer.provider_name, answer.model) == (
        provider.pk,
        "Second",
        "sim-large",
    )
    # As the server renders it, after a reload.
    page.reload()
    wait_until_connected(page)
    expect(page.get_by_role("combobox", name="Model")).to_have_value(chosen)
    expect(page.locator(".message--assistant .message-source")).to_have_text("sim-large · Second")
    other.close()
    assert problems == []


def test_a_model_disabled_after_it_was_picked_is_shown_so_and_refuses_the_next_message(
    page: Page,
    user: User,
    second: SimulatorThread,
) -> None:
    problems = script_problems(page)
    provider = orm(lambda: make_provider(second))
    open_saved_chat(page, user)
    picker = page.get_by_role("combobox", name="Model")
    picker.select_option(label="Large")
    orm_until(lambda: Conversation.objects.filter(owner=user, provider=provider).exists())
    orm(lambda: ProviderModel.objects.filter(provider=provider).update(enabled=False))

    page.reload()
    wait_until_connected(page)
    picker = page.get_by_role("combobox", name="Model")
    expect(picker.locator("option:checked")).to_have_text("sim-large (no longer offered)")
    expect(page.locator("#chat-model-status")).to_have_text(
        "This model is no longer offered: pick another to send."
    )
    send(page, "still there?")

    expect(page.locator("#composer-alert")).to_contain_text("no longer offered")
    expect(composer(page)).to_have_value("still there?")  # given back, not lost
    assert orm(lambda: Message.objects.filter(conversation__owner=user).count()) == 0
    assert second.requests == []

    # Another pick puts it right: the default provider's model answers.
    picker.select_option(value=":simulated")
    expect(page.locator("#chat-model-status")).to_have_text("")
    orm_until(lambda: Conversation.objects.filter(owner=user, provider=None).exists())
    composer(page).press("Enter")
    expect(finished_answer(page, "complete").locator(".message-source")).to_have_text(
        "simulated · Simulator"
    )
    assert orm(lambda: Provider.objects.count()) == 1
    assert problems == []


def test_a_lost_model_frame_heals_in_the_other_tab_by_pong(
    open_chat: OpenChat,
    user: User,
    second: SimulatorThread,
    tmp_path: Path,
) -> None:
    provider = orm(lambda: make_provider(second))
    chat = open_chat([{"type": "chat.model", "action": "drop", "times": 0}])
    other = chat.page.context.new_page()
    other_sockets = Sockets()
    other.on("websocket", other_sockets.watch)
    other.goto(chat.page.url)
    wait_until_connected(other)

    chat.page.get_by_role("combobox", name="Model").select_option(label="Large")

    # The other tab never hears `model`, but its idle `ping` finds the choice changed, and
    # the snapshot it asks for shows the new one.
    chosen = f"{provider.pk}:sim-large"
    expect(other.get_by_role("combobox", name="Model")).to_have_value(chosen)
    assert other_sockets.received_of("model") == []
    assert "resync" in other_sockets.sent_types()
    assert len(other_sockets.opened) == 1
    other.screenshot(path=tmp_path / "lost-model.png")
    assert chat.problems == []


def test_a_new_chat_starts_with_the_default_model_and_its_first_message_takes_the_pick(
    page: Page,
    user: User,
    simulator: SimulatorThread,
    second: SimulatorThread,
) -> None:
    problems = script_problems(page)
    provider = orm(lambda: make_provider(second))
    orm(
        lambda: ProviderModel.objects.create(
            provider=provider, model_id="sim-small", display_name="Small"
        )
    )
    # The reader's default (the settings page) is the second provider's large model.
    page.goto("/login/")
    log_in(page, user.username)
    page.goto("/settings/")
    setting = page.get_by_label("Default model")
    settings_picker = setting.evaluate(PICKER_SHAPE)
    setting.select_option(label="Large")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()

    page.goto("/")
    page.get_by_role("button", name="New chat").click()
    expect(page.locator("#chat")).to_have_attribute("data-connection", "draft")
    picker = page.get_by_role("combobox", name="Model")
    expect(picker).to_have_value(f"{provider.pk}:sim-large")
    # One picker: the settings page's is the chat header's, groups, names and look.
    assert settings_picker == picker.evaluate(PICKER_SHAPE)
    assert [group for group, _ in settings_picker["groups"]] == ["Simulator", "Second"]
    expect(page.locator("#chat-export")).to_be_hidden()  # nothing to export yet
    picker.select_option(label="Small")
    assert orm(lambda: Conversation.objects.filter(owner=user).count()) == 0  # still a draft

    m = uuid.uuid4().hex[:8]
    send(page, f"hello {m}")
    bubble = finished_answer(page, "complete")

    expect(bubble.locator(".message-source")).to_have_text("sim-small · Second")
    conversation = orm(lambda: Conversation.objects.get(owner=user))
    assert (conversation.provider_id, conversation.model) == (provider.pk, "sim-small")
    [request] = [r for r in second.requests if m in str(r["messages"])]
    assert request["model"] == "sim-small"
    assert not [r for r in simulator.requests if m in str(r["messages"])]
    expect(page.locator("#chat-export")).to_be_visible()
    expect(page.locator("#chat-export-json")).to_have_attribute(
        "href", f"/c/{conversation.id}/export.json"
    )
    assert problems == []


def test_a_new_chats_first_message_with_a_model_not_offered_is_refused_and_saves_nothing(
    page: Page,
    user: User,
    second: SimulatorThread,
) -> None:
    provider = orm(lambda: make_provider(second))
    open_new_chat(page, user.username)
    page.get_by_role("combobox", name="Model").select_option(label="Large")
    # Staff stop offering it while the draft is open.
    orm(lambda: ProviderModel.objects.filter(provider=provider).update(enabled=False))

    send(page, "are you there?")

    expect(page.locator("#composer-alert")).to_contain_text("not offered")
    expect(composer(page)).to_have_value("are you there?")  # given back, not lost
    expect(page.locator("#chat")).to_have_attribute("data-connection", "draft")
    assert orm(lambda: Conversation.objects.filter(owner=user).count()) == 0
    assert second.requests == []


def test_the_simulator_banner_is_shown_only_where_the_simulator_answers(
    page: Page,
    user: User,
    second: SimulatorThread,
) -> None:
    problems = script_problems(page)
    provider = orm(lambda: make_provider(second))
    open_saved_chat(page, user)
    banner = page.locator("#simulated-banner")
    expect(banner).to_be_visible()
    # The list too: a new conversation would start on the site's default, the simulator.
    page.goto("/")
    expect(banner).to_be_visible()
    page.go_back()
    wait_until_connected(page)
    picker = page.get_by_role("combobox", name="Model")
    picker.select_option(label="Large")
    expect(banner).to_be_hidden()
    # As every tab is told, and as the server draws the page after a reload.
    orm_until(lambda: Conversation.objects.filter(owner=user, provider=provider).exists())
    page.reload()
    wait_until_connected(page)
    expect(picker).to_have_value(f"{provider.pk}:sim-large")
    expect(banner).to_be_hidden()
    picker.select_option(value=":simulated")
    expect(banner).to_be_visible()

    # A reader whose default is the second provider: the list and a new chat say nothing.
    orm(
        lambda: UserSettings.objects.update_or_create(
            user=user, defaults={"default_provider": provider, "default_model": "sim-large"}
        )
    )
    page.goto("/")
    expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
    expect(banner).to_have_count(0)
    page.get_by_role("button", name="New chat").click()
    expect(page.get_by_role("combobox", name="Model")).to_have_value(f"{provider.pk}:sim-large")
    expect(banner).to_be_hidden()
    assert problems == []
