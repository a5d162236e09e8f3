"""Providers and models: keys encrypted at rest, a conversation's choice over the socket,
each answer asked of its conversation's provider and recording it, and the admin."""

import contextlib
import http.server
import json
import logging
import re
import socketserver
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import serializers
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client, override_settings

from streaming import keys, openai
from streaming.exceptions import KeyUnreadable
from streaming.models import Conversation, Message, Provider, ProviderModel
from streaming.services import providers
from streaming.simulator import SimulatorThread
from tests.support.frames import receive_until, user_message
from tests.support.providers import KEY, make_provider
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)

# --- keys at rest -------------------------------------------------------------------------


def test_a_dump_of_the_database_does_not_hold_the_key(second: SimulatorThread) -> None:
    provider = make_provider(second)

    dump = serializers.serialize("json", Provider.objects.all())
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM streaming_provider")
        rows = json.dumps(cursor.fetchall(), default=str)

    assert KEY not in dump
    assert KEY not in rows
    assert provider.api_key_encrypted
    assert KEY not in provider.api_key_encrypted
    assert Provider.objects.get(pk=provider.pk).api_key() == KEY


def test_a_key_sealed_under_another_secret_cannot_be_read(second: SimulatorThread) -> None:
    provider = make_provider(second)
    with override_settings(PROVIDER_KEY_SECRET="another secret"):
        with pytest.raises(KeyUnreadable) as refused:
            Provider.objects.get(pk=provider.pk).api_key()
        # The same text sealed under each secret differs, and each reads only its own.
        assert keys.decrypt(keys.encrypt("x"), provider="p") == "x"
    assert "PROVIDER_KEY_SECRET" in refused.value.message
    assert "Second" in refused.value.message
    assert KEY not in refused.value.message


def test_keys_stay_readable_through_djangos_rotation_of_secret_key() -> None:
    old = "o" * 50
    with override_settings(SECRET_KEY=old, PROVIDER_KEY_SECRET=old):
        sealed = keys.encrypt("sk-rotated")
    new = "n" * 50
    with override_settings(SECRET_KEY=new, PROVIDER_KEY_SECRET=new, SECRET_KEY_FALLBACKS=[old]):
        assert keys.decrypt(sealed, provider="p") == "sk-rotated"
    # A secret set apart from SECRET_KEY is rotated on its own: SECRET_KEY's fallbacks
    # are no secrets of its.
    apart = override_settings(
        SECRET_KEY=new, PROVIDER_KEY_SECRET="apart", SECRET_KEY_FALLBACKS=[old]
    )
    with apart, pytest.raises(KeyUnreadable):
        keys.decrypt(sealed, provider="p")


def test_extra_headers_refuse_what_the_client_sets_itself() -> None:
    refused: list[Any] = [
        {"Authorization": "Bearer x"},
        {"accept": "x"},
        {"bad name": "x"},
        {"X-A": "a\nb"},
        {"X-A": 1},
        ["x"],
    ]
    for headers in refused:
        with pytest.raises(ValidationError):
            Provider(name="p", base_url="http://localhost/v1", extra_headers=headers).full_clean()
    accepted = Provider(name="p", base_url="http://localhost/v1", extra_headers={"X-T": "acme"})
    accepted.full_clean()


def test_extra_headers_never_replace_the_clients_own() -> None:
    extra = {"authorization": "Bearer sk-sneaky", "ACCEPT": "text/html", "X-Tenant": "acme"}
    assert openai.request_headers("sk-real", extra) == {
        "X-Tenant": "acme",
        "Accept": "application/json",
        "Authorization": "Bearer sk-real",
    }
    # A header's value is a secret like the key: taken out of what a provider sends back.
    request = openai.ChatRequest(
        base_url="http://localhost/v1",
        api_key="",
        model="m",
        messages=[],
        headers={"X-Gateway-Key": "gw-secret-123"},
    )
    assert openai.redact("denied for gw-secret-123", request) == "denied for [redacted]"


# --- choosing a model over the socket -----------------------------------------------------


@pytest.mark.usefixtures("both_layers")  # the `model` frame crosses the layer
async def test_a_model_of_another_provider_answers_and_every_tab_and_answer_says_so(
    connect: Any,
    conversation: Conversation,
    user: User,
    simulator: SimulatorThread,
    second: SimulatorThread,
) -> None:
    provider = await make_provider_async(second, extra_headers={"X-Tenant": "acme"})
    tab = await connect(conversation.id, user)
    other_tab = await connect(conversation.id, user)
    assert tab.snapshot["model_choice"] == {
        "provider_id": None,
        "model": "simulated",
        "available": True,
    }
    marker = uuid.uuid4().hex

    await tab.send_json_to({"type": "set_model", "provider_id": provider.pk, "model": "sim-large"})

    chosen = {"provider_id": provider.pk, "model": "sim-large", "available": True}
    for socket in (tab, other_tab):
        told = await receive_until(socket, "model")
        assert told[-1] == {"type": "model", "model_choice": chosen}
    await tab.send_json_to(user_message(f"hello {marker}"))
    frames = await receive_until(tab, "done")
    start = next(frame for frame in frames if frame["type"] == "start")
    assert (start["model"], start["provider_name"]) == ("sim-large", "Second")
    assert frames[-1]["status"] == "complete", frames[-1]
    await tab.send_json_to({"type": "ping"})
    pong = (await receive_until(tab, "pong"))[-1]
    await tab.disconnect()
    await other_tab.disconnect()

    assert pong["model_choice"] == chosen
    # The second provider was asked, with its key and headers; the default one was not.
    [sent] = [r for r in second.requests if marker in str(r["messages"])]
    assert sent["model"] == "sim-large"
    assert sent["headers"] == {"authorization": "present", "x-tenant": "acme"}
    assert not [r for r in simulator.requests if marker in str(r["messages"])]
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    assert (answer.provider_id, answer.provider_name, answer.model) == (
        provider.pk,
        "Second",
        "sim-large",
    )
    later = await connect(conversation.id, user)
    assert later.snapshot["model_choice"] == chosen
    assert later.snapshot["messages"][-1]["provider_name"] == "Second"
    await later.disconnect()


async def test_the_default_provider_is_recorded_on_its_answers(
    connect: Any, conversation: Conversation, user: User
) -> None:
    tab = await connect(conversation.id, user)
    await tab.send_json_to(user_message("hi sim:tokens=2"))
    frames = await receive_until(tab, "done")
    await tab.disconnect()

    start = next(frame for frame in frames if frame["type"] == "start")
    assert (start["model"], start["provider_name"]) == ("simulated", "Simulator")
    assert frames[-1]["message"]["provider_name"] == "Simulator"
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    assert (answer.provider_id, answer.provider_name, answer.model) == (
        None,
        "Simulator",
        "simulated",
    )


async def test_a_model_not_offered_is_refused_and_changes_nothing(
    connect: Any, conversation: Conversation, user: User, second: SimulatorThread
) -> None:
    provider = await make_provider_async(second)
    off = await make_provider_async(second, name="Off", enabled=False)
    await ProviderModel.objects.acreate(provider=provider, model_id="sim-small", enabled=False)
    tab = await connect(conversation.id, user)
    refused: list[tuple[dict[str, Any], str]] = [
        ({"provider_id": provider.pk, "model": "nope"}, "unknown_model"),
        ({"provider_id": provider.pk, "model": "sim-small"}, "unknown_model"),  # disabled
        ({"provider_id": off.pk, "model": "sim-large"}, "unknown_model"),  # provider off
        ({"provider_id": provider.pk + 1000, "model": "sim-large"}, "unknown_model"),
        ({"provider_id": None, "model": "sim-large"}, "unknown_model"),
        # Ids of every other shape: text, a UUID, a bool, a fraction, out of range.
        ({"provider_id": str(provider.pk), "model": "sim-large"}, "bad_model"),
        ({"provider_id": str(uuid.uuid4()), "model": "sim-large"}, "bad_model"),
        ({"provider_id": True, "model": "sim-large"}, "bad_model"),
        ({"provider_id": 1.5, "model": "sim-large"}, "bad_model"),
        ({"provider_id": 0, "model": "sim-large"}, "bad_model"),
        ({"provider_id": 2**63, "model": "sim-large"}, "bad_model"),
        ({"provider_id": provider.pk, "model": ""}, "bad_model"),
        ({"provider_id": provider.pk, "model": ["sim-large"]}, "bad_model"),
        ({"provider_id": provider.pk}, "bad_model"),
        ({"provider_id": provider.pk, "model": "x" * 201}, "bad_model"),
    ]
    for fields, code in refused:
        await tab.send_json_to({"type": "set_model", **fields})
        error = await tab.receive_json_from(timeout=5)
        assert (error["type"], error["code"]) == ("error", code), fields
    await tab.disconnect()

    await conversation.arefresh_from_db()
    assert (conversation.provider_id, conversation.model) == (None, "")


async def test_a_model_disabled_after_it_was_chosen_refuses_the_next_message(
    connect: Any, conversation: Conversation, user: User, second: SimulatorThread
) -> None:
    provider = await make_provider_async(second)
    tab = await connect(conversation.id, user)
    await tab.send_json_to({"type": "set_model", "provider_id": provider.pk, "model": "sim-large"})
    await receive_until(tab, "model")
    await ProviderModel.objects.filter(provider=provider).aupdate(enabled=False)

    await tab.send_json_to(user_message("hello"))
    error = await tab.receive_json_from(timeout=5)
    await tab.send_json_to({"type": "ping"})
    pong = (await receive_until(tab, "pong"))[-1]
    await tab.disconnect()

    assert (error["type"], error["code"]) == ("error", "model_unavailable")
    assert "sim-large" in error["message"]
    assert pong["model_choice"]["available"] is False
    assert await Message.objects.filter(conversation=conversation).acount() == 0
    assert second.requests == []
    later = await connect(conversation.id, user)
    assert later.snapshot["model_choice"] == {
        "provider_id": provider.pk,
        "model": "sim-large",
        "available": False,
    }
    await later.disconnect()


async def test_a_key_that_cannot_be_read_refuses_the_message_and_writes_nothing(
    connect: Any, conversation: Conversation, user: User, second: SimulatorThread
) -> None:
    provider = await make_provider_async(second)
    await Conversation.objects.filter(pk=conversation.pk).aupdate(
        provider=provider, model="sim-large"
    )
    tab = await connect(conversation.id, user)
    with override_settings(PROVIDER_KEY_SECRET="the secret changed"):
        await tab.send_json_to(user_message("hello"))
        error = (await receive_until(tab, "error"))[-1]
    await tab.disconnect()

    assert error["code"] == "provider_key_unreadable"
    assert "cannot be read" in error["message"]
    assert "PROVIDER_KEY_SECRET" in error["message"]
    assert second.requests == []  # never asked without its key
    # Not written, so it costs no turn of the rate limit and nothing of the budget.
    assert not await Message.objects.filter(conversation=conversation).aexists()


def test_deleting_a_provider_sends_its_conversations_back_to_the_default(
    conversation: Conversation, second: SimulatorThread
) -> None:
    provider = make_provider(second)
    Conversation.objects.filter(pk=conversation.pk).update(provider=provider, model="sim-large")
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        provider=provider,
        provider_name="Second",
        model="sim-large",
    )

    providers.do_delete_providers([provider])

    conversation.refresh_from_db()
    answer.refresh_from_db()
    assert (conversation.provider_id, conversation.model) == (None, "")
    assert (answer.provider_id, answer.provider_name, answer.model) == (
        None,
        "Second",
        "sim-large",
    )
    assert not ProviderModel.objects.exists()


@pytest.mark.parametrize(("simulated", "named"), [(False, "OpenAI"), (True, "")])
def test_the_migration_names_the_provider_of_earlier_answers_unless_none_is_configured(
    conversation: Conversation, settings: Any, simulated: bool, named: str
) -> None:
    settings.OPENAI_PROVIDER_NAME = "OpenAI"
    settings.OPENAI_SIMULATED = simulated
    executor = MigrationExecutor(connection)
    before = [("streaming", "0004_message_tree")]
    latest = executor.loader.graph.leaf_nodes("streaming")
    executor.migrate(before)
    OldMessage = executor.loader.project_state(before).apps.get_model("streaming", "Message")
    question = OldMessage.objects.create(conversation_id=conversation.pk, role="user")
    answer = OldMessage.objects.create(
        conversation_id=conversation.pk, role="assistant", model="gpt-4o-mini"
    )

    MigrationExecutor(connection).migrate(latest)

    names = dict(Message.objects.values_list("pk", "provider_name"))
    assert names == {question.pk: "", answer.pk: named}
    assert Conversation.objects.get(pk=conversation.pk).provider_id is None


async def make_provider_async(simulator: SimulatorThread, **fields: Any) -> Provider:
    from asgiref.sync import sync_to_async

    return await sync_to_async(make_provider)(simulator, **fields)


# --- the admin ----------------------------------------------------------------------------


def provider_form(provider: Provider | None = None, **changes: str) -> dict[str, str]:
    """What the provider's admin form posts, with no models inline."""
    form = {
        "name": provider.name if provider else "Second",
        "base_url": provider.base_url if provider else "http://127.0.0.1:9/v1",
        "api_key": "",
        "extra_headers": json.dumps(provider.extra_headers if provider else {}),
        "enabled": "on",
        "models-TOTAL_FORMS": "0",
        "models-INITIAL_FORMS": "0",
        "models-MIN_NUM_FORMS": "0",
        "models-MAX_NUM_FORMS": "1000",
        "_save": "Save",
        **changes,
    }
    return form


def test_the_admin_takes_a_key_and_never_shows_it_back(
    staff: Client,
) -> None:
    added = staff.post(
        "/admin/streaming/provider/add/",
        provider_form(api_key=KEY, extra_headers='{"HTTP-Referer": "https://chat.example"}'),
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    provider = Provider.objects.get()
    assert provider.api_key() == KEY
    assert provider.extra_headers == {"HTTP-Referer": "https://chat.example"}

    page = staff.get(f"/admin/streaming/provider/{provider.pk}/change/").content.decode()
    assert KEY not in page
    assert provider.api_key_encrypted not in page
    assert re.search(r'<input type="password" name="api_key"[^>]*>', page)
    assert 'name="clear_api_key"' in page

    # Blank keeps the stored key; another one replaces it; "clear" removes it.
    staff.post(f"/admin/streaming/provider/{provider.pk}/change/", provider_form(provider))
    assert Provider.objects.get().api_key() == KEY
    staff.post(
        f"/admin/streaming/provider/{provider.pk}/change/",
        provider_form(provider, api_key="sk-new-key-1234"),
    )
    assert Provider.objects.get().api_key() == "sk-new-key-1234"
    staff.post(
        f"/admin/streaming/provider/{provider.pk}/change/",
        provider_form(provider, clear_api_key="on"),
    )
    assert Provider.objects.get().api_key_encrypted == ""


def test_the_admin_refuses_an_authorization_header(
    staff: Client,
) -> None:
    refused = staff.post(
        "/admin/streaming/provider/add/",
        provider_form(extra_headers='{"Authorization": "Bearer sk-plain"}'),
    )
    assert refused.status_code == 200
    assert "set by the site itself" in refused.content.decode()
    assert not Provider.objects.exists()


def fetch(client: Client, provider: Provider) -> list[str]:
    """Run the admin's "Fetch models" action on ``provider``; the messages it showed."""
    response = client.post(
        "/admin/streaming/provider/",
        {"action": "fetch_models", "_selected_action": [str(provider.pk)]},
        follow=True,
    )
    return [str(message) for message in response.context["messages"]]


def test_fetch_models_adds_the_new_ones_and_keeps_the_known(
    staff: Client,
    second: SimulatorThread,
) -> None:
    provider = make_provider(second)  # knows sim-large, as "Large"

    said = fetch(staff, provider)

    assert said == ["Second: 1 model(s) added (sim-small); 1 already known."]
    models = list(provider.models.values_list("model_id", "display_name", "enabled"))
    assert models == [("sim-large", "Large", True), ("sim-small", "", True)]
    # Again: nothing new.
    assert fetch(staff, provider) == ["Second: 0 model(s) added (none); 2 already known."]
    assert provider.models.count() == 2


@pytest.mark.parametrize("failure", ["closed port", "wrong key", "not a list"])
def test_fetch_models_that_fails_says_why_and_writes_nothing(
    staff: Client,
    second: SimulatorThread,
    simulator: SimulatorThread,
    failure: str,
) -> None:
    provider = make_provider(second)
    if failure == "closed port":
        provider.base_url = f"http://127.0.0.1:{free_port()}/v1"
    elif failure == "wrong key":
        provider.set_api_key("sk-wrong-key-0000")
    else:
        provider.base_url = simulator.base_url.removesuffix("/v1") + "/_simulator/requests#"
    provider.save()

    [said] = fetch(staff, provider)

    assert said.startswith("Second: could not fetch models: "), said
    expected = {
        "closed port": "Could not connect",
        "wrong key": "answered HTTP 401 Unauthorized",
        "not a list": "not a list of models",
    }[failure]
    assert expected in said
    assert "sk-wrong-key-0000" not in said
    assert list(provider.models.values_list("model_id", flat=True)) == ["sim-large"]


# What an internal page might hold: never to be shown to the staff member who pointed a
# provider at it.
INTERNAL_SECRET = "internal-only-token-7c1d"


class _InternalPage(http.server.BaseHTTPRequestHandler):
    """Answers every request with the reply its server was given."""

    server: "_InternalServer"

    def do_GET(self) -> None:
        status, content_type, body = self.server.reply
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _InternalServer(http.server.ThreadingHTTPServer):
    reply: tuple[int, str, bytes]


@contextlib.contextmanager
def internal_page(status: int, content_type: str, body: str) -> Iterator[str]:
    """A real HTTP server on loopback answering ``body``; its base URL."""
    server = _InternalServer(("127.0.0.1", 0), _InternalPage)
    server.reply = (status, content_type, body.encode())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("status", "content_type", "body", "said"),
    [
        (
            200,
            "text/plain",
            f'# metrics\nsecret_token{{value="{INTERNAL_SECRET}"}} 1\nkey {KEY}\n',
            "is not a list of models",
        ),
        (
            200,
            "application/json",
            json.dumps({"data": {"token": INTERNAL_SECRET, "key": KEY}}),
            "is not a list of models",
        ),
        (
            401,
            "application/json",
            json.dumps({"error": {"message": f"{INTERNAL_SECRET}: bad key {KEY}"}}),
            "answered HTTP 401 Unauthorized",
        ),
        (
            500,
            "text/html",
            f"<html><pre>Traceback… {INTERNAL_SECRET} {KEY}</pre></html>",
            "answered HTTP 500 Internal Server Error",
        ),
    ],
    ids=["metrics page", "other json", "provider-shaped error", "html error"],
)
def test_fetch_models_from_an_internal_page_shows_none_of_it_and_logs_it_redacted(
    staff: Client,
    second: SimulatorThread,
    caplog: pytest.LogCaptureFixture,
    status: int,
    content_type: str,
    body: str,
    said: str,
) -> None:
    provider = make_provider(second)
    with internal_page(status, content_type, body) as internal:
        # "?" makes the "/models" the client appends part of the query: any path is asked.
        provider.base_url = f"{internal}/metrics?"
        provider.save()
        with caplog.at_level(logging.WARNING, logger="streaming.model_list"):
            page = staff.post(
                "/admin/streaming/provider/",
                {"action": "fetch_models", "_selected_action": [str(provider.pk)]},
                follow=True,
            )

    [message] = [str(message) for message in page.context["messages"]]
    assert message.startswith("Second: could not fetch models: "), message
    assert said in message
    html = page.content.decode()
    assert said in html
    for secret in (INTERNAL_SECRET, KEY, "secret_token", "Traceback"):
        assert secret not in html
    # The reply is in the log, for staff who read it, without the key.
    [logged] = [r.getMessage() for r in caplog.records if r.name == "streaming.model_list"]
    assert INTERNAL_SECRET in logged
    assert KEY not in logged
    assert "[redacted]" in logged
    assert list(provider.models.values_list("model_id", flat=True)) == ["sim-large"]


class _NotHTTP(socketserver.BaseRequestHandler):
    """A service that is not HTTP (as a Redis port): it says its line, whatever it is
    asked; the HTTP client's parser quotes such a line in its error."""

    def handle(self) -> None:
        self.request.recv(65536)
        self.request.sendall(f"-ERR {INTERNAL_SECRET} unknown command\r\n\r\n".encode())


def test_fetch_models_from_a_port_that_is_not_http_shows_none_of_its_words(
    staff: Client, second: SimulatorThread, caplog: pytest.LogCaptureFixture
) -> None:
    provider = make_provider(second)
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _NotHTTP) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        provider.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        provider.save()
        with caplog.at_level(logging.WARNING, logger="streaming.model_list"):
            [said] = fetch(staff, provider)
        server.shutdown()
        thread.join()

    assert said.startswith("Second: could not fetch models: Could not connect to "), said
    assert INTERNAL_SECRET not in said
    assert "ERR" not in said
    [logged] = [r.getMessage() for r in caplog.records if r.name == "streaming.model_list"]
    assert INTERNAL_SECRET in logged
    assert list(provider.models.values_list("model_id", flat=True)) == ["sim-large"]


def test_fetch_models_marks_those_the_list_says_see_images(
    staff: Client, second: SimulatorThread
) -> None:
    provider = make_provider(second)  # knows sim-large, which staff did not mark
    image = ["text", "image"]
    listing = {
        "data": [
            {"id": "sim-large", "architecture": {"input_modalities": image}},
            {"id": "or/vision", "architecture": {"input_modalities": image}},
            {"id": "or/text", "architecture": {"input_modalities": ["text"]}},
            {"id": "caps/list", "capabilities": ["completion", "vision"]},
            {"id": "caps/object", "capabilities": {"vision": True}},
            {"id": "caps/unsure", "capabilities": {"vision": "maybe"}},
            {"id": "plain", "architecture": "image"},
        ]
    }
    with internal_page(200, "application/json", json.dumps(listing)) as internal:
        provider.base_url = f"{internal}/v1"
        provider.save()
        [said] = fetch(staff, provider)

    assert said == (
        "Second: 6 model(s) added (or/vision, or/text, caps/list, caps/object, caps/unsure, "
        "plain); 1 already known. Marked as seeing images, as the list says: or/vision, "
        "caps/list, caps/object."
    )
    seeing = dict(provider.models.values_list("model_id", "vision"))
    assert [m for m, sees in seeing.items() if sees] == ["or/vision", "caps/list", "caps/object"]
    assert seeing["sim-large"] is False  # a known model keeps what staff set


def test_staff_mark_a_model_as_seeing_images_where_they_edit_its_provider(
    staff: Client, second: SimulatorThread
) -> None:
    provider = make_provider(second)
    model = provider.models.get()
    page = staff.get(f"/admin/streaming/provider/{provider.pk}/change/").content.decode()
    assert 'name="models-0-vision"' in page
    assert "Sees images" in page

    inline = {
        "models-TOTAL_FORMS": "1",
        "models-INITIAL_FORMS": "1",
        "models-0-id": str(model.pk),
        "models-0-provider": str(provider.pk),
        "models-0-model_id": "sim-large",
        "models-0-display_name": "Large",
        "models-0-enabled": "on",
        "models-0-vision": "on",
        "models-0-position": "0",
    }
    saved = staff.post(
        f"/admin/streaming/provider/{provider.pk}/change/", provider_form(provider, **inline)
    )

    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert ProviderModel.objects.get(pk=model.pk).vision is True


def test_admin_lists_show_provider_and_model_and_filter_by_provider(
    staff: Client,
    conversation: Conversation,
    second: SimulatorThread,
) -> None:
    provider = make_provider(second)
    Conversation.objects.filter(pk=conversation.pk).update(provider=provider, model="sim-large")
    for name, model in [("Second", "sim-large"), ("Simulator", "simulated")]:
        Message.objects.create(
            conversation=conversation, role="assistant", provider_name=name, model=model
        )

    conversations = staff.get("/admin/streaming/conversation/").content.decode()
    second_only = staff.get("/admin/streaming/message/", {"provider_name": "Second"})

    assert "sim-large · Second" in conversations
    listed = second_only.context["cl"].result_list
    assert [m.model for m in listed] == ["sim-large"]
    assert "Provider" in second_only.content.decode()
