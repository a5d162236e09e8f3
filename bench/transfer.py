"""Imports and exports of large conversations: wall time and extra peak memory.

Each case runs in a process of its own (``python -m bench.transfer CASE``), on PostgreSQL
(BENCH_DATABASE_URL), through the views as a browser calls them: the upload parsed by
Django's form, the export read to its last byte. The memory figure is the process's peak
resident set during the request less what it held just before (Linux's VmHWM, reset
through /proc/self/clear_refs), so it is what that one request cost the server process.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.stack import DATABASE_URL, ROOT

#: The issue's file: 240,000 tiny messages in one 10 MB upload (no parents: each is short).
IMPORT_MESSAGES = 240_000
#: A conversation whose Markdown export was slow, and one exported as JSON.
LONG_MESSAGES = 240_000
JSON_MESSAGES = 10_000
CASES = ("import", "markdown", "json")


def run() -> list[tuple[str, str]]:
    """Rows of (what, figure), each case measured in a fresh process."""
    rows = []
    for case in CASES:
        out = subprocess.run(
            [sys.executable, "-m", "bench.transfer", case],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            rows.append((case, f"failed: {out.stderr.strip().splitlines()[-1:]}"))
            continue
        result = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(
            (
                result["what"],
                f"{result['seconds']:.2f} s ({result['cpu']:.2f} s of this process's CPU), "
                f"+{result['peak_mib']:.0f} MiB peak, "
                f"HTTP {result['status']}",
            )
        )
    return rows


def _peak_reset() -> float:
    """Reset the process's peak resident set to what it holds now; that figure in MiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mib("VmRSS")


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _setup() -> tuple[Any, Any]:
    os.environ.update(
        {
            # No daily or per-user cap gets in the way of measuring the work itself.
            "IMPORTS_PER_DAY": "0",
            "STORAGE_QUOTA_CHARS": "0",
            "IMPORT_MAX_BYTES": str(12 * 1024 * 1024),
        }
    )
    from bench.stack import setup_django

    _, user = setup_django(DATABASE_URL)
    from django.test import Client

    from streaming.models import Conversation

    Conversation.objects.filter(owner=user).delete()
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client, user


def long_conversation(user: Any, count: int, title: str = "long") -> Any:
    """A conversation of ``count`` short messages ("message <n>"), each following the one
    before, the last ending the branch shown; the table analysed afterwards."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from django.db import connection

    from streaming.models import Conversation, Message

    conversation = Conversation.objects.create(owner=user, title=title)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    parent = None
    batch = []
    for n in range(count):
        key = uuid.uuid4()
        batch.append(
            Message(
                id=key,
                conversation=conversation,
                parent_id=parent,
                role="user" if n % 2 == 0 else "assistant",
                content=f"message {n}",
                created_at=start + timedelta(seconds=n),
            )
        )
        parent = key
        if len(batch) == 5000:
            Message.objects.bulk_create(batch)
            batch = []
    Message.objects.bulk_create(batch)
    Conversation.objects.filter(pk=conversation.pk).update(leaf_id=parent)
    conversation.leaf_id = parent
    # The statistics autovacuum gathers within a minute of so many new rows: without them
    # PostgreSQL plans each batch's range of the index as a scan of the rest of it.
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Message._meta.db_table}")
    return conversation


def _body(response: Any) -> int:
    """The response's length, read to its end as daphne reads it."""
    from asgiref.sync import async_to_sync

    if not response.streaming:
        return len(response.content)
    if not response.is_async:
        return sum(len(piece) for piece in response.streaming_content)

    async def read() -> int:
        return sum([len(piece) async for piece in response.streaming_content])

    return int(async_to_sync(read)())


def measure(case: str) -> dict[str, Any]:
    """One case, in this process: its wall time and extra peak memory."""
    client, user = _setup()
    if case == "import":
        from django.core.files.uploadedfile import SimpleUploadedFile
        from django.test.client import BOUNDARY, encode_multipart

        from tests.support.exports import tiny_messages

        raw = tiny_messages(IMPORT_MESSAGES)
        what = f"import of {IMPORT_MESSAGES:,} messages ({len(raw) / 2**20:.1f} MiB)"
        # The request's body made beforehand: the client's encoding is not the server's cost.
        body = encode_multipart(
            BOUNDARY, {"file": SimpleUploadedFile("big.json", raw, "application/json")}
        )
        del raw
        base = _peak_reset()
        started, cpu = time.perf_counter(), time.process_time()
        # The same type as MULTIPART_CONTENT, but not that object: the client sends it as is.
        form = f"multipart/form-data; boundary={BOUNDARY}"
        response = client.post("/import/", body, content_type=form)
        size = 0
    else:
        count = LONG_MESSAGES if case == "markdown" else JSON_MESSAGES
        conversation = long_conversation(user, count)
        what = f"{case} export of {count:,} messages"
        suffix = "md" if case == "markdown" else "json"
        base = _peak_reset()
        started, cpu = time.perf_counter(), time.process_time()
        response = client.get(f"/c/{conversation.pk}/export.{suffix}")
        size = _body(response)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "what": what,
        "seconds": seconds,
        "cpu": cpu,
        "peak_mib": _status_mib("VmHWM") - base,
        "status": response.status_code,
        "bytes": size,
    }


if __name__ == "__main__":
    result = measure(sys.argv[1])
    sys.stdout.write(json.dumps(result) + "\n")
