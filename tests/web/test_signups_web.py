"""Making an account without staff: an invitation's link (once, before it expires, at its
domain, into its groups), and sign-up for SIGNUP_DOMAINS' addresses, both proving an
address by a mailed link when the right to the account rests on it. Nobody else may."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.test import Client, override_settings
from django.utils import timezone

from streaming.exceptions import Invalid
from streaming.invitations import Invitation
from streaming.services import signups

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a horse of another colour"


def form(username: str = "newcomer", email: str = "newcomer@example.com") -> dict[str, str]:
    return {
        "username": username,
        "email": email,
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
    }


def mailed_link() -> str:
    (sent,) = mail.outbox
    found = re.search(r"http://testserver(/signup/confirm/\S+/)", str(sent.body))
    assert found, sent.body
    return found.group(1)


def test_an_invitation_makes_one_account_in_its_groups_and_is_used_up() -> None:
    writers = Group.objects.create(name="writers")
    invitation = Invitation.objects.create(note="for the newcomer")
    invitation.groups.add(writers)
    client = Client()
    assert client.get(f"/invite/{invitation.token}/").status_code == 200
    response = client.post(f"/invite/{invitation.token}/", form())
    assert response.status_code == 302
    newcomer = User.objects.get(username="newcomer")
    assert newcomer.is_active
    assert list(newcomer.groups.all()) == [writers]
    assert int(client.session["_auth_user_id"]) == newcomer.pk  # signed in
    invitation.refresh_from_db()
    assert (invitation.used_by, invitation.used_at is not None) == (newcomer, True)
    assert mail.outbox == []  # no address to prove

    # Used twice: refused, nothing made.
    again = Client()
    assert again.get(f"/invite/{invitation.token}/").status_code == 404
    assert again.post(f"/invite/{invitation.token}/", form("second")).status_code == 404
    assert not User.objects.filter(username="second").exists()
    with pytest.raises(Invalid):
        signups.do_sign_up("third", "t@example.com", NEW_PASSWORD, invitation.token)
    assert User.objects.count() == 1


def test_an_invitation_past_its_expiry_is_refused() -> None:
    late = Invitation.objects.create(expires_at=timezone.now() - timedelta(seconds=1))
    client = Client()
    assert client.get(f"/invite/{late.token}/").status_code == 404
    assert client.post(f"/invite/{late.token}/", form()).status_code == 404
    assert not User.objects.exists()
    assert client.get("/invite/not-a-token/").status_code == 404


def test_an_invitation_tied_to_a_domain_proves_the_address_before_the_account_works() -> None:
    invitation = Invitation.objects.create(email_domain="example.com")
    client = Client()
    wrong = client.post(f"/invite/{invitation.token}/", form(email="me@elsewhere.org"))
    assert wrong.status_code == 400
    assert "an address at example.com" in wrong.content.decode()
    assert not User.objects.exists()
    invitation.refresh_from_db()
    assert invitation.used_at is None  # still the invitee's

    sent = client.post(f"/invite/{invitation.token}/", form(email="Me@Example.COM"))
    assert sent.status_code == 200
    assert "Check your mail" in sent.content.decode()
    waiting = User.objects.get(username="newcomer")
    assert not waiting.is_active
    assert "_auth_user_id" not in client.session
    # It cannot log in until confirmed.
    other = Client()
    other.post("/login/", {"username": "newcomer", "password": NEW_PASSWORD})
    assert "_auth_user_id" not in other.session

    link = mailed_link()
    confirmed = Client()
    assert confirmed.get(link).status_code == 302
    waiting.refresh_from_db()
    assert waiting.is_active
    assert int(confirmed.session["_auth_user_id"]) == waiting.pk
    # The link works once; a staff member's later deactivation is not undone by it.
    User.objects.filter(pk=waiting.pk).update(is_active=False)
    assert Client().get(link).status_code == 404
    assert not User.objects.get(pk=waiting.pk).is_active


def test_without_signup_domains_nobody_signs_up_alone() -> None:
    client = Client()
    assert client.get("/signup/").status_code == 404
    assert client.post("/signup/", form()).status_code == 404
    assert "Make an account" not in client.get("/login/").content.decode()
    assert not User.objects.exists()


@override_settings(SIGNUP_DOMAINS=["example.com"])
def test_signup_domains_let_their_addresses_sign_up_confirmed_by_mail() -> None:
    client = Client()
    assert "Make an account" in client.get("/login/").content.decode()
    refused = client.post("/signup/", form(email="someone@example.com.evil.org"))
    assert refused.status_code == 400
    assert "ask for an invitation" in refused.content.decode()
    assert not User.objects.exists()
    assert client.post("/signup/", form()).status_code == 200
    assert not User.objects.get(username="newcomer").is_active
    assert Client().get(mailed_link()).status_code == 302
    assert User.objects.get(username="newcomer").is_active


def test_a_bad_or_forged_confirmation_link_does_nothing() -> None:
    user = User.objects.create_user("waiting", "w@example.com", NEW_PASSWORD, is_active=False)
    client = Client()
    for path in (
        "/signup/confirm/MQ/forged-token/",
        "/signup/confirm/!!/x/",
        "/signup/confirm/OTk5OTk5OTk5OTk5OTk5OTk5/x/",
    ):
        assert client.get(path).status_code == 404
    user.refresh_from_db()
    assert not user.is_active


@override_settings(
    SIGNUP_DOMAINS=["example.com"], OIDC_SERVER_URL="http://127.0.0.1:9/o", LOCAL_LOGIN="superusers"
)
def test_with_passwords_for_superusers_only_people_come_through_the_provider() -> None:
    invitation = Invitation.objects.create()
    client = Client()
    for path in (f"/invite/{invitation.token}/", "/signup/"):
        response = client.post(path, form())
        assert response.status_code in (403, 404)
    assert not User.objects.exists()


def test_staff_make_an_invitation_and_find_its_link_in_the_admin(admin_client: Client) -> None:
    group = Group.objects.create(name="writers")
    response = admin_client.post(
        "/admin/streaming/invitation/add/",
        {
            "note": "for Ada",
            "expires_at_0": (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%d"),
            "expires_at_1": "12:00:00",
            "email_domain": "example.com",
            "groups": [str(group.pk)],
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    invitation = Invitation.objects.get()
    assert invitation.created_by is not None
    assert invitation.created_by.username == "admin"
    page = admin_client.get(f"/admin/streaming/invitation/{invitation.pk}/change/")
    assert f"/invite/{invitation.token}/" in page.content.decode()
