"""A search hit opens its conversation at the matching message (docs/protocol.md, "Opening at
a message"): the result links there, and the page holds a window around that message, as
bounded as the window at the end, whatever the conversation's length."""

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from streaming.models import Conversation, Message
from streaming.services import listing, window
from tests.support.long import write_chain

pytestmark = pytest.mark.django_db(transaction=True)


def initial_of(page: str) -> dict[str, Any]:
    """The page's json_script: what its modules start from."""
    start = page.index('<script id="initial-messages" type="application/json">')
    data: dict[str, Any] = json.loads(page[start:].split(">", 1)[1].split("</script>")[0])
    return data


def test_the_page_of_a_ten_thousand_message_conversation_opens_at_a_message(
    logged_in: Client, conversation: Conversation
) -> None:
    messages = write_chain(conversation, 10_000, 500)  # 5 MB of text
    found = messages[50]

    response = logged_in.get(f"/c/{conversation.id}/", {"message": str(found.id)})

    assert response.status_code == 200
    assert len(response.content) < 300_000
    page = response.content.decode()
    assert f'data-message-id="{found.id}"' in page
    assert f'data-message-id="{messages[10].id}"' in page  # some above it
    assert f'data-message-id="{messages[70].id}"' in page  # and some below
    assert str(messages[-1].id) not in page.replace(f'"leaf_id": "{messages[-1].id}"', "")
    initial = initial_of(page)
    assert initial["focus"] == str(found.id)
    assert initial["leaf_id"] == str(messages[-1].id)
    assert initial["window_end"] == initial["messages"][-1]["id"]
    assert initial["count"] == 10_000
    held = [m["id"] for m in initial["messages"]]
    start = 50 - held.index(str(found.id))
    assert held == [str(m.id) for m in messages[start : start + len(held)]]  # one piece
    assert len(held) <= window.WINDOW_MESSAGES
    assert len(held) * 500 <= window.window_bytes() + 500


@pytest.mark.parametrize("asked", ["not-a-uuid", "", "theirs", "elsewhere", "unknown"])
def test_a_message_that_is_not_this_conversations_opens_the_normal_page(
    logged_in: Client, user: User, other_user: User, conversation: Conversation, asked: str
) -> None:
    messages = write_chain(conversation, 300, 500)
    theirs = write_chain(Conversation.objects.create(owner=other_user), 3, 50)
    elsewhere = write_chain(Conversation.objects.create(owner=user), 3, 50)
    message = {
        "theirs": str(theirs[1].id),
        "elsewhere": str(elsewhere[1].id),
        "unknown": "0e1d5a7c-4a8b-4c57-9d43-2f6e8a1b9c30",
    }.get(asked, asked)
    plain = logged_in.get(f"/c/{conversation.id}/")

    response = logged_in.get(f"/c/{conversation.id}/", {"message": message})

    assert response.status_code == 200
    initial = initial_of(response.content.decode())
    assert initial == initial_of(plain.content.decode())
    assert initial["focus"] is None
    assert initial["window_end"] is None
    assert initial["messages"][-1]["id"] == str(messages[-1].id)
    # Nothing switched, and nothing said of the message elsewhere.
    conversation.refresh_from_db(fields=["leaf"])
    assert conversation.leaf_id == messages[-1].id
    assert message not in response.content.decode() or asked in {"not-a-uuid", ""}


def test_search_results_link_to_the_matching_message(
    logged_in: Client, user: User, conversation: Conversation
) -> None:
    messages = write_chain(conversation, 200, 100)
    Message.objects.filter(pk=messages[50].pk).update(content="Where is the quokkaberry jam?")
    Message.objects.filter(pk=messages[120].pk).update(content="More quokkaberry, please.")
    titled = Conversation.objects.create(owner=user, title="Quokkaberry recipes")

    hits = {hit.conversation.pk: hit for hit in listing.search(user, "quokkaberry")}
    page = logged_in.get("/", {"q": "quokkaberry"}).content.decode()

    assert hits[conversation.pk].message_id == messages[50].pk  # the first match
    assert hits[titled.pk].message_id is None  # only its title matched
    links = re.findall(r'<li class="search-hit"[^>]*>\s*(?:\{#.*?#\}\s*)?<a href="([^"]+)"', page)
    assert f"/c/{conversation.id}/?message={messages[50].id}" in links
    assert f"/c/{titled.id}/" in links
