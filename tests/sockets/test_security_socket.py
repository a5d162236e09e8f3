"""The WebSocket against an attacker: only the site's own origin, and no input that kills it.

The origin rule is checked three ways: as a table against Django's own CSRF check, through
the real ASGI application, and against real daphne processes with a real WebSocket client
and a real Chromium page served from another port. Bad frames go to a real daphne on the
test database; each is answered with an `error` frame, the socket answers the next frame,
and the server's log has no traceback.
"""

import asyncio
import io
import json
import socket
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
from django.test import Client
from playwright.sync_api import Page, expect
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.typing import Origin
from websockets.uri import parse_uri

from streaming.models import Conversation, EarlyStop, Message
from streaming.origins import origin_allowed
from tests.support.browser import chromium, log_in, orm
from tests.support.frames import user_message
from tests.support.servers import DaphneServer, free_port
from tests.support.users import session_cookie
from tests.support.waiting import until

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


UNLIMITED_FRAMES = {"LIMIT_FRAMES_BURST": "100000", "LIMIT_FRAMES_PER_SECOND": "100000"}


@pytest.fixture
def server(live_servers: Callable[..., list[DaphneServer]]) -> Iterator[DaphneServer]:
    """One daphne process that trusts one extra origin, as CSRF_TRUSTED_ORIGINS says.

    The tests here send bad frames back to back, faster than any page: the frame budget
    (tested in test_security_limits.py) is lifted so that each frame is answered.
    """
    (daphne,) = live_servers(1, CSRF_TRUSTED_ORIGINS="https://chat.example.com", **UNLIMITED_FRAMES)
    yield daphne
    print(f"--- daphne log ---\n{daphne.log()}")  # shown when the test failed


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


# --- bad frames on a real daphne -------------------------------------------------------

GOOD_ID = "00000000-0000-4000-8000-000000000000"
NESTED = json.loads("[" * 500 + "]" * 500)  # deep, yet within what the parser reads


def frame(frame_type: str, **fields: Any) -> str:
    return json.dumps({"type": frame_type, **fields})


BAD_FRAMES = [
    ('{"type": ["x"]}', "unknown_type"),
    ('{"type": {}}', "unknown_type"),
    ('{"type": 7}', "unknown_type"),
    ('{"type": null}', "unknown_type"),
    ("[" * 100_000 + "]" * 100_000, "frame_too_long"),
    ("[" * 90_000 + "]" * 90_000, "bad_json"),
    ("[" * 100_000, "bad_json"),
    ('{"a":' * 20_000 + "1" + "}" * 20_000, "bad_json"),
    ("", "bad_json"),
    ("null", "bad_json"),
    (json.dumps(user_message("half a pair: \ud800")), "bad_text"),
    (json.dumps(user_message("a NUL: \x00 here")), "bad_text"),
    (frame("sync", message_id=GOOD_ID, after_seq=2**70), "bad_sync"),
    (frame("sync", message_id=GOOD_ID, after_seq=-1), "bad_sync"),
    (frame("sync", message_id=GOOD_ID, after_seq=1.5), "bad_sync"),
    (frame("sync", message_id={"a": 1}, after_seq=0), "bad_sync"),
    (frame("sync", message_id=5, after_seq=0), "bad_sync"),
    (frame("sync", after_seq=0), "bad_sync"),
    (frame("stop", message_id=5), "bad_stop"),
    (frame("stop", message_id=[GOOD_ID]), "bad_stop"),
    (frame("stop", message_id="not a uuid"), "bad_stop"),
    (frame("stop", client_id="not a uuid"), "bad_stop"),
    (frame("stop", client_id=GOOD_ID, message_id=GOOD_ID), "bad_stop"),
    (frame("retry", message_id=GOOD_ID, client_id=NESTED), "bad_retry"),
    (frame("retry", message_id=[]), "bad_retry"),
    (frame("retry", message_id=NESTED), "bad_retry"),
    (frame("retry"), "bad_retry"),
    (frame("user_message", content="hi", client_id=NESTED), "bad_client_id"),
    (frame("user_message", content="hi", client_id=12), "bad_client_id"),
]


async def test_live_bad_frames_get_an_error_and_the_socket_stays_usable(
    server: DaphneServer, conversation: Conversation, cookie: str
) -> None:
    path = f"/ws/conversations/{conversation.id}/"
    async with await open_socket(server, path, origin=server.url, cookie=cookie) as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
        cases: list[tuple[str | bytes, str]] = [*BAD_FRAMES, (b"\x00binary", "bad_json")]
        for raw, code in cases:
            await ws.send(raw)
            error = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert (error["type"], error["code"]) == ("error", code), (raw[:80], error)
            assert 0 < len(error["message"]) < 200
            # The same socket still answers.
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "pong"

    assert await Message.objects.acount() == 0
    assert await EarlyStop.objects.acount() == 0  # no malformed stop was kept
    assert await Conversation.objects.acount() == 1
    assert_no_traceback(server)


async def test_live_unknown_type_is_echoed_cut_short(
    server: DaphneServer, conversation: Conversation, cookie: str
) -> None:
    long_type = "t" * 150_000  # under MAX_FRAME_CHARS: parsed, then refused by type
    path = f"/ws/conversations/{conversation.id}/"
    async with await open_socket(server, path, origin=server.url, cookie=cookie) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": long_type}))
        error = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "x" * 900_000}))
        too_long = json.loads(await ws.recv())

    assert error["code"] == "unknown_type"
    assert error["message"] == f"Unknown frame type {'t' * 40 + '…'!r}."
    assert too_long["code"] == "frame_too_long"
    assert "xxx" not in too_long["message"]
    assert_no_traceback(server)


# --- a frame for a socket that is closing ----------------------------------------------


def raw_handshake(
    server: DaphneServer, path: str, cookie: str
) -> tuple[socket.socket, ClientProtocol]:
    """A WebSocket opened over a plain socket that reads nothing after the handshake.

    The receive buffer is small, so the server's frames pile up in its own write buffer.
    """
    protocol = ClientProtocol(parse_uri(f"{server.ws_url}{path}"), origin=Origin(server.url))
    request = protocol.connect()
    request.headers["Cookie"] = f"sessionid={cookie}"
    protocol.send_request(request)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.settimeout(10)
    sock.sendall(b"".join(protocol.data_to_send()))
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)  # byte by byte: not one byte of the frames after it
    protocol.receive_data(response)
    assert protocol.state is State.OPEN, response
    return sock, protocol


def send_frames(sock: socket.socket, protocol: ClientProtocol, frames: list[Frame]) -> None:
    for frame in frames:
        protocol.send_frame(frame)
    sock.sendall(b"".join(protocol.data_to_send()))


async def test_frames_for_a_closing_socket_are_dropped_quietly(
    live_servers: Callable[..., list[DaphneServer]], conversation: Conversation, cookie: str
) -> None:
    """The page closes its socket while the server still has frames for it: no traceback.

    The page asks for many big snapshots without reading them and sends a message; while
    its answer streams, the page closes. The server has not flushed its write buffer, so
    the connection is not gone yet, but its close has begun: every delta of the answer is
    a send to a closing socket.
    """
    (server,) = live_servers(1, LOG_LEVEL="DEBUG", **UNLIMITED_FRAMES)
    big = "word " * 30_000
    await Message.objects.acreate(conversation=conversation, role="assistant", content=big)
    # More snapshot bytes than the kernel's buffers on both ends can hold.
    wmem = await asyncio.to_thread(Path("/proc/sys/net/ipv4/tcp_wmem").read_text)
    wmem_max = int(wmem.split()[2])
    resyncs = wmem_max // len(big) + 10
    sock, protocol = await asyncio.to_thread(
        raw_handshake, server, f"/ws/conversations/{conversation.id}/", cookie
    )
    try:
        resync = Frame(Opcode.TEXT, b'{"type": "resync"}')
        ask = Frame(
            Opcode.TEXT, json.dumps(user_message("go on sim:tokens=100 sim:rate=50")).encode()
        )
        await asyncio.to_thread(send_frames, sock, protocol, [resync] * resyncs + [ask])
        # Frames are handled in order: once the message is saved, every snapshot was sent.
        await until(lambda: Message.objects.filter(role="user").aexists(), what="the message saved")
        protocol.send_close()
        await asyncio.to_thread(sock.sendall, b"".join(protocol.data_to_send()))

        await until(
            lambda: "Dropped a frame for a closing socket" in server.log(),
            timeout=15,
            what="a delta sent to the closing socket",
        )
    finally:
        sock.close()
    # The answer outlives the socket.
    streaming = Message.objects.filter(status="streaming")

    async def answered() -> bool:
        return not await streaming.aexists()

    await until(answered, what="the answer saved")
    assert await Message.objects.filter(role="assistant", status="complete").acount() == 2
    assert_no_traceback(server)


# --- in a real browser ----------------------------------------------------------------


@contextmanager
def logged_in_page(server: DaphneServer, user: User, next_path: str = "/") -> Iterator[Page]:
    """A Chromium page, logged in as ``user`` through the site's form, at ``next_path``."""
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{server.url}/login/?next={next_path}")
        log_in(page, user.username)
        expect(page).to_have_url(f"{server.url}{next_path}")
        yield page


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


# --- the system prompt ----------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["a NUL \x00 here", "\x00"])
def test_system_prompt_that_cannot_be_stored_is_refused_with_a_message(
    client: Client, user: User, prompt: str
) -> None:
    client.force_login(user)
    response = client.get("/c/new/", {"system_prompt": prompt})

    # The form refuses it (Django's own check), shown on the page with the form again.
    assert response.status_code == 400
    assert "Null characters are not allowed." in response.text
    assert not Conversation.objects.exists()


def test_chat_page_message_that_cannot_be_stored_is_refused_and_given_back(
    live_servers: Callable[..., list[DaphneServer]], user: User, tmp_path: Path
) -> None:
    """The page shows why, gives the text back to the composer and does not send it again."""
    (server,) = live_servers(1)
    conversation = orm(lambda: Conversation.objects.create(owner=user))
    text = "a NUL \x00 in the middle"

    with logged_in_page(server, user, f"/c/{conversation.id}/") as page:
        expect(page.locator("#chat")).to_have_attribute("data-connection", "open")
        composer = page.get_by_role("textbox", name="Message")
        composer.evaluate(
            "(input, text) => { input.value = text;"
            " input.dispatchEvent(new Event('input', {bubbles: true})); }",
            text,
        )
        composer.press("Enter")

        expect(page.get_by_text("contains a character that cannot be saved")).to_be_visible()
        # Forgotten, not left waiting to be sent again: the bubble goes, the text returns.
        expect(page.locator(".message--user")).to_have_count(0)
        assert composer.input_value() == text
        page.screenshot(path=tmp_path / "refused.png")

    assert not orm(lambda: Message.objects.exists())
    assert "Traceback" not in server.log()
