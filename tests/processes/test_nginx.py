"""The shipped nginx site (deploy/nginx.conf) in front of two daphne processes, end to end.

nginx is Debian's, run in the foreground with the shipped site (tests/support/nginx.py changes
only ports, paths and the certificate), over TLS with a certificate made here, and the
app set as the site's comments say (HTTPS=true, CLIENT_IP_HEADER, SERVE_STATIC=false).
Every page and socket goes through nginx; which daphne process took a socket is read
from a header the test adds, so "the other process" is checked, not hoped for. The
processes share real Redis and PostgreSQL, and the simulator answers.
"""

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from streaming.models import Attachment, Conversation, Message
from streaming.simulator import SimulatorThread
from streaming.simulator.directives import split_directives
from streaming.simulator.text import answer_tokens
from streaming.views_attachments import FILE_CSP
from tests.support.files import png
from tests.support.frames import user_message
from tests.support.live import LiveClient, frame, frames_of, reading
from tests.support.nginx import UPSTREAM_HEADER, NginxServer, check_config, self_signed_certificate
from tests.support.servers import (
    FAST_CHECKPOINTS,
    DaphneServer,
    database_url,
    free_ports,
    serving,
    wait_for_port,
)
from tests.support.users import session_cookie
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

# Answers long enough to be mid-stream when a process is killed or stopped, short enough
# that their retries and the survivors' answers end within the test.
SLOW = "sim:tokens=400 sim:rate=50"
SHORT = "sim:tokens=30 sim:rate=200"


def simulated_text(content: str) -> str:
    """The whole answer the simulator gives to the user message ``content``."""
    prompt, directives = split_directives(content)
    assert directives.tokens is not None
    return "".join(islice(answer_tokens(prompt), directives.tokens))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """collectstatic's output, as a deploy makes it, for nginx to serve."""
    root = tmp_path_factory.mktemp("staticfiles")
    with override_settings(STATIC_ROOT=root):
        call_command("collectstatic", interactive=False, verbosity=0)
    return root


class Site:
    """nginx with the shipped site, and the environment for the daphne processes behind it."""

    def __init__(self, tmp_path: Path, simulator: SimulatorThread, redis_url: str, **kw: Any):
        self.tmp_path = tmp_path
        self.ports = free_ports(2)
        self.nginx = NginxServer(tmp_path / "nginx", self.ports, **kw)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.live_settings",
            "SECRET_KEY": django_settings.SECRET_KEY,
            "DATABASE_URL": database_url(connection.settings_dict),
            "REDIS_URL": redis_url,
            "OPENAI_BASE_URL": simulator.base_url,
            "OPENAI_API_KEY": "",
            "OPENAI_MODEL": "simulated",
            "DEBUG": "false",
            # As deploy/nginx.conf says to run the app behind it.
            "HTTPS": "true",
            "CLIENT_IP_HEADER": "X-Real-IP",
            "SERVE_STATIC": "false",
            "MEDIA_ROOT": str(self.nginx.media_root),
            "ATTACH_ACCEL_REDIRECT": "/protected-media/",
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            # nginx passes Host without the port (`$host`, as on 443); the pages' origin
            # here has one, which a site on 443 would not.
            "CSRF_TRUSTED_ORIGINS": self.nginx.url,
            # One user's tabs stand for many people's here.
            "LIMIT_SOCKETS_PER_USER": "100",
            "LIMIT_ANSWERS_PER_USER": "20",
            "LIMIT_MESSAGES_PER_MINUTE": "100",
            **FAST_CHECKPOINTS,
        }

    def http(self, cookie: str | None = None) -> httpx.AsyncClient:
        """A client of the site through nginx, trusting the test certificate; signed in
        with the session ``cookie`` if given."""
        assert self.nginx.ssl_context is not None
        cookies = {django_settings.SESSION_COOKIE_NAME: cookie} if cookie else None
        return httpx.AsyncClient(
            base_url=self.nginx.url, verify=self.nginx.ssl_context, cookies=cookies
        )

    def log_path(self, name: str) -> Path:
        """A log file for one process; a restarted one gets a fresh file."""
        index = 0
        while (path := self.tmp_path / f"{name}-{index}.log").exists():
            index += 1
        return path


@pytest.fixture
def site(
    tmp_path: Path,
    simulator: SimulatorThread,
    redis_url: str,
    certificate: tuple[Path, Path],
    static_root: Path,
) -> Iterator[Site]:
    site = Site(tmp_path, simulator, redis_url, certificate=certificate, static_root=static_root)
    try:
        yield site
    finally:
        site.nginx.stop()


@contextlib.contextmanager
def serve_workers(site: Site) -> Iterator[subprocess.Popen[bytes]]:
    """`manage.py serve --workers 2` on the site's upstream ports, once both listen."""
    args = ("--workers", "2", "--port", str(site.ports[0]))
    with serving(site.log_path("serve"), site.env, *args) as process:
        for port in site.ports:
            wait_for_port(port, process)
        yield process


def upstream_of(client: LiveClient) -> int:
    """The port of the daphne process that took the socket (the last one nginx tried)."""
    tried = client.response_headers[UPSTREAM_HEADER]
    return int(tried.split(",")[-1].strip().rsplit(":", 1)[1])


def test_shipped_site_passes_nginx_t(
    tmp_path: Path, certificate: tuple[Path, Path], static_root: Path
) -> None:
    # The configuration the tests run is the shipped one; nginx -t accepts it.
    nginx = NginxServer(
        tmp_path / "nginx", free_ports(2), certificate=certificate, static_root=static_root
    )
    try:
        output = check_config(nginx.directory, nginx.config)
    finally:
        nginx.stop()
    assert "test is successful" in output
    assert "[warn]" not in output


async def test_serve_workers_behind_nginx_streams_resumes_and_stops_across_processes(
    site: Site, conversation: Conversation, cookie: str, static_root: Path
) -> None:
    with serve_workers(site):
        async with site.http() as http:
            # What a client says of itself is replaced by what nginx saw.
            forged = {"X-Forwarded-Proto": "http", "X-Real-IP": "203.0.113.9"}
            login = await http.get("/login/", headers=forged)
            failed_login = await http.post(
                "/login/",
                data={
                    "username": "alice",
                    "password": "wrong",
                    "csrfmiddlewaretoken": http.cookies["csrftoken"],
                },
                headers={**forged, "Origin": site.nginx.url},
            )
            script = await http.get("/static/streaming/chat/stream.js")
            metrics = await http.get("/metrics")
            health = await http.get("/healthz")
            ready = await http.get("/readyz")
        async with httpx.AsyncClient() as plain:
            redirect = await plain.get(f"http://localhost:{site.nginx.http_port}/c/x/?a=1")
            # Straight to a process, as nginx would pass it: daphne serves no static files.
            direct = await plain.get(
                f"http://127.0.0.1:{site.ports[0]}/static/streaming/chat/stream.js",
                headers={"X-Forwarded-Proto": "https"},
            )

        # One answer, streamed through nginx, exactly as the model wrote it.
        first = f"through nginx {SHORT}"
        async with LiveClient(site.nginx, conversation.id, cookie) as page:
            await page.send(user_message(first))
            done = await page.receive_until("done")
        first_id = done["message_id"]

        # A long answer; the page reloads onto the other process and stops it from there.
        second = f"reload me {SLOW}"
        async with LiveClient(site.nginx, conversation.id, cookie) as before:
            await before.send(user_message(second))
            started = await before.receive_until("start")
            await before.receive_until("delta")
            # The old page is still open as the new one connects: least_conn sends the new
            # socket to the process without one.
            reloaded = LiveClient(site.nginx, conversation.id, cookie)
            await reloaded.__aenter__()
        try:
            mid_answer = reloaded.snapshot["active"]
            await reloaded.receive_until("delta")
            await reloaded.send({"type": "stop"})
            stopped = await reloaded.receive_until("done")
        finally:
            await reloaded.__aexit__(None, None, None)

    second_id = started["message_id"]
    saved_first = await Message.objects.aget(pk=first_id)
    saved_second = await Message.objects.aget(pk=second_id)

    assert login.status_code == 200  # no redirect: nginx said the request came over HTTPS
    assert failed_login.status_code == 200
    assert "Please enter a correct username and password" in failed_login.text
    attempts = [ip async for ip in AccessAttempt.objects.values_list("ip_address", flat=True)]
    assert attempts == ["127.0.0.1"]  # nginx's view of the client, not the forged address
    assert script.status_code == 200
    assert script.headers["cache-control"] == "public, no-cache"
    assert script.headers["x-content-type-options"] == "nosniff"
    assert script.content == (static_root / "streaming" / "chat" / "stream.js").read_bytes()
    assert direct.status_code == 404
    assert metrics.status_code == 404
    assert "nginx" in metrics.text  # nginx's own page: no process was asked
    # The probes pass through, over HTTPS too, with nothing but their answer.
    assert (health.status_code, health.text) == (200, "ok")
    assert (ready.status_code, ready.json()) == (200, {"database": "ok", "channel_layer": "ok"})
    assert redirect.status_code == 301
    assert redirect.headers["location"] == "https://localhost/c/x/?a=1"

    assert done["status"] == saved_first.status == "complete"
    assert page.text_of(first_id) == saved_first.content == simulated_text(first)

    assert upstream_of(before) != upstream_of(reloaded)
    assert set(site.ports) == {upstream_of(before), upstream_of(reloaded)}
    assert mid_answer is not None
    assert mid_answer["message_id"] == second_id
    assert stopped["message_id"] == second_id
    assert stopped["status"] == saved_second.status == "cancelled"
    assert reloaded.shown_text(second_id) == saved_second.content
    assert reloaded.text_of(second_id) == saved_second.content
    assert saved_second.content.startswith(before.text_of(second_id))
    assert simulated_text(second).startswith(saved_second.content)
    assert len(saved_second.content) < len(simulated_text(second))
    assert reloaded.assembler.mismatches == 0


class Fleet:
    """The two daphne processes behind the site, started and restarted on its ports."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.servers: dict[int, DaphneServer] = {}

    def start(self, port: int) -> DaphneServer:
        """Start (or restart) the process on ``port``."""
        server = DaphneServer(self.site.env, self.site.log_path(f"daphne-{port}"), port=port)
        self.servers[port] = server
        return server

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture
def fleet(site: Site) -> Iterator[Fleet]:
    fleet = Fleet(site)
    try:
        for port in site.ports:
            fleet.start(port)
        yield fleet
    finally:
        fleet.stop_all()


async def new_conversations(user: User, count: int) -> list[Conversation]:
    return [await Conversation.objects.acreate(owner=user) for _ in range(count)]


async def open_tabs(
    site: Site, stack: contextlib.AsyncExitStack, conversations: list[Conversation], cookie: str
) -> dict[int, list[LiveClient]]:
    """A tab per conversation through nginx, by the process that took its socket."""
    by_port: dict[int, list[LiveClient]] = {port: [] for port in site.ports}
    for conversation in conversations:
        client = await stack.enter_async_context(LiveClient(site.nginx, conversation.id, cookie))
        by_port[upstream_of(client)].append(client)
    return by_port


async def start_answers(clients: list[LiveClient], content: str) -> dict[LiveClient, str]:
    """Send ``content`` on each tab; the id of each answer once it has text."""
    started = {}
    for client in clients:
        await client.send(user_message(content))
    for client in clients:
        started[client] = (await client.receive_until("start"))["message_id"]
        await client.receive_until("delta")
    return started


async def ended(client: LiveClient, message_id: str, what: str) -> None:
    """Wait until ``client`` knows the answer ended (by its `done`, a sync or a snapshot)."""
    await until(lambda: message_id in client.assembler.ended, what=what, timeout=20)


async def saved(message_id: str) -> Message:
    return await Message.objects.aget(pk=message_id)


async def lose_process(
    site: Site,
    stack: contextlib.AsyncExitStack,
    tabs: dict[int, list[LiveClient]],
    port: int,
    end: Callable[[], None],
    cookie: str,
) -> list[LiveClient]:
    """End the process on ``port`` with ``end`` while every tab reads; its tabs reconnect
    through nginx, as a page does when its socket drops. The new sockets, in their order."""
    async with reading(*(client for clients in tabs.values() for client in clients)):
        await sync_to_async(end)()
        await until(
            lambda: all(client.close_code is not None for client in tabs[port]),
            what=f"the sockets on port {port} closing",
        )
    moved = []
    for client in tabs[port]:
        conversation_id = client.url.rstrip("/").rsplit("/", 1)[1]
        fresh = LiveClient(site.nginx, conversation_id, cookie)
        moved.append(await stack.enter_async_context(fresh))
    return moved


async def test_kill_9_and_sigterm_behind_nginx_keep_every_answer_exact(
    site: Site, fleet: Fleet, user: User, cookie: str
) -> None:
    content = f"kept exact {SLOW}"
    expected = simulated_text(content)
    a_port, b_port = site.ports

    # --- kill -9 one process while each streams two answers -----------------------------
    async with contextlib.AsyncExitStack() as stack:
        tabs = await open_tabs(site, stack, await new_conversations(user, 4), cookie)
        assert [len(tabs[port]) for port in site.ports] == [2, 2]  # least_conn spreads them
        killed_ids = await start_answers(tabs[a_port], content)
        survivor_ids = await start_answers(tabs[b_port], content)

        async def checkpointed() -> bool:
            rows = [await saved(mid) for mid in killed_ids.values()]
            return all(row.seq > 0 and row.status == "streaming" for row in rows)

        await until(checkpointed, what="text checkpointed on A", timeout=20)
        # The pages on A reconnect; nginx passes them to B, whose sweep ends A's answers.
        moved = await lose_process(site, stack, tabs, a_port, fleet.servers[a_port].kill, cookie)
        async with reading(*moved, *tabs[b_port]):
            for client, before in zip(moved, tabs[a_port], strict=True):
                mid = killed_ids[before]
                await ended(client, mid, "swept")
            for client in tabs[b_port]:
                mid = survivor_ids[client]
                await ended(client, mid, "B's answers")
            interrupted = {mid: await saved(mid) for mid in killed_ids.values()}
            # Each swept answer is retried on the page that reconnected, and completes.
            retried: dict[LiveClient, str] = {}
            for client, before in zip(moved, tabs[a_port], strict=True):
                await client.send({"type": "retry", "message_id": killed_ids[before]})
            for client in moved:
                start = await frame(client, "start", other_than=killed_ids.values())
                retried[client] = start["message_id"]
            for client, mid in retried.items():
                await ended(client, mid, "the retry")

    for client in moved:
        assert upstream_of(client) == b_port
    for before, mid in killed_ids.items():
        row = interrupted[mid]
        assert row.status == "interrupted"
        assert row.content  # the checkpointed text is kept
        assert before.text_of(mid).startswith(row.content)
        assert expected.startswith(row.content)
    for client, mid in retried.items():
        row = await saved(mid)
        assert row.status == "complete"
        assert row.content == client.shown_text(mid) == expected
    for client, mid in survivor_ids.items():
        row = await saved(mid)
        assert row.status == "complete"
        assert client.text_of(mid) == row.content == expected
        assert [f["status"] for f in frames_of(client, "done", mid)] == ["complete"]
        assert client.assembler.mismatches == 0

    # --- restart the killed process; nginx sends it sockets again ------------------------
    fleet.start(a_port)
    async with contextlib.AsyncExitStack() as stack:
        (probe,) = await new_conversations(user, 1)

        async def lands_on_a() -> bool:
            client = await stack.enter_async_context(LiveClient(site.nginx, probe.id, cookie))
            return upstream_of(client) == a_port

        # nginx retries a failed server after fail_timeout; until then B takes every socket.
        await until(lands_on_a, what="nginx using the restarted process", timeout=30)

    # --- SIGTERM one process while each streams two answers ------------------------------
    async with contextlib.AsyncExitStack() as stack:
        tabs = await open_tabs(site, stack, await new_conversations(user, 4), cookie)
        assert [len(tabs[port]) for port in site.ports] == [2, 2]
        stopped_ids = await start_answers(tabs[a_port], content)
        survivor_ids = await start_answers(tabs[b_port], content)
        stopping = fleet.servers[a_port]
        moved = await lose_process(site, stack, tabs, a_port, stopping.stop, cookie)
        async with reading(*moved, *tabs[b_port]):
            for client in tabs[b_port]:
                mid = survivor_ids[client]
                await ended(client, mid, "B's answers")

    assert stopping.process.returncode == 0
    assert "Shutting down: saving 2 running answer(s)" in stopping.log()
    for client, before in zip(moved, tabs[a_port], strict=True):
        mid = stopped_ids[before]
        row = await saved(mid)
        assert upstream_of(client) == b_port
        assert row.status == "interrupted"
        # All the text so far, not only the last checkpoint: at least what the page got.
        assert row.content.startswith(before.text_of(mid))
        assert expected.startswith(row.content)
        assert len(row.content) < len(expected)
        assert client.assembler.ended[mid]["status"] == "interrupted"
        assert client.shown_text(mid) == row.content
    for client, mid in survivor_ids.items():
        row = await saved(mid)
        assert row.status == "complete"
        assert client.text_of(mid) == row.content == expected
        assert client.assembler.mismatches == 0


async def upload_through(
    http: httpx.AsyncClient, site: Site, conversation: Conversation, name: str, data: bytes
) -> httpx.Response:
    """Upload a file as the composer does, through nginx: the page's CSRF token, its origin."""
    page = await http.get(f"/c/{conversation.id}/")
    assert page.status_code == 200
    return await http.post(
        "/attachments/",
        data={"conversation": str(conversation.id)},
        files={"file": (name, data, "application/octet-stream")},
        headers={"X-CSRFToken": http.cookies["csrftoken"], "Origin": site.nginx.url},
    )


async def test_nginx_sends_an_attached_file_to_its_owner_only(
    site: Site, fleet: Fleet, conversation: Conversation, cookie: str, other_user: User
) -> None:
    stranger = await sync_to_async(session_cookie)(other_user)
    largest = b"x" * (django_settings.ATTACH_MAX_BYTES - 1) + b"\n"  # as large as a file may be
    async with site.http(cookie) as owner:
        uploaded = await upload_through(owner, site, conversation, "photo.png", png())
        large = await upload_through(owner, site, conversation, "server.log", largest)
        too_large = await upload_through(owner, site, conversation, "huge.log", largest + b"y")
        image_url = uploaded.json()["attachment"]["url"]
        log_url = large.json()["attachment"]["url"]
        shown = await owner.get(image_url)
        downloaded = await owner.get(log_url)
        image = await Attachment.objects.aget(pk=uploaded.json()["attachment"]["id"])
        # The internal location, asked for from outside, even by the owner.
        hidden = await owner.get(f"/protected-media/{image.file.name}")
    async with site.http(stranger) as other, site.http() as anonymous:
        refused = [await client.get(image_url) for client in (other, anonymous)]
    # The process alone answers with the redirect, and no bytes of its own.
    async with httpx.AsyncClient(
        cookies={django_settings.SESSION_COOKIE_NAME: cookie}, trust_env=False
    ) as direct:
        accel = await direct.get(
            f"http://127.0.0.1:{site.ports[0]}{image_url}",
            headers={"X-Forwarded-Proto": "https", "Host": "localhost"},
        )

    kept = (site.nginx.media_root / str(image.file.name)).read_bytes()
    assert uploaded.status_code == 201, uploaded.text
    assert shown.status_code == 200
    assert shown.content == kept
    assert shown.headers["content-type"] == "image/png"
    assert shown.headers["content-disposition"] == "inline; filename*=UTF-8''photo.png"
    assert shown.headers["cache-control"] == "private, max-age=3600"
    for response in (shown, downloaded):
        assert response.headers.get_list("x-content-type-options") == ["nosniff"]
        assert response.headers.get_list("content-security-policy") == [FILE_CSP]
    # A file as large as ATTACH_MAX_BYTES passes nginx; one byte more is the app's refusal.
    assert large.status_code == 201, large.text
    assert downloaded.content == largest
    assert downloaded.headers["content-disposition"] == "attachment; filename*=UTF-8''server.log"
    assert too_large.status_code == 413
    assert too_large.json()["code"] == "bad_attachment"
    assert await Attachment.objects.acount() == 2
    assert [r.status_code for r in refused] == [404, 404]
    assert all(kept not in r.content for r in refused)
    assert hidden.status_code == 404
    assert kept not in hidden.content
    assert accel.status_code == 200
    assert accel.headers["x-accel-redirect"] == f"/protected-media/{image.file.name}"
    assert accel.content == b""
