"""Share links over HTTP: a copy of the shown branch, opened by token to whom its owner
chose (as the site allows), read-only, revoked or expired at once, and continued by a
signed-in reader as a conversation of their own. In Chromium, with Markdown and a stranger's
browser: tests/browser/test_shares_browser.py."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone

from streaming.models import Conversation, Message, Quota, SharedLink, Storage, UserSettings
from streaming.services import branch, shares
from streaming.sharing import SharedMessage, SharingSwitch
from streaming.views_shared import LINK_NOT_FOUND

pytestmark = pytest.mark.django_db

PUBLIC = override_settings(SHARE_LINKS="public")


def chat(owner: User, turns: int = 2, title: str = "Plans") -> Conversation:
    """A conversation of ``turns`` questions and answers, and an older version of the last
    answer that the branch shown does not hold."""
    conversation = Conversation.objects.create(owner=owner, title=title)
    parent = None
    for n in range(turns):
        asked = Message.objects.create(
            conversation=conversation, parent=parent, role="user", content=f"question {n}"
        )
        if n == turns - 1:
            Message.objects.create(
                conversation=conversation,
                parent=asked,
                role="assistant",
                content="an older version",
                created_at=timezone.now() - timedelta(minutes=1),
            )
        parent = Message.objects.create(
            conversation=conversation, parent=asked, role="assistant", content=f"answer {n}"
        )
    return conversation


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def share(
    owner: User, conversation: Conversation, audience: str = "signed_in", expiry: str = "never"
) -> SharedLink:
    response = signed_in(owner).post(
        f"/c/{conversation.id}/share/", {"audience": audience, "expiry": expiry}
    )
    assert response.status_code == 200, response.content.decode()[:500]
    return SharedLink.objects.filter(conversation=conversation).latest("created_at")


def test_a_link_holds_the_shown_branch_as_it_was_and_nothing_later(
    user: User, other_user: User
) -> None:
    conversation = chat(user)
    link = share(user, conversation)
    assert list(link.messages.values_list("role", "content")) == [
        ("user", "question 0"),
        ("assistant", "answer 0"),
        ("user", "question 1"),
        ("assistant", "answer 1"),
    ]
    # What the conversation says later is not in the link.
    Message.objects.create(conversation=conversation, role="user", content="a later secret")
    Conversation.objects.filter(pk=conversation.pk).update(title="Renamed later")
    page = signed_in(other_user).get(f"/s/{link.token}/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "answer 1" in text
    assert "an older version" not in text
    assert "a later secret" not in text
    assert "Renamed later" not in text


def test_the_shared_page_is_read_only_unindexed_and_under_a_strict_policy(
    user: User, other_user: User
) -> None:
    conversation = chat(user)
    Message.objects.filter(conversation=conversation, role="assistant").update(
        model="secret-model", provider_name="Secret Provider", prompt_tokens=123
    )
    page = signed_in(other_user).get(f"/s/{share(user, conversation).token}/")
    text = page.content.decode()
    assert page["X-Robots-Tag"] == "noindex, nofollow"
    assert page["Cache-Control"] == "no-store"
    assert page["Referrer-Policy"] == "same-origin"
    policy = page["Content-Security-Policy"]
    assert "connect-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe" not in policy
    # No composer, no socket's page script, no provider, model or usage.
    assert "<textarea" not in text
    assert "chat/main.js" not in text
    assert "secret-model" not in text
    assert "Secret Provider" not in text
    assert "123" not in text
    assert "Continue in a new chat" in text


def test_who_may_open_a_link_is_the_owners_choice_within_the_sites(
    user: User, other_user: User
) -> None:
    conversation = chat(user)
    signed_in_only = share(user, conversation)
    anonymous = Client()
    refused = anonymous.get(f"/s/{signed_in_only.token}/")
    assert refused.status_code == 302
    assert refused["Location"].startswith("/login/?next=")
    # "Anyone" is not the owner's to pick while the site allows signed-in readers only.
    response = signed_in(user).post(
        f"/c/{conversation.id}/share/", {"audience": "anyone", "expiry": "never"}
    )
    assert response.status_code == 400
    assert SharedLink.objects.count() == 1
    with PUBLIC:
        public = share(user, conversation, audience="anyone")
        page = anonymous.get(f"/s/{public.token}/")
        assert page.status_code == 200
        assert "answer 1" in page.content.decode()
        assert "Continue in a new chat" not in page.content.decode()
    # Back to signed-in only: a link opened to anyone before now wants a signed-in reader.
    assert anonymous.get(f"/s/{public.token}/").status_code == 302
    assert signed_in(other_user).get(f"/s/{public.token}/").status_code == 200
    with override_settings(SHARE_LINKS="off"):
        assert signed_in(other_user).get(f"/s/{signed_in_only.token}/").status_code == 404
        assert (
            signed_in(user)
            .post(f"/c/{conversation.id}/share/", {"audience": "signed_in", "expiry": "never"})
            .status_code
            == 400
        )


def test_a_revoked_expired_or_deleted_link_is_not_found_and_says_nothing_more(
    user: User, other_user: User
) -> None:
    reader = signed_in(other_user)
    revoked, expired, deleted = (share(user, chat(user, title=t)) for t in ("a", "b", "c"))
    # Only its owner revokes a link.
    reader.post(f"/shared/{revoked.pk}/revoke/")
    assert reader.get(f"/s/{revoked.token}/").status_code == 200
    signed_in(user).post(f"/shared/{revoked.pk}/revoke/")
    SharedLink.objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    Conversation.objects.filter(pk=deleted.conversation_id).update(deleted_at=timezone.now())
    unknown = "x" * 43
    pages = [
        reader.get(f"/s/{token}/")
        for token in (revoked.token, expired.token, deleted.token, unknown)
    ]
    assert [page.status_code for page in pages] == [404] * 4
    # One message for every reason: a reader cannot tell them apart.
    assert all(LINK_NOT_FOUND in page.content.decode() for page in pages)
    # Deleted for good, the conversation takes its links with it.
    Conversation.objects.filter(pk=deleted.conversation_id).delete()
    assert not SharedLink.objects.filter(pk=deleted.pk).exists()
    assert not SharedMessage.objects.filter(link_id=deleted.pk).exists()


def test_an_expiry_is_the_owners_pick(user: User) -> None:
    link = share(user, chat(user), expiry="7d")
    assert link.expires_at is not None
    assert timedelta(days=6, hours=23) < link.expires_at - timezone.now() <= timedelta(days=7)
    response = signed_in(user).post(
        f"/c/{link.conversation_id}/share/", {"audience": "signed_in", "expiry": "forever"}
    )
    assert response.status_code == 400
    assert SharedLink.objects.count() == 1


def test_tokens_are_long_random_and_not_the_rows_id(user: User) -> None:
    conversations = [chat(user, title=str(n)) for n in range(2)]
    tokens = {share(user, conversations[n % 2]).token for n in range(20)}
    assert len(tokens) == 20
    assert all(len(token) >= 43 for token in tokens)
    assert not any(token.isdigit() for token in tokens)


def test_a_conversation_still_answering_is_not_shared(user: User) -> None:
    conversation = chat(user)
    Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    response = signed_in(user).post(
        f"/c/{conversation.id}/share/", {"audience": "signed_in", "expiry": "never"}
    )
    assert response.status_code == 400
    assert "still answering" in response.content.decode()
    assert not SharedLink.objects.exists()


def test_continue_copies_the_link_into_a_conversation_of_the_readers(
    user: User, other_user: User
) -> None:
    link = share(user, chat(user))
    UserSettings.objects.create(user=other_user, default_system_prompt="Be brief.")
    response = signed_in(other_user).post(f"/s/{link.token}/continue/")
    copy = Conversation.objects.get(owner=other_user)
    assert response.status_code == 302
    assert response["Location"] == f"/c/{copy.id}/"
    assert copy.title == "Plans"
    assert copy.system_prompt == "Be brief."  # the reader's default, as for any new chat
    # The branch the new conversation shows: the copy, turn after turn, linked by parents.
    shown = [key for key, _, _ in branch.shown(copy).part(0, 100)]
    rows = [
        Message.objects.filter(pk=key).values_list("role", "content", "imported").get()
        for key in shown
    ]
    assert rows == [
        ("user", "question 0", True),
        ("assistant", "answer 0", True),
        ("user", "question 1", True),
        ("assistant", "answer 1", True),
    ]
    assert copy.leaf_id == shown[-1]
    assert Storage.objects.get(user=other_user).chars == sum(len(r[1]) for r in rows)
    # The sharer's conversation is untouched.
    assert Conversation.objects.filter(owner=user).count() == 1


def test_continue_past_the_readers_storage_is_refused_and_writes_nothing(
    user: User, other_user: User
) -> None:
    link = share(user, chat(user))
    Quota.objects.create(user=other_user, storage_chars=10)
    reader = signed_in(other_user)
    response = reader.post(f"/s/{link.token}/continue/", follow=True)
    assert "fill your storage" in response.content.decode()
    assert not Conversation.objects.filter(owner=other_user).exists()
    assert not Message.objects.filter(conversation__owner=other_user).exists()


def test_a_long_conversation_is_read_a_page_at_a_time(user: User, other_user: User) -> None:
    link = share(user, chat(user, turns=130))
    reader = signed_in(other_user)
    first = reader.get(f"/s/{link.token}/").content.decode()
    assert link.count == 260
    assert "question 0" in first
    assert "question 50" not in first
    assert f"/s/{link.token}/?from=100" in first
    last = reader.get(f"/s/{link.token}/?from=200").content.decode()
    assert "answer 129" in last
    assert f"/s/{link.token}/?from=100" in last


def test_owners_see_and_revoke_their_links_on_the_settings_page(user: User) -> None:
    link = share(user, chat(user))
    owner = signed_in(user)
    page = owner.get("/settings/").content.decode()
    assert f"/s/{link.token}/" in page
    response = owner.post(f"/shared/{link.pk}/revoke/", {"next": "/settings/"})
    assert response["Location"] == "/settings/"
    assert f"/s/{link.token}/" not in owner.get("/settings/").content.decode()


def test_staff_list_and_revoke_any_link_in_the_admin(admin_client: Client, user: User) -> None:
    link = share(user, chat(user))
    listing = admin_client.get("/admin/streaming/sharedlink/")
    assert "Plans" in listing.content.decode()
    admin_client.post(
        "/admin/streaming/sharedlink/",
        {"action": "revoke", "_selected_action": [str(link.pk)]},
    )
    link.refresh_from_db()
    assert link.revoked_at is not None
    assert shares.open_link(link.token) is None


def test_a_stranger_cannot_share_someone_elses_conversation(user: User, other_user: User) -> None:
    conversation = chat(user)
    response = signed_in(other_user).post(
        f"/c/{conversation.id}/share/", {"audience": "signed_in", "expiry": "never"}
    )
    assert response.status_code == 404
    assert not SharedLink.objects.exists()


@override_settings(OIDC_SERVER_URL="https://id.example.com/realms/company")
def test_the_shared_pages_policy_lets_logout_go_on_to_the_provider(
    user: User, other_user: User
) -> None:
    """The header's Log out ends at the provider's end-session endpoint: a form's redirects
    are held to form-action, which must still name it on this page."""
    from django.conf import settings

    directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
    with override_settings(
        CONTENT_SECURITY_POLICY={
            "DIRECTIVES": {**directives, "form-action": ["'self'", "https://id.example.com"]}
        }
    ):
        page = signed_in(other_user).get(f"/s/{share(user, chat(user)).token}/")
    assert "form-action 'self' https://id.example.com" in page["Content-Security-Policy"]
    assert "connect-src 'none'" in page["Content-Security-Policy"]


def test_open_links_are_bounded_and_a_revoke_deletes_the_copy(user: User) -> None:
    conversation = chat(user)
    links = [share(user, conversation) for _ in range(shares.MAX_OPEN_LINKS_PER_CONVERSATION)]
    refused = signed_in(user).post(
        f"/c/{conversation.id}/share/", {"audience": "signed_in", "expiry": "never"}
    )
    assert refused.status_code == 400
    assert "revoke one" in refused.content.decode()
    assert SharedLink.objects.count() == shares.MAX_OPEN_LINKS_PER_CONVERSATION
    assert shares.do_revoke(user, links[0].pk)
    assert not SharedMessage.objects.filter(link=links[0]).exists()
    # The next share clears links that no longer open, and has room again.
    share(user, conversation)
    assert not SharedLink.objects.filter(pk=links[0].pk).exists()


def test_staff_turn_sharing_off_for_the_whole_site_in_the_admin(
    admin_client: Client, user: User, other_user: User
) -> None:
    link = share(user, chat(user))
    added = admin_client.post("/admin/streaming/sharingswitch/add/", {})  # "on" unticked
    assert added.status_code == 302
    reader = signed_in(other_user)
    assert reader.get(f"/s/{link.token}/").status_code == 404
    refused = signed_in(user).post(
        f"/c/{link.conversation_id}/share/", {"audience": "signed_in", "expiry": "never"}
    )
    assert refused.status_code == 400
    assert SharedLink.objects.count() == 1
    # Links are kept: on again, the link opens again.
    switch = SharingSwitch.objects.get()
    admin_client.post(
        "/admin/streaming/sharingswitch/",
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-MIN_NUM_FORMS": "0",
            "form-MAX_NUM_FORMS": "1000",
            "form-0-id": str(switch.pk),
            "form-0-on": "on",
            "_save": "Save",
        },
    )
    assert SharingSwitch.objects.get().on
    assert reader.get(f"/s/{link.token}/").status_code == 200
