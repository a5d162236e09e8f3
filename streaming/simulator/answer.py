"""One answer to a chat completion request: its tokens, its pace, and the fault it was asked for."""

from collections.abc import Iterator
from itertools import islice
from typing import Any

from .directives import MAX_TOKENS, Directives
from .payloads import (
    AZURE_PROMPT_FILTER,
    ChatRequest,
    Completion,
    status_error,
    stream_error,
    usage,
)
from .stamps import stamp_token
from .text import (
    answer_tokens,
    markdown_tokens,
    parts_tokens,
    reasoning_tokens,
    repeated_markdown_tokens,
)
from .wire import Exchange

KEEPALIVE_EVERY = 5
"""With sim:keepalive=1, an SSE comment goes out before every this many chunks."""
BAD_JSON_EVENT = b'data: {"choices": [\n\n'


def tokens_written(tokens: Iterator[str], prefix: str) -> int:
    """How many of an answer's ``tokens`` ``prefix`` holds: those up to the first place where
    their text ends as ``prefix`` ends (the prefix may be the answer's newest part only),
    or, when there is none within ``MAX_TOKENS``, as many as its characters fill."""
    if not prefix:
        return 0
    text, by_length = "", None
    for count, token in enumerate(islice(tokens, MAX_TOKENS), start=1):
        text += token
        if by_length is None and len(text) >= len(prefix):
            by_length = count
        if text.endswith(prefix):
            return count
    return by_length or 0


class Answer:
    """One chat completion being answered: its tokens, its pace, and its fault."""

    def __init__(
        self,
        chat: ChatRequest,
        prompt: str,
        directives: Directives,
        *,
        default_tokens: int,
        default_rate: float,
    ) -> None:
        parts = parts_tokens(chat.last_user_content) if directives.parts else None
        sample = markdown_tokens() if directives.markdown else parts
        if directives.tokens is not None:
            length = directives.tokens
        else:
            length = default_tokens if sample is None else len(sample)

        def tokens() -> Iterator[str]:
            if parts is not None:
                return iter(parts)
            return answer_tokens(prompt) if sample is None else repeated_markdown_tokens()

        # A last message from the assistant is the answer so far, to go on from (as
        # llama.cpp's server and Ollama take it): the tokens it holds are not sent again,
        # and count towards the answer's length.
        written = tokens_written(tokens(), chat.prefix)
        rest = tokens()
        for _ in islice(rest, written):
            pass
        length = max(0, length - written)
        self.finish_reason = "stop"
        if chat.max_tokens is not None and chat.max_tokens < length:
            length, self.finish_reason = chat.max_tokens, "length"
        self.content = list(islice(rest, length))
        self.reasoning = list(islice(reasoning_tokens(prompt), directives.reasoning))
        rate = default_rate if directives.rate is None else directives.rate
        self.delay = 1 / rate if rate else 0.0
        self.directives = directives
        self.completion = Completion(chat.model, include_usage=chat.include_usage)
        self.usage = usage(
            chat.prompt_tokens, len(self.reasoning) + len(self.content), len(self.reasoning)
        )

    async def stream(self, ex: Exchange) -> None:
        """Answer as an event stream, chunk by chunk, with the fault asked for."""
        directives, completion = self.directives, self.completion
        events = await ex.start_events()
        sent = 0

        async def emit(chunk: dict[str, Any]) -> None:
            nonlocal sent
            if directives.keepalive and sent % KEEPALIVE_EVERY == 0:
                await events.comment("keep-alive")
            await events.data(chunk)
            sent += 1

        if directives.azure:
            await emit(AZURE_PROMPT_FILTER)
        await emit(completion.chunk({"role": "assistant", "content": "", "refusal": None}))
        if directives.nodelta:
            await emit(completion.chunk_without_delta())
        for token in self.reasoning:
            await ex.pause(self.delay)
            await emit(completion.chunk({"reasoning_content": token}))

        # The fault strikes after `after` tokens, or after the last one if the answer is shorter.
        fault_at = min(directives.after, len(self.content)) if directives.fault else -1
        for index in range(len(self.content) + 1):
            if index == fault_at:
                if directives.fault == "error":
                    await events.data(stream_error())
                    return await events.finish()
                if directives.fault == "drop":
                    ex.drop("dropped by sim:fault=drop")
                if directives.fault == "stall":
                    await ex.pause(directives.stall)
                if directives.fault == "badjson":
                    await events.send(BAD_JSON_EVENT)
            if index == len(self.content):
                break
            await ex.pause(self.delay)
            token = stamp_token() if directives.stamp else self.content[index]
            await emit(completion.chunk({"content": token}))

        await emit(completion.chunk({}, self.finish_reason))
        if completion.include_usage:
            await emit(completion.usage_chunk(self.usage))
        await events.send(b"data: [DONE]\n\n")
        await events.finish()

    async def complete(self, ex: Exchange) -> None:
        """Answer with one `chat.completion` object, after as long as streaming would take."""
        fault = self.directives.fault
        if fault == "drop":
            ex.drop("dropped by sim:fault=drop")
        if fault == "error":
            return await ex.send_json(500, status_error(500, self.completion.model))
        if fault == "stall":
            await ex.pause(self.directives.stall)
        await ex.pause(self.delay * (len(self.reasoning) + len(self.content)))
        if fault == "badjson":
            return await ex.send_raw(200, BAD_JSON_EVENT[len(b"data: ") :].strip())
        # Stamped tokens of one reply all carry the moment it is sent.
        tokens = [stamp_token()] * len(self.content) if self.directives.stamp else self.content
        content, reasoning = "".join(tokens), "".join(self.reasoning)
        await ex.send_json(
            200, self.completion.message(content, reasoning, self.finish_reason, self.usage)
        )
