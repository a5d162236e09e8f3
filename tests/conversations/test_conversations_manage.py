"""Managing conversations: a new chat saved only by its first message; delete, undo and
purge; pages, day groups and search; and every tab's list kept current over the user group.
"""

import json
import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import AsyncClient, Client, override_settings
from django.utils import timezone

from streaming.models import Conversation, Message, UserSettings
from streaming.services import listing
from streaming.services.conversations import do_rename, get_conversation_for
from streaming.services.database import to_async
from streaming.services.deletion import (
    do_delete_conversation,
    do_purge_deleted,
    do_restore_conversation,
)
from streaming.services.drafts import do_start_conversation
from streaming.services.listing import ago, group_label, page_of, search
from streaming.services.titles import TITLE_PROMPT, auto_title_request, do_auto_title
from streaming.simulator import SimulatorThread
from tests.support.frames import receive_until, user_message

pytestmark = pytest.mark.django_db(transaction=True)


def first_message(content: str = "Hello sim:tokens=3", **extra: str) -> dict[str, str]:
    return {"content": content, "client_id": str(uuid.uuid4()), **extra}


async def logged_in_async(user: User) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


# --- a new chat: a draft until its first message -------------------------------------------


def test_new_chat_page_saves_nothing(logged_in: Client) -> None:
    response = logged_in.get("/c/new/")
    assert response.status_code == 200
    assert b'data-draft="true"' in response.content
    assert not Conversation.objects.exists()


def test_new_chat_page_carries_the_list_pages_system_prompt(logged_in: Client) -> None:
    response = logged_in.get("/c/new/", {"system_prompt": "Answer in <b>French</b>."})
    assert response.status_code == 200
    assert "Answer in &lt;b&gt;French&lt;/b&gt;." in response.text
    assert not Conversation.objects.exists()


@override_settings(MAX_SYSTEM_PROMPT_CHARS=10)
def test_new_chat_with_a_system_prompt_too_long_shows_the_list_again(logged_in: Client) -> None:
    response = logged_in.get("/c/new/", {"system_prompt": "x" * 11})
    assert response.status_code == 400
    assert "at most 10 characters long (it has 11)" in response.text
    assert not Conversation.objects.exists()


async def test_first_message_saves_the_conversation_and_its_answer_streams(
    user: User, connect: Any
) -> None:
    client = await logged_in_async(user)
    sent = first_message("Plan a trip sim:tokens=40 sim:rate=40", system_prompt="Be brief.")
    response = await client.post("/c/new/", sent)

    assert response.status_code == 201
    reply = response.json()
    conversation = await Conversation.objects.aget(owner=user)
    assert reply == {
        "conversation_id": str(conversation.id),
        "url": f"/c/{conversation.id}/",
        "ws_path": f"/ws/conversations/{conversation.id}/",
    }
    assert conversation.system_prompt == "Be brief."
    assert conversation.title == "Plan a trip sim:tokens=40 sim:rate=40"
    # The page connects next: the snapshot shows its message and the answer streaming.
    tab = await connect(conversation.id, user)
    roles = [(m["role"], m["client_id"]) for m in tab.snapshot["messages"]]
    assert roles[0] == ("user", sent["client_id"])
    done = await receive_until(tab, "done")
    assert done[-1]["status"] == "complete"
    await tab.disconnect()


async def test_first_message_sent_twice_makes_one_conversation(user: User, connect: Any) -> None:
    client = await logged_in_async(user)
    sent = first_message()
    first = await client.post("/c/new/", sent)
    again = await client.post("/c/new/", sent)

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert await Conversation.objects.filter(owner=user).acount() == 1
    assert await Message.objects.filter(role="user").acount() == 1
    tab = await connect(first.json()["conversation_id"], user)
    await receive_until(tab, "done") if tab.snapshot["active"] else None
    await tab.disconnect()


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"content": "   "}, "empty_content"),
        ({"content": "x" * 101}, "content_too_long"),
        ({"content": "a NUL \x00 here"}, "bad_text"),
        ({"system_prompt": "y" * 51}, "system_prompt_too_long"),
        ({"system_prompt": "nul \x00"}, "bad_system_prompt"),
        ({"client_id": "not-a-uuid"}, "bad_client_id"),
        ({"model": "m" * 201}, "bad_model"),
    ],
)
@override_settings(MAX_MESSAGE_CHARS=100, MAX_SYSTEM_PROMPT_CHARS=50)
async def test_a_refused_first_message_saves_nothing(
    user: User, fields: dict[str, str], code: str
) -> None:
    client = await logged_in_async(user)
    response = await client.post("/c/new/", first_message() | fields)

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["message"]
    assert not await Conversation.objects.aexists()
    assert not await Message.objects.aexists()


@override_settings(LIMIT_MESSAGES_PER_MINUTE=1)
async def test_a_first_message_over_the_limit_saves_nothing(user: User) -> None:
    earlier = await Conversation.objects.acreate(owner=user, title="Earlier")
    await Message.objects.acreate(conversation=earlier, role="assistant", content="Hi")
    client = await logged_in_async(user)

    response = await client.post("/c/new/", first_message())

    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert await Conversation.objects.acount() == 1
    assert await Message.objects.acount() == 1


async def test_a_first_message_when_signed_out_saves_nothing() -> None:
    response = await AsyncClient().post("/c/new/", first_message())

    assert response.status_code == 401
    assert response.json()["code"] == "session_ended"
    assert not await Conversation.objects.aexists()


def test_new_chat_by_get_only_or_post(logged_in: Client) -> None:
    assert logged_in.put("/c/new/").status_code == 405
    assert not Conversation.objects.exists()


# --- delete, undo, purge -------------------------------------------------------------------


def conversation_with_history(owner: User, title: str = "Trip") -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=title, system_prompt="Brief.")
    asked = Message.objects.create(conversation=conversation, role="user", content="Where to?")
    Message.objects.create(
        conversation=conversation, parent=asked, role="assistant", content="Rome"
    )
    return Conversation.objects.get(pk=conversation.pk)


def expire(conversation: Conversation) -> None:
    """Move the delete back past the undo window, as if the window had passed."""
    Conversation.objects.filter(pk=conversation.pk).update(
        deleted_at=timezone.now() - timedelta(seconds=11)
    )


def test_a_deleted_conversation_is_hidden_everywhere(logged_in: Client, user: User) -> None:
    conversation = conversation_with_history(user, "Rome trip")
    do_delete_conversation(conversation)

    assert get_conversation_for(user, conversation.id) is None
    assert page_of(user).conversations == []
    assert search(user, "Rome") == []
    assert logged_in.get(f"/c/{conversation.id}/").status_code == 404
    assert "Rome trip" not in logged_in.get("/").text
    # Its rows are still there, to be restored.
    assert Message.objects.filter(conversation=conversation).count() == 2


@override_settings(DELETE_UNDO_SECONDS=10)
def test_undo_within_the_window_restores_it_exactly(logged_in: Client, user: User) -> None:
    conversation = conversation_with_history(user)
    response = logged_in.post(f"/c/{conversation.id}/delete/")
    assert response.status_code == 302
    assert response["Location"] == f"/?deleted={conversation.id}"
    listed = logged_in.get(response["Location"])
    assert "Conversation deleted." in listed.text
    assert f'action="/c/{conversation.id}/restore/"' in listed.text

    restored = logged_in.post(f"/c/{conversation.id}/restore/")

    assert restored["Location"] == f"/c/{conversation.id}/"
    after = Conversation.objects.get(pk=conversation.pk)
    fields = ["title", "system_prompt", "updated_at", "created_at", "leaf_id", "deleted_at"]
    assert [getattr(after, f) for f in fields] == [getattr(conversation, f) for f in fields]
    assert Message.objects.filter(conversation=conversation).count() == 2
    assert logged_in.get(f"/c/{conversation.id}/").status_code == 200


def test_the_undo_bar_takes_any_spelling_of_the_id_and_exports_leave_deleted_ones_out(
    logged_in: Client, user: User
) -> None:
    kept = conversation_with_history(user, title="Kept")
    gone = conversation_with_history(user, title="Gone")
    logged_in.post(f"/c/{gone.id}/delete/")

    shouted = logged_in.get("/", {"deleted": str(gone.id).upper().replace("-", "")})

    assert shouted.status_code == 200
    assert f'action="/c/{gone.id}/restore/"' in shouted.text
    from asgiref.sync import async_to_sync

    from streaming.services import exports

    async def everything() -> str:
        return "".join([part async for part in exports.streamed(exports.account_pieces(user))])

    exported = async_to_sync(everything)()
    assert [c["title"] for c in json.loads(exported)["conversations"]] == [kept.title]
    assert logged_in.get(f"/c/{gone.id}/export.json").status_code == 404


def test_a_first_message_keeps_the_prompt_the_draft_showed_even_when_cleared(user: User) -> None:
    UserSettings.objects.create(user=user, default_system_prompt="Answer in French.")

    cleared = do_start_conversation(user, "Hi", uuid.uuid4(), system_prompt="")
    absent = do_start_conversation(user, "Hi", uuid.uuid4())

    assert cleared.conversation.system_prompt == ""
    assert absent.conversation.system_prompt == "Answer in French."


@override_settings(DELETE_UNDO_SECONDS=10)
def test_undo_after_the_window_is_refused_and_the_purge_deletes_it(
    logged_in: Client, user: User
) -> None:
    conversation = conversation_with_history(user)
    kept = conversation_with_history(user, "Kept")
    do_delete_conversation(conversation)
    do_delete_conversation(kept)
    assert do_purge_deleted() == 0  # both still within their window
    expire(conversation)

    response = logged_in.post(f"/c/{conversation.id}/restore/", follow=True)
    assert "Too late to undo" in response.text
    assert "Conversation deleted." not in logged_in.get(f"/?deleted={conversation.id}").text
    assert Conversation.objects.get(pk=conversation.pk).deleted_at is not None

    assert do_purge_deleted() == 1
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    # The one still within its window stays, and can be restored.
    assert do_restore_conversation(user, kept.id) is not None


def test_the_purge_command_deletes_expired_conversations(user: User) -> None:
    conversation = conversation_with_history(user)
    do_delete_conversation(conversation)
    expire(conversation)
    out = StringIO()

    call_command("purge_deleted", stdout=out)

    assert "Purged 1 deleted conversation(s)." in out.getvalue()
    assert not Conversation.objects.exists()


def test_someone_else_cannot_delete_or_restore(
    logged_in: Client, user: User, other_user: User
) -> None:
    theirs = conversation_with_history(other_user)
    assert logged_in.post(f"/c/{theirs.id}/delete/").status_code == 404
    do_delete_conversation(theirs)

    response = logged_in.post(f"/c/{theirs.id}/restore/", follow=True)

    assert "Too late to undo" in response.text
    assert Conversation.objects.get(pk=theirs.pk).deleted_at is not None
    assert "Conversation deleted." not in logged_in.get(f"/?deleted={theirs.id}").text


async def test_a_socket_of_a_deleted_conversation_is_refused_and_its_answer_stops(
    user: User, connect: Any
) -> None:
    conversation = await Conversation.objects.acreate(owner=user)
    tab = await connect(conversation.id, user)
    await tab.send_json_to(user_message("Long story sim:tokens=400 sim:rate=40"))
    await receive_until(tab, "delta")

    await to_async(do_delete_conversation)(conversation)

    frames = await receive_until(tab, "deleted")
    assert frames[-1]["type"] == "deleted"
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    for _ in range(200):
        await answer.arefresh_from_db()
        if answer.status != "streaming":
            break
        await tab.receive_nothing(timeout=0.05)
    assert answer.status == "cancelled"
    later = await connect(conversation.id, user, snapshot=False)
    closed = await later.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4403}


# --- every tab's list, over the user group -------------------------------------------------


async def test_other_tabs_hear_renames_deletes_restores_and_answers(
    user: User, connect: Any
) -> None:
    here = await Conversation.objects.acreate(owner=user, title="Here")
    there = await Conversation.objects.acreate(owner=user, title="There")
    tab = await connect(here.id, user)

    await to_async(do_rename)(there, "Renamed <b>there</b>")
    changed = (await receive_until(tab, "conversation_changed"))[-1]
    assert changed["conversation"] | {"updated_at": None} == {
        "id": str(there.id),
        "title": "Renamed <b>there</b>",
        "updated_at": None,
        "answering": False,
        "group": "Today",
    }

    await to_async(do_delete_conversation)(there)
    removed = (await receive_until(tab, "conversation_removed"))[-1]
    assert removed == {"type": "conversation_removed", "conversation_id": str(there.id)}

    await to_async(do_restore_conversation)(user, there.id)
    restored = (await receive_until(tab, "conversation_changed"))[-1]
    assert restored["conversation"]["id"] == str(there.id)

    # An answer in the other conversation: answering, then not.
    other_tab = await connect(there.id, user)
    await other_tab.send_json_to(user_message("Hi sim:tokens=3"))
    started = (await receive_until(tab, "conversation_changed"))[-1]
    assert started["conversation"]["answering"] is True
    ended = (await receive_until(tab, "conversation_changed"))[-1]
    assert ended["conversation"]["answering"] is False
    await receive_until(other_tab, "done")
    await tab.disconnect()
    await other_tab.disconnect()


async def test_another_users_changes_are_not_heard(
    user: User, other_user: User, connect: Any
) -> None:
    mine = await Conversation.objects.acreate(owner=user)
    theirs = await Conversation.objects.acreate(owner=other_user)
    tab = await connect(mine.id, user)

    await to_async(do_rename)(theirs, "Secret")
    await to_async(do_rename)(mine, "Mine")

    # Sent after theirs, to the same socket: had theirs reached it, it would come first.
    assert await tab.receive_json_from() == {"type": "title", "title": "Mine"}
    await tab.disconnect()


# --- pages and groups ----------------------------------------------------------------------


def many_conversations(owner: User, count: int) -> list[Conversation]:
    now = timezone.now()
    made = Conversation.objects.bulk_create(
        Conversation(owner=owner, title=f"Chat {n}") for n in range(count)
    )
    for n, conversation in enumerate(made):  # Chat 0 is the newest
        conversation.updated_at = now - timedelta(hours=n)
    Conversation.objects.bulk_update(made, ["updated_at"])
    return made


def test_pages_reach_the_oldest_conversation_without_repeats(user: User) -> None:
    many_conversations(user, 130)
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = page_of(user, cursor)
        seen += [c.title for c in page.conversations]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"Chat {n}" for n in range(130)]


def test_a_cursor_this_site_did_not_write_starts_from_the_top(user: User) -> None:
    many_conversations(user, 3)
    for cursor in ["junk", "2020-01-01T00:00:00~x", "2020-01-01T00:00:00~" + str(uuid.uuid4())]:
        assert next(c.title for c in page_of(user, cursor).conversations) == "Chat 0"


def test_list_page_groups_by_day_and_links_older(logged_in: Client, user: User) -> None:
    many_conversations(user, 60)
    first = logged_in.get("/")
    text = first.text
    assert text.index(">Today<") < text.index(">Yesterday<") < text.index(">Previous 7 days<")
    assert "Chat 49" in text
    assert "Chat 50<" not in text
    older = first.context["next_url"]
    second = logged_in.get(older)
    assert "Chat 50" in second.text
    assert "Chat 59" in second.text
    assert "Chat 0<" not in second.text
    assert second.context["next_url"] is None


def test_page_fragment_lists_the_next_items_only(logged_in: Client, user: User) -> None:
    many_conversations(user, 55)
    fragment = logged_in.get(logged_in.get("/").context["next_fragment"])
    assert fragment.status_code == 200
    assert fragment.text.count('class="conversation-item"') == 5
    assert "<html" not in fragment.text


@pytest.mark.parametrize(
    ("hours_ago", "label"),
    [(0, "Today"), (24, "Yesterday"), (24 * 5, "Previous 7 days"), (24 * 30, "Earlier")],
)
def test_group_labels(hours_ago: int, label: str) -> None:
    noon = timezone.now().replace(hour=12, minute=0)
    assert group_label(noon - timedelta(hours=hours_ago), noon.date()) == label


@pytest.mark.parametrize(
    ("seconds_ago", "words"),
    [
        (0, "just now"),
        (59, "just now"),
        (60, "1\xa0minute ago"),
        (3 * 3600 + 60, "3\xa0hours, 1\xa0minute ago"),
    ],
)
def test_ago_says_just_now_as_the_pages_do_under_a_minute(seconds_ago: int, words: str) -> None:
    now = timezone.now()
    assert ago(now - timedelta(seconds=seconds_ago), now) == words


def test_the_list_says_just_now_for_a_conversation_of_this_minute(
    logged_in: Client, user: User
) -> None:
    Conversation.objects.create(owner=user, title="Fresh")
    text = logged_in.get("/").text
    item = text[text.index("Fresh") : text.index("Fresh") + 300]
    assert ">just now</time>" in item
    assert "minutes ago" not in text


def test_the_list_marks_conversations_answering_now(logged_in: Client, user: User) -> None:
    busy = Conversation.objects.create(owner=user, title="Busy")
    Message.objects.create(conversation=busy, role="assistant", status="streaming")
    Conversation.objects.create(owner=user, title="Idle")
    text = logged_in.get("/").text
    busy_item = text[text.index("Busy") : text.index("Busy") + 200]
    idle_item = text[text.index("Idle") : text.index("Idle") + 200]
    assert 'class="answering-dot"' in busy_item
    assert " hidden" not in busy_item.split("</a>")[0]
    assert " hidden" in idle_item.split("</a>")[0]


# --- search --------------------------------------------------------------------------------


def test_search_finds_words_in_titles_and_old_answers_highlighted(
    logged_in: Client, user: User
) -> None:
    many_conversations(user, 10)
    old = Conversation.objects.create(owner=user, title="Holidays")
    asked = Message.objects.create(conversation=old, role="user", content="Where?")
    Message.objects.create(
        conversation=old, parent=asked, role="assistant", content="Try the xylophone museum."
    )
    Conversation.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=90))

    hits = search(user, "xylophone")

    assert [hit.conversation.pk for hit in hits] == [old.pk]
    assert "<mark>xylophone</mark>" in hits[0].snippet
    assert [h.conversation.title for h in search(user, "holidays")] == ["Holidays"]
    assert "<mark>Holidays</mark>" in search(user, "holidays")[0].title
    page = logged_in.get("/", {"q": "xylophone"})
    assert "<mark>xylophone</mark>" in page.text


def test_search_escapes_hostile_titles_and_messages(logged_in: Client, user: User) -> None:
    hostile = Conversation.objects.create(owner=user, title="<script>alert(1)</script> plan")
    Message.objects.create(
        conversation=hostile, role="user", content='<img src=x onerror="alert(2)"> plan it'
    )
    hits = search(user, "plan")
    assert len(hits) == 1
    for html in (hits[0].title, hits[0].snippet):
        assert "<script>" not in html
        assert "<img" not in html
        assert "<mark>plan</mark>" in html
    body = logged_in.get("/", {"q": "plan"}).text
    assert "<script>alert(1)" not in body
    assert "<img src=x" not in body
    assert "&lt;script&gt;" in body


def test_search_never_finds_another_users_or_deleted_conversations(
    user: User, other_user: User
) -> None:
    theirs = Conversation.objects.create(owner=other_user, title="Secret zeppelin")
    Message.objects.create(conversation=theirs, role="user", content="zeppelin plans")
    gone = conversation_with_history(user, "Zeppelin gone")
    do_delete_conversation(gone)

    assert search(user, "zeppelin") == []
    assert len(search(other_user, "zeppelin")) == 1


def test_search_uses_full_text_search_on_postgresql(user: User) -> None:
    conversation = Conversation.objects.create(owner=user, title="Packing")
    Message.objects.create(conversation=conversation, role="user", content="Which answers fit?")
    found = search(user, "answer")
    if connection.vendor == "postgresql":
        assert len(found) == 1  # stemmed: "answer" finds "answers"
        assert "<mark>answers</mark>" in found[0].snippet
        assert search(user, '"fit answers"') == []  # a phrase, in its order
        assert len(search(user, '"answers fit"')) == 1
    else:
        assert len(found) == 1  # a substring
        assert "<mark>answer</mark>s" in found[0].snippet


def test_search_shows_and_opens_the_message_that_holds_most_of_the_words(user: User) -> None:
    conversation = Conversation.objects.create(owner=user, title="Testing")
    earlier = Message.objects.create(
        conversation=conversation, role="user", content="A long day of testing."
    )
    best = Message.objects.create(
        conversation=conversation,
        parent=earlier,
        role="assistant",
        content="Here is the long one for reload: " + "filler words " * 40 + "and reload again.",
    )

    # The fallback's rule (SQLite's search, runnable on any database).
    [found] = listing._search_substrings(user, "long one for reload")

    assert found.message_id == best.pk
    for word in ("long", "one", "for", "reload"):
        assert f"<mark>{word}</mark>" in found.snippet
    if connection.vendor == "postgresql":
        [found] = search(user, "long reload")
        assert found.message_id == best.pk  # the only one holding both
        assert "<mark>long</mark>" in found.snippet
        assert "<mark>reload</mark>" in found.snippet


@pytest.mark.usefixtures("postgresql")
def test_search_on_postgresql_opens_the_best_ranked_of_several_matching_messages(
    user: User,
) -> None:
    conversation = Conversation.objects.create(owner=user, title="Trips")
    first = Message.objects.create(
        conversation=conversation, role="user", content="Lisbon, maybe; " + "then home. " * 30
    )
    best = Message.objects.create(
        conversation=conversation,
        parent=first,
        role="assistant",
        content="Lisbon in spring: Lisbon's hills, Lisbon's trams.",
    )

    [found] = search(user, "lisbon")

    assert found.message_id == best.pk
    assert found.snippet.count("<mark>") >= 3


def test_a_snippet_holds_every_word_however_far_apart() -> None:
    text = "alpha " + "x " * 500 + "omega " + "y " * 500 + "gamma"

    snippet = listing._window(text, ["omega", "alpha", "gamma"])

    for word in ("alpha", "omega", "gamma"):
        assert word in snippet
    assert snippet.count(" … ") == 2
    assert len(snippet) < 400
    assert listing._window("nothing here", ["absent"]) == "nothing here"


# --- a title asked of the model (AUTO_TITLE) -----------------------------------------------


@override_settings(AUTO_TITLE=True)
async def test_a_title_is_asked_after_the_first_answer_and_told_to_every_tab(
    user: User, connect: Any, simulator: SimulatorThread
) -> None:
    conversation = await Conversation.objects.acreate(owner=user)
    tab = await connect(conversation.id, user)
    question = f"What to call this {uuid.uuid4().hex} sim:tokens=3"
    await tab.send_json_to(user_message(question))
    await receive_until(tab, "done")

    titled = (await receive_until(tab, "title"))[-1]

    await conversation.arefresh_from_db()
    assert conversation.title == titled["title"]
    assert titled["title"] not in ("", question)
    assert len(titled["title"]) <= 60
    asked = [r for r in simulator.requests if r["messages"][0]["content"] == TITLE_PROMPT]
    assert question in asked[-1]["messages"][1]["content"]
    # The second answer asks for none: the title stays.
    await tab.send_json_to(user_message("And then? sim:tokens=2"))
    await receive_until(tab, "done")
    assert await tab.receive_nothing(timeout=0.5)
    await conversation.arefresh_from_db()
    assert conversation.title == titled["title"]
    await tab.disconnect()


def test_a_title_from_the_model_never_replaces_the_users_own(user: User) -> None:
    conversation = Conversation.objects.create(owner=user, title="Where to?")
    asked = Message.objects.create(conversation=conversation, role="user", content="Where to?")
    answer = Message.objects.create(
        conversation=conversation, parent=asked, role="assistant", content="Rome"
    )
    assert auto_title_request(answer) is None  # AUTO_TITLE is off
    with override_settings(AUTO_TITLE=True):
        request = auto_title_request(answer)
        assert request is not None
        made_from, _, provider = request
        assert (provider.provider_id, provider.model) == (None, settings.OPENAI_MODEL)
        do_rename(conversation, "Mine")  # while the model is asked

        assert do_auto_title(conversation.id, made_from, '"Roman holiday."') is None
        assert Conversation.objects.get(pk=conversation.pk).title == "Mine"
        assert auto_title_request(answer) is None  # renamed: nothing to ask


def test_a_title_is_asked_of_the_conversations_own_model_and_not_of_one_gone(
    user: User,
) -> None:
    from streaming.models import Provider, ProviderModel

    provider = Provider.objects.create(name="Lab", base_url="http://127.0.0.1:9/v1")
    offered = ProviderModel.objects.create(provider=provider, model_id="small")
    conversation = Conversation.objects.create(
        owner=user, title="Where to?", provider=provider, model="small"
    )
    asked = Message.objects.create(conversation=conversation, role="user", content="Where to?")
    answer = Message.objects.create(
        conversation=conversation, parent=asked, role="assistant", content="Rome"
    )
    with override_settings(AUTO_TITLE=True):
        request = auto_title_request(answer)
        assert request is not None
        assert (request[2].provider_id, request[2].model) == (provider.pk, "small")
        offered.enabled = False
        offered.save()
        assert auto_title_request(answer) is None


def test_a_title_from_the_model_is_cleaned(user: User) -> None:
    conversation = Conversation.objects.create(owner=user, title="Where to?")
    saved = do_auto_title(conversation.id, "Where to?", '\n"Roman  holiday."\nMore')
    assert saved == "Roman holiday"
    assert do_auto_title(conversation.id, "Roman holiday", "  \n ") is None
    assert Conversation.objects.get(pk=conversation.pk).title == "Roman holiday"
