"""The business rules: every change to conversations and messages goes through a ``do_*`` here.

Each function opens its own transaction and queues what it changed on it (``events``), so a
push never describes a row that was rolled back. They are synchronous (the ORM is); async
callers wrap them in ``database.to_async``. Callers import what they use from the module
that defines it: this package re-exports nothing.

    events          the one door: events queued on a transaction, sent after its commit
    database        the bounded thread pool and ``to_async``
    conversations   who may see what; posting, regenerating, branches, snapshots
    tree            a conversation's messages as a tree: branches and versions
    context         what the model is sent for an answer, within OPENAI_CONTEXT_TOKENS
    attachments     files attached to messages: uploaded, owned, sent to the model, deleted
    drafts          a conversation saved with its first message
    deletion        delete, undo for a while, purge for good (expired deletes, old conversations)
    listing         a user's conversations: pages, day groups, search, live list events
    titles          a short title asked of the model after the first answer (AUTO_TITLE)
    answers         a streaming answer's row: checkpoints, stop requests, sweep, ending
    quotas          per-user limits: answers at once, a minute, tokens a day
    user_settings   what a user's new conversations start with
    exports         conversations as files: JSON (docs/export-format.md) and Markdown
    imports         an export file read back in, checked whole, written all or nothing
    usage           tokens spent, summed by day, model, user or any other key
    providers       providers and models: the picker, a conversation's choice, resolving it

An answer's row decides its fate: every write to a streaming answer is conditional on its
status still being `streaming`, and liveness is judged by the database's clock, so two
processes (or a paused one and a live one) can never both end the same answer.
"""
