"""Login throttling and HTTPS hardening, against real daphne processes over real HTTP.

Each address a test logs in "from" is a real source address on loopback (127.0.0.x):
the server sees it on the socket, as it would see a person's. Time passing is the
attempts' recorded times moved back in the database, which is all the server reads.
"""

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.cookies import SimpleCookie

import httpx
import pytest
from axes.models import AccessAttempt, AccessLog
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db.models import F, Sum
from websockets.asyncio.client import connect
from websockets.typing import Origin

from streaming.models import Conversation
from tests.support.servers import ROOT, DaphneServer
from tests.support.users import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

WRONG = "Please enter a correct username and password."
PAUSED = "Too many failed log-ins, to this account or from your address"
DEFAULT_LIMIT = 5
LONG_SECRET_KEY = "x" * 20 + "-a-long-random-looking-secret-key-for-check-deploy-0123456789"
SECURITY_VARIABLES = (
    "HTTPS",
    "DEBUG",
    "HSTS_SECONDS",
    "HSTS_INCLUDE_SUBDOMAINS",
    "HSTS_PRELOAD",
    "ALLOWED_HOSTS",
)


@pytest.fixture
def server(live_servers: Callable[..., list[DaphneServer]]) -> Iterator[DaphneServer]:
    """One daphne process with the settings' defaults."""
    (daphne,) = live_servers(1)
    yield daphne
    print(f"--- daphne log ---\n{daphne.log()}")


@pytest.fixture
def client_from() -> Iterator[Callable[[DaphneServer, str], httpx.Client]]:
    """HTTP clients of ``server`` whose connections come from the given loopback address."""
    clients: list[httpx.Client] = []

    def _client(server: DaphneServer, address: str = "127.0.0.1") -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=address)
        client = httpx.Client(base_url=server.url, transport=transport, timeout=15)
        clients.append(client)
        return client

    yield _client
    for client in clients:
        client.close()


def log_in(
    client: httpx.Client, username: str, password: str, path: str = "/login/", **headers: str
) -> httpx.Response:
    """Submit the login form at ``path`` as a browser would: its page first, then the form."""
    client.get(path, headers=headers).raise_for_status()
    form = {
        "username": username,
        "password": password,
        "csrfmiddlewaretoken": client.cookies["csrftoken"],
    }
    return client.post(path, data=form, headers=headers)


def fail_until_locked(client: httpx.Client, username: str, limit: int = DEFAULT_LIMIT) -> None:
    """Wrong passwords: refused as wrong ``limit - 1`` times, then the lockout page."""
    for _ in range(limit - 1):
        response = log_in(client, username, "not the password")
        assert response.status_code == 200
        assert WRONG in response.text
        assert PAUSED not in response.text
    locked = log_in(client, username, "not the password")
    assert locked.status_code == 429, locked.text
    assert PAUSED in locked.text


def logged_in(client: httpx.Client) -> bool:
    """Whether the client's session is logged in: the chat list opens instead of the login."""
    response = client.get("/")
    return response.status_code == 200


def logged_in_user_ids() -> set[str | None]:
    return {session.get_decoded().get("_auth_user_id") for session in Session.objects.all()}


def counted_failures(**lookup: str) -> int:
    total = AccessAttempt.objects.filter(**lookup).aggregate(n=Sum("failures_since_start"))
    return int(total["n"])


def test_wrong_passwords_lock_the_account_and_the_address(
    server: DaphneServer,
    client_from: Callable[[DaphneServer, str], httpx.Client],
    user: User,
    other_user: User,
) -> None:
    here = client_from(server, "127.0.0.1")
    elsewhere = client_from(server, "127.0.0.2")

    fail_until_locked(here, "alice")

    # The right password is refused too, with the same page, and logs nobody in.
    refused = log_in(here, "alice", PASSWORD)
    assert refused.status_code == 429
    assert PAUSED in refused.text
    assert not logged_in(here)
    # The account is paused from every address...
    assert log_in(elsewhere, "alice", PASSWORD).status_code == 429
    assert not logged_in(elsewhere)
    # ...and the address for every account...
    assert log_in(here, "mallory", PASSWORD).status_code == 429
    assert not logged_in(here)
    # ...but another account from another address is neither.
    assert log_in(elsewhere, "mallory", PASSWORD).status_code == 302
    assert logged_in(elsewhere)

    assert logged_in_user_ids() == {str(other_user.pk)}
    assert not AccessLog.objects.filter(username="alice").exists()
    # Refused attempts during the lockout are not counted: it ends when the page said.
    assert counted_failures(username="alice") == DEFAULT_LIMIT
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


def test_lockout_page_is_the_login_page_saying_until_when(
    server: DaphneServer, client_from: Callable[[DaphneServer, str], httpx.Client], user: User
) -> None:
    client = client_from(server, "127.0.0.1")
    fail_until_locked(client, "alice")

    page = log_in(client, "alice", PASSWORD)

    last_failure = AccessAttempt.objects.get(username="alice").attempt_time
    until = last_failure + timedelta(minutes=15)
    assert page.status_code == 429
    assert page.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in page.headers
    text = " ".join(page.text.split())
    # Rounded up: at the minute shown, the pause is over.
    shown = (until + timedelta(minutes=1)).replace(second=0, microsecond=0)
    assert re.search(
        rf"logging in is paused until {shown:%H:%M} UTC \(in 1[45] minutes\)\.", text
    ), text
    assert "ask a staff member to lift the pause" in text
    # The login form again, the name kept, the password not.
    assert "<h1>Log in</h1>" in page.text
    assert 'name="username" value="alice"' in page.text
    assert PASSWORD not in page.text
    assert 'action="/login/"' in page.text


def test_lockout_ends_after_the_cool_off(
    live_servers: Callable[..., list[DaphneServer]],
    client_from: Callable[[DaphneServer, str], httpx.Client],
    user: User,
) -> None:
    (server,) = live_servers(1, LOGIN_FAILURE_LIMIT="3", LOGIN_COOLOFF_MINUTES="10")
    client = client_from(server, "127.0.0.1")
    fail_until_locked(client, "alice", limit=3)

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=9))
    assert log_in(client, "alice", PASSWORD).status_code == 429  # a minute to go
    assert not logged_in(client)

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=1, seconds=1))
    assert log_in(client, "alice", PASSWORD).status_code == 302
    assert logged_in(client)
    assert logged_in_user_ids() == {str(user.pk)}


def test_staff_unlock_in_the_admin_lets_the_user_in(
    server: DaphneServer,
    client_from: Callable[[DaphneServer, str], httpx.Client],
    user: User,
    django_user_model: type[User],
) -> None:
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    locked_out = client_from(server, "127.0.0.1")
    fail_until_locked(locked_out, "alice")
    # Staff log in from another address: this one is paused for everyone.
    staff = client_from(server, "127.0.0.3")
    assert log_in(staff, "root", PASSWORD, path="/admin/login/?next=/admin/").status_code == 302

    listing = staff.get("/admin/axes/accessattempt/", params={"q": "alice"})
    assert listing.status_code == 200
    ids = re.findall(r'name="_selected_action" value="(\d+)"', listing.text)
    assert ids == [str(AccessAttempt.objects.get(username="alice").pk)]
    action = {
        "action": "delete_selected",
        "_selected_action": ids,
        "csrfmiddlewaretoken": staff.cookies["csrftoken"],
    }
    confirm = staff.post("/admin/axes/accessattempt/?q=alice", data=action)
    assert confirm.status_code == 200
    assert "Are you sure you want to delete the selected access attempt" in confirm.text
    assert AccessAttempt.objects.exists()  # asking is not doing
    done = staff.post("/admin/axes/accessattempt/?q=alice", data={**action, "post": "yes"})
    assert done.status_code == 302

    assert not AccessAttempt.objects.exists()
    assert log_in(locked_out, "alice", PASSWORD).status_code == 302
    assert logged_in(locked_out)


def spray(client: httpx.Client, addresses: list[str], header: str) -> None:
    """One wrong password for each of many made-up accounts, each naming another address."""
    for index, address in enumerate(addresses):
        response = log_in(client, f"nobody{index}", "not the password", **{header: address})
        assert response.status_code == (429 if index == len(addresses) - 1 else 200)


def test_address_headers_are_ignored_by_default(
    server: DaphneServer,
    client_from: Callable[[DaphneServer, str], httpx.Client],
    other_user: User,
) -> None:
    client = client_from(server, "127.0.0.1")
    made_up = [f"198.51.100.{n}" for n in range(DEFAULT_LIMIT)]

    # A client naming a new address in every request is still one address: its socket's.
    spray(client, made_up, "X-Forwarded-For")
    refused = log_in(client, "mallory", PASSWORD, **{"X-Real-IP": "198.51.100.99"})

    assert refused.status_code == 429
    assert not logged_in(client)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


def test_trusted_proxy_header_names_the_client_address(
    live_servers: Callable[..., list[DaphneServer]],
    client_from: Callable[[DaphneServer, str], httpx.Client],
    other_user: User,
) -> None:
    (server,) = live_servers(1, CLIENT_IP_HEADER="X-Forwarded-For")
    proxy = client_from(server, "127.0.0.1")
    # What the client wrote comes first; the proxy appends the address it saw, last.
    forged = [f"198.51.100.{n}, 203.0.113.7" for n in range(DEFAULT_LIMIT)]

    spray(proxy, forged, "X-Forwarded-For")

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}
    paused = log_in(proxy, "mallory", PASSWORD, **{"X-Forwarded-For": "203.0.113.7"})
    assert paused.status_code == 429
    # Another client behind the same proxy (the same socket address) is not paused.
    other = log_in(proxy, "mallory", PASSWORD, **{"X-Forwarded-For": "203.0.113.8"})
    assert other.status_code == 302


def check_deploy(**environ: str) -> subprocess.CompletedProcess[str]:
    """`manage.py check --deploy` on the production settings, failing on any warning."""
    env = {k: v for k, v in os.environ.items() if k not in SECURITY_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE="chatsite.settings", SECRET_KEY=LONG_SECRET_KEY, **environ)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.django_db(transaction=False)
def test_check_deploy_is_clean_with_https() -> None:
    result = check_deploy(HTTPS="true", DEBUG="false")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db(transaction=False)
def test_check_deploy_warns_without_https() -> None:
    result = check_deploy(DEBUG="false")
    assert result.returncode != 0
    for warning in ("W004", "W008", "W012", "W016"):
        assert f"(security.{warning})" in result.stderr, result.stderr


def cookies_set(response: httpx.Response) -> dict[str, SimpleCookie]:
    """Every cookie the response sets, by name, with its attributes."""
    cookies = {}
    for header in response.headers.get_list("set-cookie"):
        cookie = SimpleCookie(header)
        cookies.update({name: cookie for name in cookie})
    return cookies


def test_without_https_plain_http_is_served_as_before(
    server: DaphneServer, client_from: Callable[[DaphneServer, str], httpx.Client]
) -> None:
    page = client_from(server, "127.0.0.1").get("/login/")

    assert page.status_code == 200
    assert "Strict-Transport-Security" not in page.headers
    assert not cookies_set(page)["csrftoken"]["csrftoken"]["secure"]


def test_https_redirects_plain_http_and_secures_cookies_and_the_socket(
    live_servers: Callable[..., list[DaphneServer]],
    client_from: Callable[[DaphneServer, str], httpx.Client],
    user: User,
) -> None:
    (server,) = live_servers(1, HTTPS="true")
    conversation = Conversation.objects.create(owner=user, title="Behind the proxy")
    client = client_from(server, "127.0.0.1")
    site = f"https://127.0.0.1:{server.port}"
    via_proxy = {"X-Forwarded-Proto": "https"}

    plain = client.get("/login/?next=/")
    assert plain.status_code == 301
    assert plain.headers["location"] == f"{site}/login/?next=/"
    assert "set-cookie" not in plain.headers

    page = client.get("/login/", headers=via_proxy)
    assert page.status_code == 200
    assert page.headers["strict-transport-security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )
    csrf = cookies_set(page)["csrftoken"]["csrftoken"]
    assert csrf["secure"]
    # httpx keeps Secure cookies for https:// URLs only: send them by hand, as the proxy would.
    form = {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": csrf.value}
    headers = {**via_proxy, "Origin": site, "Cookie": f"csrftoken={csrf.value}"}
    login = client.post("/login/", data=form, headers=headers)
    assert login.status_code == 302
    assert login.headers["location"] == "/"
    session = cookies_set(login)["sessionid"]["sessionid"]
    assert session["secure"]
    assert session["httponly"]

    async def open_socket() -> dict[str, object]:
        async with connect(
            f"{server.ws_url}/ws/conversations/{conversation.id}/",
            origin=Origin(site),
            additional_headers={**via_proxy, "Cookie": f"sessionid={session.value}"},
            proxy=None,
            open_timeout=10,
        ) as socket:
            frame: dict[str, object] = json.loads(await asyncio.wait_for(socket.recv(), 10))
            return frame

    snapshot = asyncio.run(open_socket())
    assert snapshot["type"] == "snapshot"
    assert snapshot["title"] == "Behind the proxy"
