"""Rules for the text people give: whether it can be stored, how long it may be, and what
it costs in tokens.

Small and pure (settings and the error tree only), so every layer may use them: the
services, the socket, the forms, the metrics.
"""

from typing import Any

from django.conf import settings

from streaming.exceptions import ChatError, ErrorCode, Invalid

#: The longest title: Conversation.title's max_length.
TITLE_MAX_CHARS = 200
# Characters per token, for text whose tokens the provider did not count. About right for
# English with OpenAI's tokenizers; cheap, and only ever used to stay within budgets.
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """A cheap guess at the tokens in ``text``: never 0, as the SQL in quotas.tokens_used_since."""
    return len(text) // CHARS_PER_TOKEN + 1


def check_storable(text: str, *, what: str) -> None:
    """Refuse text the database cannot store as it is: a NUL, or half of a surrogate pair.

    PostgreSQL refuses NUL in text, and UTF-8 has no bytes for a lone surrogate (JSON can
    carry one as an escape such as \\ud800). Refused, not cleaned: what is saved is what
    was sent. ``what`` names the text for the person who reads the message.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        storable = False
    else:
        storable = "\x00" not in text
    if not storable:
        raise ChatError(
            f"{what} contains a character that cannot be saved (a NUL character or half "
            "of a surrogate pair). Remove it and try again.",
            code=ErrorCode.BAD_TEXT,
        )


def check_length(text: str, limit: int, *, what: str, code: ErrorCode) -> None:
    """Refuse ``text`` longer than ``limit`` characters, saying by how much."""
    if len(text) > limit:
        raise Invalid(f"{what} is {len(text)} characters long; the limit is {limit}.", code=code)


def validate_content(content: Any, *, empty_ok: bool = False) -> str:
    """The text of a user message, or Invalid saying why it cannot be sent; with
    ``empty_ok`` (it carries files) it may have none."""
    if empty_ok and (content is None or (isinstance(content, str) and not content.strip())):
        return ""
    if not isinstance(content, str) or not content.strip():
        raise Invalid("Write a message before sending.", code=ErrorCode.EMPTY_CONTENT)
    limit = settings.MAX_MESSAGE_CHARS
    check_length(content, limit, what="The message", code=ErrorCode.CONTENT_TOO_LONG)
    check_storable(content, what="The message")
    return content


def validate_system_prompt(system_prompt: Any) -> str:
    """A system prompt as given, or Invalid saying why it cannot be used."""
    if not isinstance(system_prompt, str):
        raise Invalid("The system prompt must be text.", code=ErrorCode.BAD_SYSTEM_PROMPT)
    limit = settings.MAX_SYSTEM_PROMPT_CHARS
    what = "The system prompt"
    check_length(system_prompt, limit, what=what, code=ErrorCode.SYSTEM_PROMPT_TOO_LONG)
    try:
        check_storable(system_prompt, what=what)
    except ChatError as exc:  # its own code: the page tells it from a message's bad_text
        raise Invalid(exc.message, code=ErrorCode.BAD_SYSTEM_PROMPT) from None
    return system_prompt


def validate_title(title: Any) -> str:
    """A title a user gives a conversation, without outer white space, or Invalid."""
    if not isinstance(title, str) or not title.strip():
        raise Invalid("Write a title to rename the conversation.", code=ErrorCode.BAD_TITLE)
    stripped = title.strip()
    check_length(stripped, TITLE_MAX_CHARS, what="The title", code=ErrorCode.TITLE_TOO_LONG)
    try:
        check_storable(stripped, what="The title")
    except ChatError as exc:
        raise Invalid(exc.message, code=ErrorCode.BAD_TITLE) from None
    return stripped
