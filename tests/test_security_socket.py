"""The WebSocket against an attacker: only the site's own origin, and no input that kills it.

The origin rule is checked three ways: as a table against Django's own CSRF check, through
the real ASGI application, and against real daphne processes with a real WebSocket client
and a real Chromium page served from another port.
"""

import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from playwright.sync_api import Page, expect, sync_playwright
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from streaming.models import Conversation, Message
from streaming.origins import origin_allowed
from tests.conftest import session_cookie, user_message
from tests.servers import DaphneServer, free_port, service_missing
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, log_in, orm

pytestmark = pytest.mark.django_db(transaction=True)

SITE = "127.0.0.1:8300"
TRUSTED = ["https://chat.example.com", "https://*.trusted.example"]

# --- the rule, case by case, next to Django's CSRF check ------------------------------

# (scheme of the socket, headers, expected) for ALLOWED_HOSTS 127.0.0.1 and chat.example.com.
ORIGIN_CASES = [
    ("ws", {"Host": SITE, "Origin": f"http://{SITE}"}, True),
    ("ws", {"Host": SITE, "Origin": "http://127.0.0.1:8399"}, False),  # another port
    ("ws", {"Host": SITE, "Origin": f"https://{SITE}"}, False),  # another scheme
    ("ws", {"Host": SITE, "Origin": "http://127.0.0.1"}, False),  # no port
    ("ws", {"Host": SITE, "Origin": "http://evil.example"}, False),
    ("ws", {"Host": SITE, "Origin": f"http://{SITE}.evil.example"}, False),
    ("ws", {"Host": SITE, "Origin": "null"}, False),
    ("ws", {"Host": "evil.example", "Origin": "http://evil.example"}, False),  # not allowed
    ("wss", {"Host": "chat.example.com", "Origin": "https://chat.example.com"}, True),
    ("wss", {"Host": "chat.example.com", "Origin": "http://chat.example.com"}, False),
    ("ws", {"Host": SITE, "Origin": "https://chat.example.com"}, True),  # trusted, exactly
    ("ws", {"Host": SITE, "Origin": "https://a.trusted.example"}, True),  # trusted wildcard
    ("ws", {"Host": SITE, "Origin": "https://trusted.example"}, True),
    ("ws", {"Host": SITE, "Origin": "http://a.trusted.example"}, False),  # wildcard's scheme
    ("ws", {"Host": SITE, "Origin": "https://a.trusted.example.evil"}, False),
    ("ws", {"Host": SITE, "Origin": "https://a.trusted.example:8443"}, False),
    # A TLS-terminating proxy says so only when SECURE_PROXY_SSL_HEADER names its header.
    ("ws", {"Host": SITE, "Origin": f"https://{SITE}", "X-Forwarded-Proto": "https"}, "proxy"),
    ("ws", {"Host": SITE, "Origin": f"http://{SITE}", "X-Forwarded-Proto": "https"}, "direct"),
    ("ws", {"Host": SITE, "Origin": f"https://{SITE}", "X-Forwarded-Proto": "http"}, False),
    ("ws", {"Host": SITE, "Origin": f"https://{SITE}", "X_Forwarded_Proto": "https"}, False),
]


@pytest.fixture
def origin_settings(settings: Any) -> Any:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "chat.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = TRUSTED
    settings.DEBUG = False
    return settings


def websocket_scope(scheme: str, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "websocket",
        "scheme": scheme,
        "path": "/ws/conversations/x/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


def django_csrf_accepts(scope: dict[str, Any]) -> bool:
    """Whether Django would accept a form post with this handshake's scheme and headers.

    Django's own ASGI request is built from the same headers, and the post carries a valid
    CSRF token, so only the Host (ALLOWED_HOSTS) and the CSRF origin check decide.
    """
    token = "a" * 32
    request = ASGIRequest(
        {
            **scope,
            "type": "http",
            "method": "POST",
            "scheme": "https" if scope["scheme"] == "wss" else "http",
            "headers": [*scope["headers"], (b"x-csrftoken", token.encode())],
        },
        io.BytesIO(),
    )
    request.COOKIES[django_settings.CSRF_COOKIE_NAME] = token
    try:
        request.get_host()
    except DisallowedHost:  # CommonMiddleware refuses the request before the CSRF check
        return False
    middleware = CsrfViewMiddleware(lambda request: HttpResponse())
    return middleware.process_view(request, lambda request: HttpResponse(), (), {}) is None


@pytest.mark.parametrize(("scheme", "headers", "expected"), ORIGIN_CASES)
@pytest.mark.parametrize("proxy_header", [False, True], ids=["direct", "proxy"])
def test_origin_rule_is_djangos_csrf_origin_rule(
    origin_settings: Any,
    scheme: str,
    headers: dict[str, str],
    expected: bool | str,
    proxy_header: bool,
) -> None:
    if proxy_header:
        origin_settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    if isinstance(expected, str):  # right only behind a proxy, or only without one
        expected = expected == ("proxy" if proxy_header else "direct")
    scope = websocket_scope(scheme, headers)

    assert origin_allowed(scope) is expected
    assert django_csrf_accepts(scope) is expected


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": SITE},  # no Origin: Django's CSRF check would fall back to the token
        {"Host": SITE, "Origin": f"http://{SITE}", "origin": f"http://{SITE}"},  # two
        {"Origin": f"http://{SITE}"},  # no Host
    ],
    ids=["missing", "repeated", "no-host"],
)
def test_origin_missing_repeated_or_without_host_is_refused(
    origin_settings: Any, headers: dict[str, str]
) -> None:
    scope = websocket_scope("ws", {})
    scope["headers"] = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    assert not origin_allowed(scope)


def test_origin_with_forwarded_host_counts_only_when_django_would(origin_settings: Any) -> None:
    headers = {"Host": SITE, "X-Forwarded-Host": "chat.example.com"}
    scope = websocket_scope("ws", {**headers, "Origin": "http://chat.example.com"})
    assert not origin_allowed(scope)
    origin_settings.USE_X_FORWARDED_HOST = True
    assert origin_allowed(scope)


def test_origin_in_debug_without_allowed_hosts_is_localhost_only(origin_settings: Any) -> None:
    origin_settings.DEBUG = True
    origin_settings.ALLOWED_HOSTS = []
    own = websocket_scope("ws", {"Host": "localhost:8000", "Origin": "http://localhost:8000"})
    other = websocket_scope("ws", {"Host": "example.com", "Origin": "http://example.com"})
    assert origin_allowed(own)
    assert not origin_allowed(other)


# --- through the real ASGI application -------------------------------------------------


async def communicate(path: str, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    from chatsite.asgi import application

    return WebsocketCommunicator(application, path, headers=headers)


async def test_socket_from_another_port_is_refused_before_accept(
    conversation: Conversation, user: User
) -> None:
    cookie = await sync_to_async(session_cookie)(user)
    cookie_header = (b"cookie", f"sessionid={cookie}".encode())
    own = await communicate(
        f"/ws/conversations/{conversation.id}/",
        [(b"host", b"localhost:8300"), (b"origin", b"http://localhost:8300"), cookie_header],
    )
    other = await communicate(
        f"/ws/conversations/{conversation.id}/",
        [(b"host", b"localhost:8300"), (b"origin", b"http://localhost:8399"), cookie_header],
    )

    assert (await own.connect(timeout=5))[0]
    assert (await own.receive_json_from(timeout=5))["type"] == "snapshot"
    assert await other.connect(timeout=5) == (False, 1000)  # closed before accept: HTTP 403
    await own.disconnect()


@pytest.mark.parametrize(
    "path", ["/ws/nothing/", "/ws/conversations/not-a-uuid/", "/elsewhere", "/ws/conversations/"]
)
async def test_unknown_socket_path_is_refused_before_accept(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    communicator = await communicate(
        path, [(b"host", b"localhost"), (b"origin", b"http://localhost")]
    )
    assert await communicator.connect(timeout=5) == (False, 1000)
    assert not [r for r in caplog.records if r.levelname in {"ERROR", "CRITICAL"}]


# --- real daphne, real WebSocket client ------------------------------------------------


@pytest.fixture
def server(live_servers: Callable[..., list[DaphneServer]]) -> Iterator[DaphneServer]:
    """One daphne process that trusts one extra origin, as CSRF_TRUSTED_ORIGINS says."""
    (daphne,) = live_servers(1, CSRF_TRUSTED_ORIGINS="https://chat.example.com")
    yield daphne
    print(f"--- daphne log ---\n{daphne.log()}")  # shown when the test failed


@pytest.fixture
def cookie(user: User) -> str:
    return session_cookie(user)


async def open_socket(
    server: DaphneServer, path: str, *, origin: str | None, cookie: str
) -> ClientConnection:
    return await connect(
        f"{server.ws_url}{path}",
        origin=Origin(origin) if origin is not None else None,
        additional_headers={"Cookie": f"sessionid={cookie}"},
        proxy=None,
        open_timeout=10,
    )


def assert_no_traceback(server: DaphneServer) -> None:
    log = server.log()
    assert "Traceback" not in log, log
    assert "Exception inside application" not in log, log


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("{site}", True),
        ("http://127.0.0.1:{other_port}", False),
        ("https://127.0.0.1:{port}", False),
        ("http://localhost:{port}", False),  # an allowed host, but not the one connected to
        (None, False),
        ("null", False),
        ("https://chat.example.com", True),  # in CSRF_TRUSTED_ORIGINS
    ],
)
async def test_live_socket_origin(
    server: DaphneServer,
    conversation: Conversation,
    cookie: str,
    origin: str | None,
    accepted: bool,
) -> None:
    if origin is not None:
        origin = origin.format(site=server.url, port=server.port, other_port=free_port())
    path = f"/ws/conversations/{conversation.id}/"

    if accepted:
        async with await open_socket(server, path, origin=origin, cookie=cookie) as ws:
            assert json.loads(await ws.recv())["type"] == "snapshot"
    else:
        with pytest.raises(InvalidStatus) as refused:
            await open_socket(server, path, origin=origin, cookie=cookie)
        assert refused.value.response.status_code == 403
        assert f"WebSocket refused: origin {origin or ''!r}" in server.log()
    assert_no_traceback(server)


async def test_live_unknown_paths_are_refused_without_a_traceback(
    server: DaphneServer, cookie: str
) -> None:
    for path in ("/ws/nothing/", "/ws/conversations/not-a-uuid/", "/nothing"):
        with pytest.raises(InvalidStatus) as refused:
            await open_socket(server, path, origin=server.url, cookie=cookie)
        assert refused.value.response.status_code == 403, path
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
        for path in ("/ws/nothing/", "/ws/conversations/not-a-uuid/", "/nothing"):
            assert (await http.get(path)).status_code == 404, path
    assert_no_traceback(server)


# --- in a real browser ----------------------------------------------------------------


@contextmanager
def logged_in_page(server: DaphneServer, user: User, next_path: str = "/") -> Iterator[Page]:
    """A Chromium page, logged in as ``user`` through the site's form, at ``next_path``."""
    if not CHROMIUM.exists():
        service_missing("Chromium", f"{CHROMIUM} does not exist; apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{server.url}/login/?next={next_path}")
            log_in(page, user.username)
            expect(page).to_have_url(f"{server.url}{next_path}")
            yield page
        finally:
            browser.close()


class OtherSite:
    """A page on another port of the same host that opens the chat's socket."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.page = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def serve(self, socket_url: str) -> None:
        """Serve a page that opens ``socket_url``, reads the snapshot and posts as the user."""
        frame = json.dumps(user_message("posted by another site sim:tokens=2"))
        self.page = f"""<!doctype html><title>another site</title><pre id="out">waiting</pre>
<script>
const out = document.getElementById("out");
const ws = new WebSocket({json.dumps(socket_url)});
ws.onmessage = (event) => {{
  const type = JSON.parse(event.data).type;
  if (type === "snapshot") {{
    out.textContent = "read snapshot";
    ws.send({json.dumps(frame)});
  }}
  if (type === "message") out.textContent = "read snapshot, posted";
}};
ws.onclose = (event) => {{
  if (out.textContent === "waiting") out.textContent = "closed " + event.code;
}};
</script>"""


@pytest.fixture
def other_site() -> Iterator[OtherSite]:
    site = OtherSite(free_port())
    site.thread.start()
    yield site
    site.httpd.shutdown()
    site.httpd.server_close()


@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted"])
def test_page_on_another_port_cannot_use_the_socket(
    live_servers: Callable[..., list[DaphneServer]],
    other_site: OtherSite,
    user: User,
    tmp_path: Path,
    trusted: bool,
) -> None:
    """A logged-in browser opens another port's page: its socket is refused, unless trusted.

    The trusted run proves the page would read and post if the server let it.
    """
    extra = {"CSRF_TRUSTED_ORIGINS": other_site.url} if trusted else {}
    (server,) = live_servers(1, **extra)
    conversation = orm(lambda: Conversation.objects.create(owner=user))
    other_site.serve(f"{server.ws_url}/ws/conversations/{conversation.id}/")

    with logged_in_page(server, user) as page:
        page.goto(other_site.url)
        out = page.locator("#out")
        if trusted:
            expect(out).to_have_text("read snapshot, posted")
        else:
            expect(out).to_have_text("closed 1006")
        page.screenshot(path=tmp_path / "other-site.png")

        # The site's own page still talks to the same socket.
        page.goto(f"{server.url}/c/{conversation.id}/")
        expect(page.locator("#chat")).to_have_attribute("data-connection", "open")

    posted = orm(
        lambda: list(Message.objects.filter(role="user").values_list("content", flat=True))
    )
    if trusted:
        assert posted == ["posted by another site sim:tokens=2"]
    else:
        assert posted == []
        assert f"WebSocket refused: origin '{other_site.url}'" in server.log()
    assert "Traceback" not in server.log()
