"""The settings page: a user's default system prompt, validated as a conversation's own,
and given to each new conversation."""

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from streaming.models import Conversation, UserSettings
from streaming.services.conversations import do_create_conversation
from streaming.services.drafts import do_start_conversation
from tests.support.users import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def test_settings_page_needs_a_login(client: Client) -> None:
    response = client.get("/settings/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/settings/")


def test_settings_page_is_linked_from_the_header(logged_in: Client) -> None:
    body = logged_in.get("/").content.decode()
    assert 'href="/settings/"' in body
    assert 'href="/usage/"' in body


def test_default_system_prompt_is_saved_and_shown_again(logged_in: Client, user: User) -> None:
    response = logged_in.post("/settings/", {"default_system_prompt": "Answer in French."})

    assert response.status_code == 302
    assert UserSettings.objects.get(user=user).default_system_prompt == "Answer in French."
    page = logged_in.get("/settings/").content.decode()
    assert "Answer in French." in page
    assert "Settings saved." in page


@override_settings(MAX_SYSTEM_PROMPT_CHARS=20)
def test_a_default_prompt_too_long_is_refused_and_nothing_saved(
    logged_in: Client, user: User
) -> None:
    UserSettings.objects.create(user=user, default_system_prompt="Be brief.")
    response = logged_in.post("/settings/", {"default_system_prompt": "x" * 21})

    assert response.status_code == 400
    body = response.content.decode()
    assert "at most 20 characters long (it has 21)" in body
    assert 'maxlength="20"' in body
    assert "x" * 21 in body  # kept in the form as typed
    assert UserSettings.objects.get(user=user).default_system_prompt == "Be brief."


def test_a_default_prompt_that_cannot_be_stored_is_refused(logged_in: Client, user: User) -> None:
    response = logged_in.post("/settings/", {"default_system_prompt": "nul \x00 here"})

    assert response.status_code == 400
    assert "Null characters are not allowed." in response.content.decode()
    assert not UserSettings.objects.filter(user=user).exists()


def test_a_new_conversation_takes_the_default_prompt(logged_in: Client, user: User) -> None:
    UserSettings.objects.create(user=user, default_system_prompt="Answer in French.")

    # The draft shows it; its first message makes the conversation with it, or with its own.
    assert "Answer in French." in logged_in.get("/c/new/").content.decode()
    do_start_conversation(user, "Hi", uuid.uuid4())
    do_start_conversation(user, "Hi", uuid.uuid4(), system_prompt="Answer in German.")

    prompts = set(Conversation.objects.filter(owner=user).values_list("system_prompt", flat=True))
    assert prompts == {"Answer in French.", "Answer in German."}


def test_do_create_conversation_applies_only_the_owners_default(
    user: User, other_user: User
) -> None:
    UserSettings.objects.create(user=other_user, default_system_prompt="Mallory's own.")

    mine = do_create_conversation(user)
    theirs = do_create_conversation(other_user)

    assert mine.system_prompt == ""
    assert theirs.system_prompt == "Mallory's own."


@override_settings(MAX_SYSTEM_PROMPT_CHARS=5)
def test_line_breaks_a_browser_sends_as_crlf_are_kept_and_counted_as_one(
    logged_in: Client, user: User
) -> None:
    response = logged_in.post("/settings/", {"default_system_prompt": "a\r\nb\r\nc"})

    assert response.status_code == 302
    assert UserSettings.objects.get(user=user).default_system_prompt == "a\nb\nc"


@override_settings(MAX_SYSTEM_PROMPT_CHARS=20)
def test_staff_editing_a_users_settings_meet_the_same_limit(
    django_user_model: Any, user: User
) -> None:
    staff = Client()
    staff.force_login(django_user_model.objects.create_superuser("root", password=PASSWORD))

    response = staff.post(
        "/admin/streaming/usersettings/add/",
        {"user": user.pk, "default_system_prompt": "x" * 21},
    )

    assert response.status_code == 200
    assert "at most 20 characters long (it has 21)" in response.content.decode()
    assert not UserSettings.objects.exists()
