"""Invitations in real Chromium: the link makes one account and signs it in; the same link
in another browser, or one past its expiry, is refused."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from playwright.sync_api import Page, expect

from streaming.invitations import Invitation
from tests.support.browser import orm
from tests.support.servers import DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "a horse of another colour"


def fill_in(page: Page, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email address").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Make the account").click()


def test_an_invitation_link_makes_one_account_and_no_second(
    page: Page, server: DaphneServer
) -> None:
    def invite() -> Invitation:
        made = Invitation.objects.create(note="newcomer")
        made.groups.add(Group.objects.create(name="writers"))
        return made

    invitation = orm(invite)
    late = orm(lambda: Invitation.objects.create(expires_at=timezone.now() - timedelta(hours=1)))
    page.goto(f"/invite/{invitation.token}/")
    fill_in(page, "newcomer")
    expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
    expect(page.locator(".site-user")).to_have_text("newcomer")
    assert orm(
        lambda: list(User.objects.get(username="newcomer").groups.values_list("name", flat=True))
    ) == ["writers"]

    stranger = page.context.browser.new_context(base_url=server.url).new_page()  # type: ignore[union-attr]
    for token in (invitation.token, late.token):
        response = stranger.goto(f"/invite/{token}/")
        assert response is not None
        assert response.status == 404
        expect(stranger.get_by_text("This invitation does not open")).to_be_visible()
    assert orm(lambda: User.objects.count()) == 2  # the test's user and the newcomer
