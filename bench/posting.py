"""Posting one message into a long conversation: the service call alone
(``conversations.do_post_user_message``: the user message, its answer's row, and what the
model will be sent), not the model's answer. Its wall time, CPU, queries and extra peak
memory.

Each size runs in a process of its own (``python -m bench.posting COUNT``) on PostgreSQL
(BENCH_DATABASE_URL), so one case's memory is not another's. The conversations are the
transfer bench's (``transfer.long_conversation``: short messages, each following the one
before), written once for the user `bench-post` and kept for later runs; what a run posts
is deleted again, so every run meets the same conversation.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from bench import procstat
from bench.stack import DATABASE_URL, LIFTED_LIMITS, ROOT

SIZES = (10_000, 240_000)
USERNAME = "bench-post"


def run() -> list[tuple[str, str]]:
    """Rows of (what, figure), each size measured in a fresh process."""
    rows = []
    for count in SIZES:
        out = subprocess.run(
            [sys.executable, "-m", "bench.posting", str(count)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            rows.append((f"post into {count:,}", f"failed: {out.stderr.strip().splitlines()[-1:]}"))
            continue
        result = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(
            (
                result["what"],
                f"{result['seconds'] * 1000:.0f} ms ({result['cpu'] * 1000:.0f} ms of this "
                f"process's CPU), {result['queries']} queries, +{result['peak_mib']:.1f} MiB peak",
            )
        )
    return rows


def _conversation(user: Any, count: int) -> Any:
    """The user's conversation of ``count`` messages, written the first time."""
    from bench.transfer import long_conversation
    from streaming.models import Conversation

    title = f"bench: {count:,} messages"
    found = Conversation.objects.filter(owner=user, title=title).first()
    if found is not None and found.messages.count() == count:
        return found
    if found is not None:
        found.delete()
    return long_conversation(user, count, title)


def measure(count: int) -> dict[str, Any]:
    """Post one message into the conversation of ``count`` messages, in this process."""
    os.environ.update({**LIFTED_LIMITS, "STORAGE_QUOTA_CHARS": "0"})
    from bench.stack import setup_django

    setup_django(DATABASE_URL)
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from streaming.models import Conversation, Message
    from streaming.services import conversations, storage

    user, _ = User.objects.get_or_create(username=USERNAME)
    conversation = _conversation(user, count)
    leaf_id = conversation.leaf_id
    storage.counted(user.pk)  # the user's first count is a sum of everything: not this call's
    pid = os.getpid()
    procstat.reset_peak_memory(pid)
    base = procstat.status_mib(pid, "VmRSS")
    started, cpu = time.perf_counter(), time.process_time()
    with CaptureQueriesContext(connection) as queries:
        posted = conversations.do_post_user_message(conversation, "One more question", uuid.uuid4())
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = procstat.status_mib(pid, "VmHWM") - base
    assert isinstance(posted, conversations.Started), posted
    # Back as it was: the next run meets the same conversation.
    Conversation.objects.filter(pk=conversation.pk).update(leaf_id=leaf_id)
    Message.objects.filter(pk__in=[posted.answer.pk, posted.answer.parent_id]).delete()
    return {
        "what": f"posting one message into {count:,} messages",
        "seconds": seconds,
        "cpu": cpu,
        "queries": len(queries),
        "peak_mib": peak,
        "sent": len(posted.history),
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(measure(int(sys.argv[1]))) + "\n")
