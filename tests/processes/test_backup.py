"""Backups as docs/deploy.md gives them: pg_dump of the live database, pg_restore into an
empty one, and a server on the restored copy that carries on where the dump left off."""

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.utils import timezone

from streaming.models import Conversation, Message
from streaming.simulator import SimulatorThread
from tests.support.frames import user_message
from tests.support.live import LiveClient
from tests.support.providers import make_provider
from tests.support.servers import DaphneServer, database_url
from tests.support.services import service_missing
from tests.support.users import session_cookie
from tests.support.waiting import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgresql")]


def postgres_tool(name: str) -> str:
    """The path of a PostgreSQL client program."""
    path = shutil.which(name)
    if path is None:
        service_missing(name, "the PostgreSQL client programs are not installed")
    return str(path)


def connection_args(database: str) -> list[str]:
    settings = connection.settings_dict
    return [
        f"--host={settings.get('HOST') or '127.0.0.1'}",
        f"--port={settings.get('PORT') or 5432}",
        f"--username={settings.get('USER') or 'postgres'}",
        f"--dbname={database}",
    ]


@pytest.fixture
def restored_name() -> Iterator[str]:
    """The name of the database a test restores into; dropped after the test."""
    name = f"restored_{uuid.uuid4().hex[:12]}"
    yield name
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dump_and_restore(
    tmp_path: Path, restored_name: str, api: SimulatorThread, conversation: Conversation
) -> tuple[Message, str, str]:
    """Give ``conversation`` a provider with a key and an answer streaming, dump the database
    as docs/deploy.md says, restore it into ``restored_name``, then change the original.

    Returns the streaming answer, the provider's name, and a session cookie of the owner's
    that the dump holds.
    """
    pg_dump, pg_restore = postgres_tool("pg_dump"), postgres_tool("pg_restore")
    provider = make_provider(api)
    cookie = session_cookie(conversation.owner)
    long_ago = timezone.now() - timedelta(hours=1)
    question = Message.objects.create(
        conversation=conversation,
        role="user",
        content="Hi",
        created_at=long_ago - timedelta(seconds=1),
    )
    # An answer streaming when the dump is taken: its process is gone after the restore.
    streaming = Message.objects.create(
        conversation=conversation,
        parent=question,
        role="assistant",
        status="streaming",
        content="half an ans",
        heartbeat_at=long_ago,
        created_at=long_ago,
    )
    conversation.provider, conversation.model, conversation.leaf = provider, "sim-large", streaming
    conversation.save()
    dump = tmp_path / "chatsite.dump"
    original = connection.settings_dict["NAME"]
    subprocess.run(
        [pg_dump, "--format=custom", f"--file={dump}", *connection_args(original)], check=True
    )
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{restored_name}"')
    subprocess.run(
        [pg_restore, "--no-owner", *connection_args(restored_name), str(dump)], check=True
    )
    # The original goes on; the restored copy must not see it.
    Message.objects.filter(pk=streaming.pk).update(content="changed after the dump")
    return streaming, provider.name, cookie


async def test_a_restored_dump_serves_every_conversation_and_ends_what_was_streaming(
    tmp_path: Path,
    restored_name: str,
    live_servers: Callable[..., list[DaphneServer]],
    second: SimulatorThread,
    conversation: Conversation,
) -> None:
    streaming, provider_name, cookie = await sync_to_async(dump_and_restore)(
        tmp_path, restored_name, second, conversation
    )
    restored_url = database_url({**connection.settings_dict, "NAME": restored_name})
    (server,) = live_servers(1, DATABASE_URL=restored_url)

    # The session, the conversation and the half answer came back, and the sweep ended it
    # with the text it had at the dump.
    async def swept() -> bool:
        async with LiveClient(server, conversation.id, cookie) as tab:
            (half,) = [m for m in tab.snapshot["messages"] if m["id"] == str(streaming.pk)]
        await asyncio.sleep(0.2)  # a poll interval: each check opens a socket
        return bool(half["status"] == "interrupted" and half["content"] == "half an ans")

    await until(swept, timeout=30, what="the restored streaming answer swept")
    # The provider's key, encrypted in the dump, still decrypts: its model answers.
    async with LiveClient(server, conversation.id, cookie) as tab:
        await tab.send(user_message("after the restore"))
        done = await tab.receive_until("done", timeout=30)
    assert done["status"] == "complete"
    assert done["message"]["provider_name"] == provider_name
    assert second.requests[-1]["messages"][-1]["content"] == "after the restore"
    # The original was not touched by the restore or by the server on the copy.
    original = await Message.objects.aget(pk=streaming.pk)
    assert (original.status, original.content) == ("streaming", "changed after the dump")
    assert not await Message.objects.filter(content="after the restore").aexists()
