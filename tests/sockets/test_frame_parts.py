"""Frames longer than FRAME_BUDGET_BYTES travel in `part` frames (docs/protocol.md, "Frames
in parts"): the server's cutting, byte for byte, and the page's joining of what it cut."""

import json
import subprocess
from typing import Any

import pytest

from streaming.frames import wire_texts
from streaming.models import Conversation, Message
from tests.support.assembler import Joiner
from tests.support.servers import ROOT

# Characters that write long or awkwardly in JSON: 4-byte ones (two \\u escapes each), CJK
# (one escape), quotes and backslashes (escaped again inside a part), a control character.
AWKWARD = '😀文"\\\x01a🀄'


def frame_of(size: int) -> dict[str, Any]:
    """A `done`-like frame whose text is ``size`` awkward characters."""
    content = (AWKWARD * (size // len(AWKWARD) + 1))[:size]
    return {"type": "done", "message_id": "m", "message": {"content": content}}


@pytest.mark.parametrize("budget", [1024, 1500, 4099])
@pytest.mark.parametrize("size", [0, 100, 1000, 20_000])
def test_every_part_fits_the_budget_and_they_join_to_the_frame(budget: int, size: int) -> None:
    frame = frame_of(size)
    texts = list(wire_texts(frame, budget))

    assert all(len(text.encode()) <= budget for text in texts)
    joiner = Joiner()
    joined = [joiner.join(text) for text in texts]
    assert joined[-1] == frame
    assert joined[:-1] == [None] * (len(texts) - 1)
    if len(json.dumps(frame)) <= budget:
        assert texts == [json.dumps(frame)]  # a frame that fits goes as it always did
    else:
        parts = [json.loads(text) for text in texts]
        assert [part["last"] for part in parts] == [False] * (len(parts) - 1) + [True]
        # No part is needlessly small: each but the last fills at least half the budget.
        assert all(len(text) > budget // 2 for text in texts[:-1])


def test_a_budget_with_no_room_for_text_is_refused() -> None:
    with pytest.raises(ValueError, match="no room"):
        list(wire_texts(frame_of(100), 40))


def test_the_page_joins_the_parts_the_server_cuts() -> None:
    """chat/parts.js, run by Node on the server's own parts, gives back the frame exactly."""
    frame = frame_of(5000)
    texts = list(wire_texts(frame, 1024))
    script = (
        'import { createJoiner } from "./streaming/static/streaming/chat/parts.js";\n'
        'import { readFileSync } from "node:fs";\n'
        "const { join } = createJoiner();\n"
        'const texts = JSON.parse(readFileSync(0, "utf8"));\n'
        "const results = texts.map(join);\n"
        "const out = { pending: results.slice(0, -1), whole: results.at(-1) };\n"
        "process.stdout.write(JSON.stringify(out));\n"
    )
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        input=json.dumps(texts),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(result.stdout)
    assert out["pending"] == [None] * (len(texts) - 1)
    assert json.loads(out["whole"]) == frame


@pytest.mark.django_db(transaction=True)
async def test_a_snapshot_over_the_budget_comes_in_parts_and_whole(
    connect: Any, settings: Any, conversation: Conversation, user: Any
) -> None:
    settings.FRAME_BUDGET_BYTES = 2048
    content = AWKWARD * 700  # ~4,900 characters, ~27 kB as JSON
    message = await Message.objects.acreate(
        conversation=conversation, role=Message.Role.USER, content=content, client_id=None
    )
    await Conversation.objects.filter(pk=conversation.pk).aupdate(leaf=message)

    communicator = await connect(conversation.id, user, snapshot=False)
    joiner = Joiner()
    snapshot = None
    while snapshot is None:
        snapshot = joiner.join(await communicator.receive_from(timeout=5))
    await communicator.disconnect()

    assert snapshot["type"] == "snapshot"
    assert [m["content"] for m in snapshot["messages"]] == [content]
    assert 10 < joiner.longest <= 2048
