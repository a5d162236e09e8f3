"""Tokens spent: per conversation on the chat page, per day and model on the usage page,
per user (and model) in the admin with a CSV, every sum right under filters and searches."""

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from streaming.models import Conversation, Message
from streaming.services import usage
from streaming.services.quotas import start_of_day
from tests.support.users import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def staff(django_user_model: Any) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", password=PASSWORD))
    return client


def answer(
    conversation: Conversation,
    prompt: int | None,
    completion: int | None,
    *,
    model: str = "m-1",
    provider: str = "Simulator",
    days_ago: int = 0,
    status: str = "complete",
    content: str = "answer",
) -> Message:
    question = Message.objects.create(conversation=conversation, role="user", content="q")
    return Message.objects.create(
        conversation=conversation,
        parent=question,
        role="assistant",
        content=content,
        status=status,
        model=model,
        provider_name=provider,
        prompt_tokens=prompt,
        completion_tokens=completion,
        created_at=start_of_day(timezone.now()) + timedelta(hours=1) - timedelta(days=days_ago),
    )


def test_the_chat_page_shows_the_conversations_sum(logged_in: Client, user: User) -> None:
    conversation = Conversation.objects.create(owner=user)
    answer(conversation, 10, 20)
    answer(conversation, 5, None, status="cancelled")
    answer(Conversation.objects.create(owner=user), 1000, 1000)  # another conversation

    body = logged_in.get(f"/c/{conversation.id}/").content.decode()

    assert '<span class="chat-usage" id="chat-usage"' in body
    assert "15 tokens in · 20 out</span>" in body


def test_summarize_groups_by_day_and_model_and_counts_each_answer_once(user: User) -> None:
    conversation = Conversation.objects.create(owner=user)
    answer(conversation, 10, 20, model="a")
    answer(conversation, 1, 2, model="a")
    answer(conversation, 100, 200, model="b")
    answer(conversation, 7, 7, model="a", days_ago=1)
    answer(conversation, None, None, model="a", status="error")

    rows = usage.summarize(Message.objects.all(), by=("day", "model"))
    today = timezone.now().date()

    assert [(r["day"] == today, r["model"], r["answers"], r["total_tokens"]) for r in rows] == [
        (False, "a", 1, 14),
        (True, "a", 3, 33),
        (True, "b", 1, 300),
    ]
    # A queryset that joins (and so repeats) answers sums each once all the same.
    joined = Message.objects.filter(conversation__messages__role="user")
    assert usage.totals(joined) == usage.totals(Message.objects.all())
    assert usage.totals(Message.objects.all())["prompt_tokens"] == 118
    with pytest.raises(ValueError, match="Unknown usage group keys"):
        usage.summarize(Message.objects.all(), by=("planet",))


def test_usage_page_shows_the_last_30_days_by_day_and_model(
    logged_in: Client, user: User, other_user: User
) -> None:
    mine = Conversation.objects.create(owner=user)
    answer(mine, 10, 20, model="model-a")
    answer(mine, 1, 1, model="model-0")
    answer(mine, 3, 4, model="model-b", days_ago=2)
    answer(mine, 500, 500, model="too-old", days_ago=30)
    answer(Conversation.objects.create(owner=other_user), 900, 900, model="theirs")

    response = logged_in.get("/usage/")

    assert response.status_code == 200
    rows = response.context["rows"]
    assert [(r["model"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        ("model-0", 1, 1),  # newest day first, its models in order
        ("model-a", 10, 20),
        ("model-b", 3, 4),
    ]
    assert response.context["totals"] == {
        "answers": 3,
        "prompt_tokens": 14,
        "completion_tokens": 25,
        "total_tokens": 39,
    }
    body = response.content.decode()
    assert "too-old" not in body
    assert "theirs" not in body
    assert 'data-label="Tokens in"' in body  # read as labelled lines on a phone


def test_usage_page_without_answers_says_so(logged_in: Client) -> None:
    body = logged_in.get("/usage/").content.decode()
    assert "No answers in the last 30 days" in body


def test_admin_user_totals_are_right_under_filters_and_search(
    staff: Client, user: User, other_user: User
) -> None:
    mine = Conversation.objects.create(owner=user, title="Lisbon")
    answer(mine, 10, 20, content="Lisbon trams")
    answer(mine, 1, 2, content="Lisbon food")
    answer(Conversation.objects.create(owner=user), 100, 200)
    answer(Conversation.objects.create(owner=other_user), 7, 8)

    views = [{}, {"q": "alice"}, {"is_staff__exact": "0"}, {"is_active__exact": "1", "q": "a"}]
    for params in views:
        changelist = staff.get("/admin/auth/user/", params).context["cl"]
        totals = {
            u.username: (u.prompt_tokens_used, u.completion_tokens_used)
            for u in changelist.result_list
        }
        assert totals["alice"] == (111, 222), params
        if "mallory" in totals:
            assert totals["mallory"] == (7, 8), params
    ordered = staff.get("/admin/auth/user/", {"o": "-6"}).context["cl"].result_list
    assert [u.username for u in ordered][:2] == ["alice", "mallory"]


def test_admin_csv_of_users_sums_by_user_provider_and_model(
    staff: Client, user: User, other_user: User
) -> None:
    conversation = Conversation.objects.create(owner=user)
    answer(conversation, 10, 20, model="a")
    answer(conversation, 1, 2, model="a")
    answer(conversation, 5, 5, model="=HYPERLINK()")
    answer(conversation, 3, 4, model="a", provider="OpenRouter")
    answer(Conversation.objects.create(owner=other_user), 7, 8, model="a")

    response = staff.post(
        "/admin/auth/user/",
        {"action": "export_usage", "_selected_action": [user.pk]},
    )

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert list(csv.reader(io.StringIO(response.content.decode()))) == [
        [
            "user",
            "provider",
            "model",
            "answers",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
        ],
        ["alice", "OpenRouter", "a", "1", "3", "4", "7"],
        ["alice", "Simulator", "'=HYPERLINK()", "1", "5", "5", "10"],
        ["alice", "Simulator", "a", "2", "11", "22", "33"],
    ]


def test_admin_csv_of_filtered_messages_sums_only_those(staff: Client, user: User) -> None:
    conversation = Conversation.objects.create(owner=user, title="Lisbon")
    kept = [answer(conversation, 10, 20), answer(conversation, 1, 2)]
    failed = answer(conversation, 100, 200, status="error")

    changelist = staff.get("/admin/streaming/message/", {"status__exact": "complete"})
    selected = [m.pk for m in changelist.context["cl"].result_list]
    response = staff.post(
        "/admin/streaming/message/?status__exact=complete",
        {"action": "export_usage", "select_across": "1", "_selected_action": selected},
    )

    assert {m.pk for m in kept} <= set(selected)  # with the user messages, which cost nothing
    assert failed.pk not in selected
    assert list(csv.reader(io.StringIO(response.content.decode())))[1:] == [
        ["alice", "Simulator", "m-1", "2", "11", "22", "33"],
    ]


def test_imported_answers_count_in_their_conversation_but_not_as_spent(
    logged_in: Client, user: User, settings: Any
) -> None:
    from streaming.services import exports, imports, quotas

    here = Conversation.objects.create(owner=user)
    answer(here, 10, 20)
    (imported,) = imports.do_import(user, exports.export_json([here]).encode())
    answer(imported, 1, 2)  # a new answer in the imported conversation is spent here

    page = logged_in.get("/usage/")
    chat = logged_in.get(f"/c/{imported.id}/").content.decode()

    assert page.context["totals"]["total_tokens"] == 33
    assert "11 tokens in · 22 out</span>" in chat
    midnight = start_of_day(timezone.now())
    assert quotas.tokens_used_since(user.pk, midnight) == 33
    assert Message.objects.filter(conversation=imported, imported=True).count() == 2
