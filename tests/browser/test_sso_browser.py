"""Single sign-on in real Chromium, through a real OpenID Connect provider started on a
loopback port (tests/support/oidc_provider, django-oauth-toolkit): no part of the protocol
is mocked. chatsite runs in a real daphne, configured by environment as a company would.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from streaming.groups import GroupAccess
from streaming.models import Conversation
from streaming.simulator import SimulatorThread
from tests.support.browser import chromium, desktop_context, orm, wait_until_connected
from tests.support.identity import PASSWORD as IDP_PASSWORD
from tests.support.identity import IdentityProvider, identity_provider, sign_in_at_provider
from tests.support.servers import DaphneServer
from tests.support.users import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

SIGNED_OUT = "You were signed out. Sign in again to continue."
PEOPLE = {
    "alice": {
        "email": "alice@example.com",
        "given_name": "Alice",
        "family_name": "Liddell",
        # "keepers" is a group staff keep by hand; "root" exists nowhere.
        "groups": ["engineering", "keepers", "root"],
    },
}


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[IdentityProvider]:
    with identity_provider(tmp_path / "idp", PEOPLE) as running:
        yield running
        print(f"--- provider log ---\n{running.log()}")


@pytest.fixture
def groups() -> dict[str, Group]:
    """Two groups whose members come from the provider, and one staff keep by hand."""
    made = {name: Group.objects.create(name=name) for name in ("engineering", "ml", "keepers")}
    for name in ("engineering", "ml"):
        GroupAccess.objects.create(group=made[name], from_provider=True)
    return made


@contextmanager
def browsing(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    provider: IdentityProvider,
    **extra: str,
) -> Iterator[Page]:
    """A page of Chromium on a daphne whose environment points it at ``provider``."""
    port = urlsplit(simulator.base_url).port
    (site,) = live_servers(
        1, OPENAI_BASE_URL="", SIMULATOR_PORT=str(port), **provider.chatsite_env(**extra)
    )
    with chromium() as browser:
        yield desktop_context(browser, site).new_page()


def group_names(user: User) -> set[str]:
    return set(orm(lambda: list(user.groups.values_list("name", flat=True))))


def signed_up() -> User:
    """The one account a sign-in through the provider made."""
    account: SocialAccount = orm(
        lambda: SocialAccount.objects.select_related("user").get(provider="sso")
    )
    user: User = account.user
    return user


def test_first_sign_in_makes_the_account_with_its_groups_and_logout_ends_both_sessions(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    provider: IdentityProvider,
    groups: dict[str, Group],
) -> None:
    # A local account of the same name and address: the provider's claims must not reach it.
    local = orm(lambda: User.objects.create_user("alice", "alice@example.com", PASSWORD))
    with browsing(live_servers, simulator, provider) as page:
        sign_in_at_provider(page, "alice")
        expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
        expect(page.locator(".site-user")).to_have_text("Alice")

        alice = signed_up()
        assert alice.pk != local.pk
        assert alice.username.startswith("alice")
        assert alice.username != "alice"
        assert orm(lambda: User.objects.get(pk=local.pk).has_usable_password())
        assert (alice.email, alice.first_name, alice.last_name) == (
            "alice@example.com",
            "Alice",
            "Liddell",
        )
        assert not alice.has_usable_password()
        assert not alice.is_staff
        assert not alice.is_superuser
        # Only the group marked as the provider's: not the one kept by hand, and no group
        # made for a name nobody created.
        assert group_names(alice) == {"engineering"}
        assert not orm(lambda: Group.objects.filter(name="root").exists())
        # No password of chatsite's to change.
        expect(page.get_by_role("link", name="Password")).to_have_count(0)

        # A chat open in another tab: its socket ends with the session, as any user's.
        conversation = orm(lambda: Conversation.objects.create(owner=alice))
        chat = page.context.new_page()
        chat.goto(f"/c/{conversation.id}/")
        wait_until_connected(chat)

        # Logout ends chatsite's session and the provider's: it sends the browser there and
        # back, and the next sign-in asks for the provider's password again.
        provider.set_groups("alice", ["ml", "keepers"])
        page.get_by_role("button", name="Log out").click()
        expect(chat.get_by_text(SIGNED_OUT)).to_be_visible()
        expect(page.get_by_role("button", name="Sign in with Test Company")).to_be_visible()
        assert urlsplit(page.url).path == "/login/"
        page.goto("/")
        expect(page.get_by_role("button", name="Sign in with Test Company")).to_be_visible()

        sign_in_at_provider(page, "alice")
        expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
        # The groups change took effect at this sign-in, still only among the marked groups.
        assert signed_up().pk == alice.pk  # found again by the provider's subject
        assert group_names(alice) == {"ml"}
        assert orm(lambda: User.objects.count()) == 2


def test_a_sign_in_cannot_be_turned_into_linking_the_identity_to_the_signed_in_account(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    provider: IdentityProvider,
    user: User,
) -> None:
    """allauth's "connect" process, asked for by the request, would tie the provider's
    identity to whoever is signed in; chatsite starts sign-ins only."""
    with browsing(live_servers, simulator, provider) as page:
        page.goto("/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
        # The login page's own form, its action changed to ask for the connect process.
        page.goto("/login/")
        page.locator(".sso-form").evaluate(
            "form => { form.action += '?process=connect'; form.submit(); }"
        )
        expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
        page.get_by_label("Name").fill("alice")
        page.get_by_label("Password").fill(IDP_PASSWORD)
        page.get_by_role("button", name="Sign in at the provider").click()
        expect(page.locator(".site-user")).to_have_text("Alice")
    assert signed_up().pk != user.pk
    assert not orm(lambda: SocialAccount.objects.filter(user=user).exists())


def test_a_sign_in_cancelled_or_unanswered_says_so_and_makes_no_account(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    provider: IdentityProvider,
) -> None:
    with browsing(live_servers, simulator, provider) as page:
        # A callback with a state this browser never started.
        page.goto("/accounts/oidc/sso/login/callback/?code=x&state=forged")
        expect(page.locator("#sso-refused")).to_contain_text("did not complete")
        # The provider sends the browser back with an error, as when a person cancels there.
        page.goto("/login/")
        page.get_by_role("button", name="Sign in with Test Company").click()
        expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
        state = parse_qs(urlsplit(parse_qs(urlsplit(page.url).query)["next"][0]).query)["state"]
        page.goto(f"/accounts/oidc/sso/login/callback/?error=access_denied&state={state[0]}")
        expect(page.locator("#sso-refused")).to_contain_text("did not complete")
        # The provider stops answering before the sign-in starts.
        provider.stop()
        page.goto("/login/")
        page.get_by_role("button", name="Sign in with Test Company").click()
        expect(page.locator("#sso-refused")).to_contain_text("Test Company did not answer")
    assert not orm(lambda: User.objects.filter(username="alice").exists())


def test_a_deactivated_account_cannot_sign_in_through_the_provider(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    provider: IdentityProvider,
) -> None:
    with browsing(live_servers, simulator, provider) as page:
        sign_in_at_provider(page, "alice")
        expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
        orm(lambda: User.objects.filter(username="alice").update(is_active=False))
        page.goto("/")
        expect(page.get_by_role("button", name="Sign in with Test Company")).to_be_visible()
        page.get_by_role("button", name="Sign in with Test Company").click()
        expect(page.locator("#sso-refused")).to_contain_text("deactivated")
        page.goto("/")
        expect(page.get_by_role("button", name="Sign in with Test Company")).to_be_visible()


def test_with_local_login_for_superusers_only_others_cannot_use_a_password(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    provider: IdentityProvider,
    user: User,
) -> None:
    orm(lambda: User.objects.create_superuser("root", password=PASSWORD))
    with browsing(live_servers, simulator, provider, LOCAL_LOGIN="superusers") as page:
        page.goto("/login/")
        expect(page.get_by_label("Username")).to_be_hidden()
        page.get_by_text("Administrators: log in with a password").click()
        # The right password of an account that is not a superuser: refused in the words
        # of a wrong one, so the form tells nothing of it.
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator(".form-errors")).to_contain_text("correct username and password")
        assert urlsplit(page.url).path == "/login/"
        page.get_by_label("Username").fill("root")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
