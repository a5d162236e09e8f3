"""What a careful client does with the frames: the reference for the browser's chat.js.

A socket's view of an answer is a text and the `seq` of the last delta in it. Deltas apply
only in order; a gap asks the server for a `sync`; a `sync` applies only if it starts where
the text ends. docs/protocol.md describes the same algorithm; the browser's is chat-stream.js.
"""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Assembler:
    """Every answer's text as one socket assembled it from snapshot, delta and sync frames."""

    text: dict[str, str] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Messages with a sync request outstanding, by the `after_seq` it asked for.
    syncing: dict[str, int] = field(default_factory=dict)
    gaps: int = 0

    def feed(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        """Apply one frame; return a `sync` request to send, if the frame showed a gap."""
        kind = frame["type"]
        if kind == "snapshot":
            for message in frame["messages"]:
                self.text[message["id"]] = message["content"]
                if message["status"] != "streaming":
                    self.done[message["id"]] = message
            active = frame["active"]
            if active is not None:
                self.text[active["message_id"]] = active["text"]
                self.seq[active["message_id"]] = active["seq"]
                # The server asks the generation for the rest on this socket's behalf.
                self.syncing[active["message_id"]] = active["seq"]
        elif kind == "start":
            self.text.setdefault(frame["message_id"], "")
            self.seq.setdefault(frame["message_id"], 0)
        elif kind == "delta":
            return self._delta(frame)
        elif kind == "sync":
            message_id = frame["message_id"]
            if frame["after_seq"] == self.seq.get(message_id, 0):
                self.text[message_id] = self.text.get(message_id, "") + frame["text"]
                self.seq[message_id] = frame["seq"]
            self.syncing.pop(message_id, None)
        elif kind == "done":
            self.done[frame["message_id"]] = frame
        return None

    def quiet(self) -> list[dict[str, Any]]:
        """Sync requests for every answer still streaming, after a quiet spell.

        Group sends can be dropped without a trace, `done` included: an answer that went
        quiet is asked about (the server answers `sync`, or `done` if it has ended).
        """
        return [
            {"type": "sync", "message_id": message_id, "after_seq": seq}
            for message_id, seq in self.seq.items()
            if message_id not in self.done
        ]

    def _delta(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        message_id, seq = frame["message_id"], frame["seq"]
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
