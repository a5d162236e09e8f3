"""What a careful client does with the frames: the reference for the chat page's modules.

A socket's view of an answer is a text and the `seq` of the last delta in it. Deltas apply
only in order; a gap asks the server for a `sync`; a `sync` applies only if it starts where
the text ends; `done` ends the answer, and its saved text (holding the deltas up to its
`seq`) wins. A frame about a message the socket does not know (its user message or `start`
was lost), or a `pong` that disagrees with what the socket knows, asks for a `resync`: a
fresh snapshot. docs/protocol.md describes the same algorithm; the browser's is
chat/stream.js (one answer), chat/handlers.js and chat/sync.js (resync, ping and pong).

`text` keeps what the frames assembled, apart from the saved text a `done` brings, so tests
can check the assembly itself; `shown()` is what a page shows.
"""

import json
from dataclasses import dataclass, field
from typing import Any

STREAMING = "streaming"
STUB = "stub"
PART = "part"


@dataclass
class Joiner:
    """A socket's frames made whole again: the server sends one longer than its budget as
    `part` frames (docs/protocol.md, "Frames in parts"), as the page's chat/parts.js joins
    them. Records the longest socket message it was given, to hold it to the budget."""

    pieces: list[str] = field(default_factory=list)
    #: The length in bytes of the longest socket message seen.
    longest: int = 0

    def join(self, text: str) -> dict[str, Any] | None:
        """The frame ``text`` completes (the socket message's own, or its parts joined), or
        None while a frame is still coming in parts."""
        self.longest = max(self.longest, len(text.encode()))
        frame = json.loads(text)
        if frame.get("type") != PART:
            assert not self.pieces, f"a whole frame came amid parts: {text[:80]}"
            return frame  # type: ignore[no-any-return]
        self.pieces.append(frame["data"])
        if not frame["last"]:
            return None
        whole = "".join(self.pieces)
        self.pieces = []
        return json.loads(whole)  # type: ignore[no-any-return]


@dataclass
class Assembler:
    """Everything one socket knows of a conversation, from the frames it received."""

    #: Each answer's text as the snapshot, delta and sync frames assembled it.
    text: dict[str, str] = field(default_factory=dict)
    #: The seq of the last delta in each answer's `text`.
    seq: dict[str, int] = field(default_factory=dict)
    #: The saved message of every message known not to stream (from a snapshot or a `done`).
    ended: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Messages with a sync request outstanding, by the `after_seq` it asked for.
    syncing: dict[str, int] = field(default_factory=dict)
    #: Every stored message the socket knows: id → status, oldest first (stubs of versions,
    #: known without their text, as "stub").
    stored: dict[str, str] = field(default_factory=dict)
    #: Stored messages the socket does not hold: older than its snapshot's window.
    unheld: int = 0
    #: The last message of the branch shown (docs/protocol.md, "Versions").
    leaf: str | None = None
    #: The conversation's stored title as last told; None before the first snapshot.
    title: str | None = None
    #: A `resync` went out and its snapshot has not come yet.
    resyncing: bool = False
    #: Deltas that showed a gap.
    gaps: int = 0
    #: `done` frames whose saved text held deltas this socket never got (a lost tail).
    healed: int = 0
    #: `done` frames whose saved text disagreed with the assembled one, beyond a lost tail or
    #: a sweep back to a checkpoint: something doubled or misapplied.
    mismatches: int = 0
    #: delta, sync and done frames about messages the socket did not know.
    unknown: int = 0

    def feed(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        """Apply one frame; return a `sync` or `resync` request to send, if it calls for one."""
        kind = frame["type"]
        if kind == "snapshot":
            self._snapshot(frame)
        elif kind == "message":
            if isinstance(frame.get("title"), str):
                self.title = frame["title"]
            if frame["message"]["id"] not in self.stored:
                self.leaf = frame["message"]["id"]  # a new message ends the branch shown
            self.stored[frame["message"]["id"]] = frame["message"]["status"]
        elif kind == "branch":
            if self.stored.get(frame["leaf_id"], STUB) == STUB:
                return self._unknown()  # missed, or a version known without its branch
            self.leaf = frame["leaf_id"]
        elif kind == "start":
            self._start(frame)
        elif kind == "delta":
            return self._delta(frame)
        elif kind == "sync":
            return self._sync(frame)
        elif kind == "done":
            return self._done(frame)
        elif kind == "pong":
            return self.pong(frame)
        return None

    def quiet(self) -> list[dict[str, Any]]:
        """Sync requests for every answer still streaming, after a quiet spell.

        Group sends can be dropped without a trace, `done` included: an answer that went
        quiet is asked about (the server answers `sync`, or `done` if it has ended).
        """
        return [
            {"type": "sync", "message_id": message_id, "after_seq": seq}
            for message_id, seq in self.seq.items()
            if message_id not in self.ended
        ]

    def pong(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        """A `resync` request if the stored conversation a `pong` describes is not the known one."""
        last_id = self.leaf
        last_status = self.stored.get(last_id) if last_id is not None else None
        title_differs = self.title is not None and frame.get("title", self.title) != self.title
        if (
            frame["count"] != len(self.stored) + self.unheld
            or frame["last_id"] != last_id
            or frame["last_status"] != last_status
            or title_differs
        ):
            return self._resync()
        return None

    def shown(self, message_id: str) -> str:
        """The message's text as a page shows it: the saved text once it ended."""
        if message_id in self.ended:
            return str(self.ended[message_id]["content"])
        return self.text.get(message_id, "")

    def _snapshot(self, frame: dict[str, Any]) -> None:
        self.resyncing = False
        self.title = frame["title"]
        self.stored = {m["id"]: m["status"] for m in frame["messages"]}
        self.stored.update({v["id"]: STUB for v in frame["versions"] if v["id"] not in self.stored})
        self.unheld = frame["count"] - len(self.stored)
        self.leaf = frame["leaf_id"]
        for message in frame["messages"]:
            if message["status"] != STREAMING:
                self.ended[message["id"]] = message
            if message["id"] not in self.seq:
                # Not being assembled here: the stored text is all there is of it.
                self.text[message["id"]] = message["content"]
        active = frame["active"]
        if active is None:
            return
        message_id = active["message_id"]
        if active["seq"] < self.seq.get(message_id, 0):
            # A resync mid-answer: this socket has more than the checkpoint. The sync the
            # server sends on its behalf is stale for it.
            return
        self.text[message_id] = active["text"]
        self.seq[message_id] = active["seq"]
        # The server asks the generation for the rest on this socket's behalf.
        self.syncing[message_id] = active["seq"]

    def _start(self, frame: dict[str, Any]) -> None:
        message_id, seq = frame["message_id"], frame.get("seq", 0)
        # A new answer, or one continued (it has text to go on from), ends the branch shown.
        if message_id not in self.stored or seq > 0:
            self.leaf = message_id
        if seq > 0 and self.ended.pop(message_id, None) is not None:
            self.stored[message_id] = STREAMING  # continued: it streams again from its text
        if message_id in self.ended:
            return  # late: it has ended already
        self.stored.setdefault(message_id, STREAMING)
        # From the frame's text and seq ("" and 0 for a new answer), unless this socket has
        # more of it already (a snapshot read after it began).
        if seq > self.seq.get(message_id, -1):
            self.text[message_id] = frame.get("text", "")
            self.seq[message_id] = seq

    def _delta(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        message_id, seq = frame["message_id"], frame["seq"]
        if message_id not in self.stored:
            return self._unknown()
        if message_id in self.ended:
            return None  # late or repeated: `done` had the final text
        last = self.seq.get(message_id, 0)
        if seq <= last:
            return None  # already have it
        if seq == last + 1:
            self.text[message_id] = self.text.get(message_id, "") + frame["text"]
            self.seq[message_id] = seq
            return None
        self.gaps += 1
        if self.syncing.get(message_id) == last:
            return None  # already asked for exactly this
        self.syncing[message_id] = last
        return {"type": "sync", "message_id": message_id, "after_seq": last}

    def _sync(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        message_id = frame["message_id"]
        if message_id not in self.stored:
            return self._unknown()
        if message_id in self.ended:
            return None
        if frame["after_seq"] == self.seq.get(message_id, 0):
            self.text[message_id] = self.text.get(message_id, "") + frame["text"]
            self.seq[message_id] = frame["seq"]
        # Stale or not, the request was answered; a gap still open asks again at its next delta.
        self.syncing.pop(message_id, None)
        return None

    def _done(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        message_id, message = frame["message_id"], frame["message"]
        if message_id not in self.stored:
            return self._unknown()
        self.stored[message_id] = message["status"]
        if message_id in self.ended:
            return None  # repeated (a sync answered with the `done` that also arrived)
        self.ended[message_id] = message
        self.syncing.pop(message_id, None)
        assembled, last = self.text.get(message_id, ""), self.seq.get(message_id, 0)
        saved, seq = message["content"], frame.get("seq")
        if saved == assembled:
            return None
        if seq is not None and seq > last and saved.startswith(assembled):
            self.healed += 1  # the saved text brings the tail this socket missed
        elif not (seq is not None and seq < last and assembled.startswith(saved)):
            # Less than streamed is an answer swept from its checkpoint; anything else is not.
            self.mismatches += 1
        return None

    def _unknown(self) -> dict[str, Any] | None:
        self.unknown += 1
        return self._resync()

    def _resync(self) -> dict[str, Any] | None:
        """A `resync` request, unless one is out already (once per gap, not per frame)."""
        if self.resyncing:
            return None
        self.resyncing = True
        return {"type": "resync"}
