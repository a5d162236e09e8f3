"""Delete for good the conversations nobody has touched for a while: a retention policy."""

import math
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from streaming.services import deletion

# A century: more is no retention policy, and far more overflows the date arithmetic.
MAX_DAYS = 36500


class Command(BaseCommand):
    help = (
        "Delete for good the conversations (deleted ones too) with no activity for DAYS "
        "days, with their messages. Without --apply it only counts them and writes nothing. "
        "A conversation whose answer is still streaming is never touched."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--older-than",
            required=True,
            metavar="DAYS",
            help="days since a conversation's last activity (a positive number, e.g. 90 or 0.5)",
        )
        parser.add_argument(
            "--apply", action="store_true", help="delete them; without it, only count them"
        )

    def handle(self, *args: Any, older_than: str, apply: bool, **options: Any) -> None:
        days = parse_days(older_than)
        purged = deletion.do_purge_conversations(timedelta(days=days), apply=apply)
        counts = f"{purged.conversations} conversation(s) and {purged.messages} message(s)"
        idle = f"with no activity for {days:g} day(s)"
        if apply:
            self.stdout.write(f"Purged {counts} {idle}.")
        else:
            self.stdout.write(
                f"Dry run: {counts} {idle} would be purged. Nothing was deleted; "
                "run again with --apply to delete them."
            )


def parse_days(raw: str) -> float:
    """``--older-than`` as a number of days, or a CommandError saying what it must be."""
    try:
        days = float(raw)
    except ValueError:
        days = math.nan
    if not 0 < days <= MAX_DAYS:  # NaN fails this too
        raise CommandError(
            f"--older-than must be a positive number of days (at most {MAX_DAYS}), not {raw!r}."
        )
    return days
