"""What a conversation's page and its snapshots hold: a window of the branch shown, at its
end, or around a message (the one a search found, or the one the reader is at), and the
answer streaming wherever it is (docs/protocol.md, "Older messages" and "Opening at a
message"). However long the conversation, each reads a window of it.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from streaming import control, frames
from streaming.models import Conversation, Message
from streaming.services import conversations, providers, window


@dataclass(frozen=True)
class Shown:
    """What a page of a conversation holds: a window of the branch shown, and the answer
    streaming wherever it is."""

    leaf_id: uuid.UUID | None
    window: window.Window
    active: Message | None
    #: How many messages are stored, every version.
    count: int
    #: The message the window is around, when one was asked for and is on the branch shown.
    focus: uuid.UUID | None = None

    def messages(self) -> list[Message]:
        """The window's messages, and the streaming answer's when it is not among them (on a
        branch not shown, or outside the window)."""
        held = self.window.messages
        if self.active is None or self.active.pk in {m.pk for m in held}:
            return held
        return [*held, self.active]

    def versions(self) -> list[frames.VersionStub]:
        return [window.stub_of(m) for m in self.window.versions if m != self.active]

    def window_end(self) -> str | None:
        """The window's last message when newer ones are below it, else None."""
        end = self.window.end_id
        return str(end) if end else None

    def initial(self) -> dict[str, Any]:
        """What the conversation's page starts from (its json_script), as a snapshot has it,
        and the message it opens at."""
        return {
            "messages": [control.serialize_message(m) for m in self.messages()],
            "versions": self.versions(),
            "count": self.count,
            "leaf_id": str(self.leaf_id) if self.leaf_id else None,
            "window_end": self.window_end(),
            "focus": str(self.focus) if self.focus else None,
        }


def shown(conversation: Conversation, around: Any = None) -> Shown:
    """A window of the branch shown (services/window.py) and the streaming answer: around
    the message ``around`` when it is one of the branch shown, else at the branch's end."""
    leaf_id = window.leaf_of(conversation)
    active = conversation.messages.filter(status=Message.Status.STREAMING).order_by("created_at")
    count = conversation.messages.count()
    focus = conversations.uuid_or_none(around) if around is not None else None
    held = None
    if focus is not None and leaf_id is not None:
        held = window.around(conversation, focus, leaf_id, count)
    if held is None:
        focus, held = None, window.window(conversation, leaf_id)
    return Shown(leaf_id, held, active.first(), count, focus)


def opened_at(conversation: Conversation, message: Any) -> Shown:
    """What the page of the conversation opened at ``message`` (`?message=`, a search hit)
    holds: a window around it. On a branch other than the one shown, that branch is shown
    first, as picking its version would, and every tab is told. Anything that is no
    message of this conversation (malformed, another's) opens the page at the end, as if
    none were asked for: whether it exists elsewhere is not said."""
    focus = conversations.uuid_or_none(message) if message else None
    if focus is None or not conversation.messages.filter(pk=focus).exists():
        return shown(conversation)
    held = shown(conversation, around=focus)
    if held.focus is None:
        conversations.do_switch_branch(conversation, focus)
        held = shown(conversation, around=focus)
    return held


def snapshot(conversation: Conversation, around: Any = None) -> frames.SnapshotFrame:
    """The `snapshot` frame: a window of the branch shown (its newest messages, or those
    around ``around`` when it is a message of that branch), the other versions of each as
    stubs, the streaming answer (its message, and its text up to a seq), and how many
    messages are stored in all. The page asks for older and newer messages with `history`.

    Raises ConversationGone if the conversation was deleted.
    """
    conversations.refresh(conversation)
    held = shown(conversation, around)
    return {
        "type": "snapshot",
        "title": conversation.title,
        "system_prompt": conversation.system_prompt,
        "model_choice": providers.choice_of(
            conversation.provider_id, conversation.model, conversation.owner_id
        ),
        "messages": [control.serialize_message(m) for m in held.messages()],
        "versions": held.versions(),
        "count": held.count,
        "leaf_id": str(held.leaf_id) if held.leaf_id else None,
        "window_end": held.window_end(),
        "active": window.active_of(held.active) if held.active else None,
    }
