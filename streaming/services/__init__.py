"""The business rules: every change to conversations and messages goes through a ``do_*`` here.

Each function opens its own transaction and announces what it changed to the conversation's
group with ``transaction.on_commit``, so a push never describes a row that was rolled back.
They are synchronous (the ORM is); async callers wrap them in ``to_async``.

    database        the bounded thread pool and ``to_async``
    conversations   who may see what; posting, regenerating, branches, snapshots, deletion
    tree            a conversation's messages as a tree: branches and versions
    drafts          a conversation saved with its first message
    deletion        delete, undo for a while, purge for good (expired deletes, old conversations)
    listing         a user's conversations: pages, day groups, search, live list events
    titles          a short title asked of the model after the first answer (AUTO_TITLE)
    answers         a streaming answer's row: checkpoints, stop requests, sweep, ending
    user_settings   what a user's new conversations start with
    exports         conversations as files: JSON (docs/export-format.md) and Markdown
    imports         an export file read back in, checked whole, written all or nothing
    usage           tokens spent, summed by day, model, user or any other key
    providers       providers and models: the picker, a conversation's choice, resolving it

An answer's row decides its fate: every write to a streaming answer is conditional on its
status still being `streaming`, and liveness is judged by the database's clock, so two
processes (or a paused one and a live one) can never both end the same answer.
"""

from streaming.services.answers import (
    INTERRUPTED_MESSAGE,
    Checkpoint,
    Outcome,
    Saved,
    do_checkpoints,
    do_finish,
    do_request_stop,
    do_sweep_orphans,
    send_swept,
    sweep_orphans,
)
from streaming.services.conversations import (
    BRANCH_END,
    BUSY_MESSAGE,
    Follows,
    PostedMessage,
    check_length,
    check_storable,
    digest,
    do_create_conversation,
    do_post_user_message,
    do_regenerate,
    do_rename,
    do_set_system_prompt,
    do_switch_branch,
    get_conversation_for,
    get_message_in,
    request_messages,
    snapshot,
    validate_content,
    validate_system_prompt,
)
from streaming.services.database import (
    db_executor,
    to_async,
)
from streaming.services.deletion import (
    Purged,
    do_delete_conversation,
    do_purge_conversations,
    do_purge_deleted,
    do_restore_conversation,
    restorable,
)
from streaming.services.drafts import Started, do_start_conversation
from streaming.services.listing import (
    Hit,
    Page,
    announce_listing,
    group_label,
    page_of,
    search,
    send_listing,
)
from streaming.services.providers import (
    ProviderConfig,
    do_delete_providers,
    do_fetch_models,
    do_set_model,
    model_picker_for,
)
from streaming.services.titles import TITLE_MAX_TOKENS, auto_title_request, do_auto_title
from streaming.services.tree import Tree

__all__ = [
    "BRANCH_END",
    "BUSY_MESSAGE",
    "INTERRUPTED_MESSAGE",
    "TITLE_MAX_TOKENS",
    "Checkpoint",
    "Follows",
    "Hit",
    "Outcome",
    "Page",
    "PostedMessage",
    "ProviderConfig",
    "Purged",
    "Saved",
    "Started",
    "Tree",
    "announce_listing",
    "auto_title_request",
    "check_length",
    "check_storable",
    "db_executor",
    "digest",
    "do_auto_title",
    "do_checkpoints",
    "do_create_conversation",
    "do_delete_conversation",
    "do_delete_providers",
    "do_fetch_models",
    "do_finish",
    "do_post_user_message",
    "do_purge_conversations",
    "do_purge_deleted",
    "do_regenerate",
    "do_rename",
    "do_request_stop",
    "do_restore_conversation",
    "do_set_model",
    "do_set_system_prompt",
    "do_start_conversation",
    "do_sweep_orphans",
    "do_switch_branch",
    "get_conversation_for",
    "get_message_in",
    "group_label",
    "model_picker_for",
    "page_of",
    "request_messages",
    "restorable",
    "search",
    "send_listing",
    "send_swept",
    "snapshot",
    "sweep_orphans",
    "to_async",
    "validate_content",
    "validate_system_prompt",
]
