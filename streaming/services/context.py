"""What the model is sent for an answer: the system prompt, then the newest turns of the
branch that fit OPENAI_CONTEXT_TOKENS, and what that costs in estimated tokens."""

from django.conf import settings

from streaming.models import Conversation, Message
from streaming.text import estimate_tokens

# What each message costs beyond its text (role, separators), in estimated tokens.
_MESSAGE_OVERHEAD_TOKENS = 4


def request_messages(conversation: Conversation, path: list[Message]) -> list[dict[str, str]]:
    """What to send the model for an answer that follows ``path`` (a branch: tree.py), the
    system prompt first.

    An answer that failed with no text is left out; a partial answer stays, since the user
    saw it. Only the newest turns that fit ``OPENAI_CONTEXT_TOKENS`` with the system prompt
    are sent (the newest always), starting with a user's turn.
    """
    system: list[dict[str, str]] = []
    if conversation.system_prompt.strip():
        system.append({"role": "system", "content": conversation.system_prompt})
    turns = [
        {"role": message.role, "content": message.content}
        for message in path
        if message.role != Message.Role.ASSISTANT or message.content
    ]
    room = settings.OPENAI_CONTEXT_TOKENS - sum(_cost(turn) for turn in system)
    kept = 0
    for turn in reversed(turns):
        room -= _cost(turn)
        if room < 0 and kept:
            break
        kept += 1
    sent = turns[len(turns) - kept :]
    while len(sent) > 1 and sent[0]["role"] != Message.Role.USER:
        sent = sent[1:]
    return system + sent


def estimate(messages: list[dict[str, str]]) -> int:
    """What ``messages`` cost, in estimated tokens: the size of a request that sends them."""
    return sum(_cost(message) for message in messages)


def _cost(message: dict[str, str]) -> int:
    return estimate_tokens(message["content"]) + _MESSAGE_OVERHEAD_TOKENS
