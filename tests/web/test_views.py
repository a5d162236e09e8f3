"""The pages and the admin, through Django's test client on the real URLconf."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from streaming.models import Conversation, Message
from tests.support.users import PASSWORD

pytestmark = pytest.mark.django_db


def test_pages_need_a_login(client: Client, conversation: Conversation) -> None:
    for url in ("/", f"/c/{conversation.id}/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")


def test_login_page_logs_in_with_the_password(client: Client, user: User) -> None:
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_new_chat_opens_a_draft_with_its_system_prompt(logged_in: Client, user: User) -> None:
    response = logged_in.get("/c/new/", {"system_prompt": "Answer in French."})
    assert response.status_code == 200
    assert '<p class="system-prompt-text" id="system-prompt-text">Answer in French.</p>' in (
        response.text
    )
    assert not Conversation.objects.exists()  # saved by its first message


def test_chat_page_renders_history_escaped(logged_in: Client, conversation: Conversation) -> None:
    asked = Message.objects.create(
        conversation=conversation, role="user", content="<script>x</script>"
    )
    Message.objects.create(
        conversation=conversation,
        parent=asked,
        role="assistant",
        content="partial",
        status="error",
        error="Rate limit reached",
    )
    response = logged_in.get(f"/c/{conversation.id}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "<script>x</script>" not in body
    assert "{#" not in body  # a template comment left on the page (one spanning lines)
    assert "&lt;script&gt;x&lt;/script&gt;" in body
    assert "Rate limit reached" in body


def test_chat_page_shows_why_a_complete_answer_was_cut(
    logged_in: Client, conversation: Conversation
) -> None:
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="very long",
        status="complete",
        finish_reason="length",
        error="The answer reached the longest this site keeps (9 characters) and was cut there.",
    )
    body = logged_in.get(f"/c/{conversation.id}/").content.decode()
    assert '<div class="message-notice">The answer reached the longest' in body
    assert "message-error" not in body


def test_other_users_conversation_is_not_found(logged_in: Client, other_user: User) -> None:
    theirs = Conversation.objects.create(owner=other_user, title="private")
    page = logged_in.get(f"/c/{theirs.id}/")
    assert page.status_code == 404
    assert "private" not in page.content.decode()
    assert logged_in.post(f"/c/{theirs.id}/delete/").status_code == 404
    assert Conversation.objects.filter(pk=theirs.pk).exists()


def test_a_deleted_conversation_and_a_wrong_address_get_a_page_that_says_so(
    logged_in: Client, conversation: Conversation
) -> None:
    address = f"/c/{conversation.id}/"
    logged_in.post(f"{address}delete/")

    gone = logged_in.get(address)
    nowhere = logged_in.get("/no/such/page/")

    assert gone.status_code == nowhere.status_code == 404
    body = gone.content.decode()
    assert "This conversation does not exist: it was deleted" in body
    assert "chat.css" in body  # the site's own page, styled, with its header
    assert "Back to your conversations" in body
    assert "There is nothing at this address." in nowhere.content.decode()
    assert "Resolver404" not in nowhere.content.decode()


def test_delete_hides_the_conversation_and_keeps_it_for_the_undo_window(
    logged_in: Client, conversation: Conversation
) -> None:
    Message.objects.create(conversation=conversation, role="user", content="bye")
    response = logged_in.post(f"/c/{conversation.id}/delete/")
    assert response.status_code == 302
    assert Conversation.objects.get().deleted_at is not None
    assert Message.objects.count() == 1  # purged with it once the window has passed
    assert str(conversation.id) not in logged_in.get("/").text.replace(
        f"/c/{conversation.id}/restore/", ""
    )


def test_list_shows_only_own_conversations(logged_in: Client, user: User, other_user: User) -> None:
    Conversation.objects.create(owner=user, title="mine")
    Conversation.objects.create(owner=other_user, title="not mine")
    body = logged_in.get("/").content.decode()
    assert "mine" in body
    assert "not mine" not in body


def test_admin_lists_conversations_with_counts_and_finds_message_text(
    staff: Client, conversation: Conversation
) -> None:
    conversation.title = "Trip planning"
    conversation.save()
    Message.objects.create(conversation=conversation, role="user", content="flights to Lisbon")
    Message.objects.create(conversation=conversation, role="assistant", content="Sure.")

    changelist = staff.get("/admin/streaming/conversation/")
    found = staff.get("/admin/streaming/conversation/", {"q": "Lisbon"})
    missed = staff.get("/admin/streaming/conversation/", {"q": "Tokyo"})
    filtered = staff.get("/admin/streaming/conversation/", {"messages__status": "complete"})

    assert changelist.status_code == 200
    assert "Trip planning" in changelist.content.decode()
    assert changelist.context["cl"].result_list[0].message_count == 2
    assert [c.pk for c in found.context["cl"].result_list] == [conversation.pk]
    assert list(missed.context["cl"].result_list) == []
    assert [c.pk for c in filtered.context["cl"].result_list] == [conversation.pk]


def test_admin_shows_messages_read_only(staff: Client, conversation: Conversation) -> None:
    message = Message.objects.create(conversation=conversation, role="user", content="hello")
    page = staff.get(f"/admin/streaming/conversation/{conversation.id}/change/")
    message_page = staff.get(f"/admin/streaming/message/{message.id}/change/")
    by_status = staff.get("/admin/streaming/message/", {"status__exact": "complete"})

    assert page.status_code == message_page.status_code == by_status.status_code == 200
    assert "hello" in page.content.decode()
    assert 'name="messages-0-content"' not in page.content.decode()  # inline is read-only
    assert 'name="content"' not in message_page.content.decode()
    assert 'name="status"' not in message_page.content.decode()
    assert by_status.context["cl"].result_count == 1


def test_admin_counts_every_message_under_any_filter_or_search(
    staff: Client, conversation: Conversation
) -> None:
    asked = Message.objects.create(conversation=conversation, role="user", content="Lisbon?")
    Message.objects.create(
        conversation=conversation, parent=asked, role="assistant", content="Lisbon is…"
    )
    Message.objects.create(
        conversation=conversation,
        parent=asked,
        role="assistant",
        status="error",
        error="Rate limit reached",
        prompt_tokens=12,
    )
    other = Conversation.objects.create(owner=conversation.owner, title="Quiet")

    views = [
        {},
        {"messages__status": "complete"},  # joins messages: two rows match
        {"messages__status": "error"},
        {"q": "Lisbon"},  # matches two messages' text
        {"q": "Lisbon", "messages__status": "complete"},
    ]
    for params in views:
        changelist = staff.get("/admin/streaming/conversation/", params).context["cl"]
        counts = {c.pk: c.message_count for c in changelist.result_list}
        assert counts[conversation.pk] == 3, params
        assert changelist.result_count == len(counts), params
    everything = staff.get("/admin/streaming/conversation/").context["cl"]
    assert {c.pk: c.message_count for c in everything.result_list}[other.pk] == 0

    listed = staff.get("/admin/streaming/message/", {"status__exact": "error"}).content.decode()
    assert "Rate limit reached" in listed  # the error has a column
    assert ">12<" in listed  # and so have the tokens
