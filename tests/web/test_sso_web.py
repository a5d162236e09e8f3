"""Single sign-on's edges over HTTP (the sign-in itself, against a real provider in
Chromium: tests/browser/test_sso_browser.py): what the login page offers, what the sign-in
URLs accept, and how a sign-in's claims are written to the account."""

import pytest
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.models import SocialAccount, SocialLogin
from django.contrib.auth.models import Group, User
from django.test import Client, RequestFactory, override_settings

from streaming import sso
from streaming.groups import GroupAccess
from streaming.services import memberships
from tests.support.users import PASSWORD

pytestmark = pytest.mark.django_db

SSO = {"OIDC_SERVER_URL": "http://127.0.0.1:9/o", "OIDC_NAME": "Acme"}


def test_login_page_without_a_provider_offers_the_form_only(client: Client) -> None:
    page = client.get("/login/").content.decode()
    assert "Sign in with" not in page
    assert 'name="password"' in page
    assert client.post("/accounts/oidc/sso/login/").status_code == 404


@override_settings(**SSO)
def test_login_page_with_a_provider_offers_both(client: Client) -> None:
    page = client.get("/login/").content.decode()
    assert "Sign in with Acme" in page
    assert 'action="/accounts/oidc/sso/login/"' in page
    assert "<details" not in page  # the local form is everyone's


@override_settings(**SSO)
def test_sign_in_starts_by_post_only_and_only_for_the_configured_provider(
    client: Client,
) -> None:
    assert client.get("/accounts/oidc/sso/login/").status_code == 405
    # Another site's page can post the form, but not with this browser's CSRF token.
    assert Client(enforce_csrf_checks=True).post("/accounts/oidc/sso/login/").status_code == 403
    assert client.post("/accounts/oidc/other/login/").status_code == 404
    assert client.get("/accounts/oidc/other/login/callback/").status_code == 404


@override_settings(**SSO, LOCAL_LOGIN="superusers")
def test_local_form_for_superusers_only_refuses_others_as_a_wrong_password(
    client: Client, user: User
) -> None:
    page = client.get("/login/").content.decode()
    assert "Administrators: log in with a password" in page
    refused = client.post("/login/", {"username": user.username, "password": PASSWORD})
    assert refused.status_code == 200
    assert "correct username and password" in refused.content.decode()
    assert "_auth_user_id" not in client.session  # not logged in
    User.objects.create_superuser("root", password=PASSWORD)
    assert client.post("/login/", {"username": "root", "password": PASSWORD}).status_code == 302


@override_settings(LOCAL_LOGIN="superusers")
def test_local_form_stays_everyones_while_no_provider_is_configured(
    client: Client, user: User
) -> None:
    response = client.post("/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302


def test_claims_join_and_leave_only_the_groups_marked_as_the_providers(user: User) -> None:
    synced = [Group.objects.create(name=name) for name in ("eng", "ml")]
    for group in synced:
        GroupAccess.objects.create(group=group, from_provider=True)
    by_hand = Group.objects.create(name="keepers")
    GroupAccess.objects.create(group=Group.objects.create(name="off"), from_provider=False)
    user.groups.add(by_hand, synced[1])

    memberships.do_sync(
        user,
        memberships.Claims(
            email="new@example.com",
            first_name="Ada",
            last_name="",
            groups=frozenset({"eng", "off", "nobody", "keepers"}),
        ),
    )
    user.refresh_from_db()
    # ml left (the claim no longer names it), eng joined; keepers and off are staff's.
    assert set(user.groups.values_list("name", flat=True)) == {"eng", "keepers"}
    assert not Group.objects.filter(name="nobody").exists()
    # An empty claim leaves what the account has (the provider said nothing of it).
    assert (user.email, user.first_name) == ("new@example.com", "Ada")
    assert user.last_name == ""


def test_no_groups_claim_leaves_every_group_to_staff(user: User) -> None:
    group = Group.objects.create(name="eng")
    GroupAccess.objects.create(group=group, from_provider=True)
    user.groups.add(group)
    memberships.do_sync(
        user, memberships.Claims(email="", first_name="", last_name="", groups=None)
    )
    assert list(user.groups.values_list("name", flat=True)) == ["eng"]


@override_settings(
    **SSO,
    HTTPS=True,
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    ALLOWED_HOSTS=["chat.example.com"],
)
def test_redirect_uri_behind_an_https_proxy_is_the_public_https_one(rf: RequestFactory) -> None:
    # As nginx passes a request on (deploy/nginx.conf): the public Host, and the scheme in
    # X-Forwarded-Proto. The provider compares this URI with the one registered there.
    request = rf.post(
        "/accounts/oidc/sso/login/",
        HTTP_HOST="chat.example.com",
        HTTP_X_FORWARDED_PROTO="https",
    )
    uri = sso.SsoAdapter(request, "sso").get_callback_url(request, None)
    assert uri == "https://chat.example.com/accounts/oidc/sso/login/callback/"


def test_only_a_sign_in_whose_userinfo_names_the_tokens_person_gets_through(
    rf: RequestFactory,
) -> None:
    adapter = sso.SocialAccountAdapter()
    request = rf.get("/accounts/oidc/sso/login/callback/")

    def login(process: str, **parts: dict[str, str]) -> SocialLogin:
        made = SocialLogin(account=SocialAccount(provider="sso", uid="1", extra_data=parts))
        made.state = {"process": process}
        return made

    adapter.pre_social_login(request, login("login", id_token={"sub": "1"}, userinfo={"sub": "1"}))
    for refused in (
        # allauth's "connect" would tie this identity to whoever is signed in.
        login("connect", id_token={"sub": "1"}, userinfo={"sub": "1"}),
        login("login", id_token={"sub": "1"}, userinfo={"sub": "2"}),
    ):
        with pytest.raises(ImmediateHttpResponse) as page:
            adapter.pre_social_login(request, refused)
        assert page.value.response.status_code == 400


@override_settings(OIDC_GROUPS_CLAIM="groups")
def test_group_paths_are_matched_whole_never_by_their_last_part() -> None:
    claims = sso._claims({"groups": ["/staff/ml", "/contractors/eng", "plain"]})
    assert claims.groups == frozenset({"staff/ml", "contractors/eng", "plain"})


@override_settings(**SSO, LOCAL_LOGIN="superusers")
def test_the_admins_login_keeps_the_same_rule(client: Client) -> None:
    User.objects.create_user("staffer", password=PASSWORD, is_staff=True)
    refused = client.post("/admin/login/", {"username": "staffer", "password": PASSWORD})
    assert refused.status_code == 200
    assert "_auth_user_id" not in client.session
    User.objects.create_superuser("root", password=PASSWORD)
    assert (
        client.post("/admin/login/", {"username": "root", "password": PASSWORD}).status_code == 302
    )
