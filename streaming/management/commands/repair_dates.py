"""Find, and with --apply repair, rows whose dates can no longer be read."""

from typing import Any

from django.core.management.base import BaseCommand

from streaming.services import repairs


class Command(BaseCommand):
    help = (
        "Find rows with a date outside the years 1 to 9999 (stored by imports before dates "
        "were converted to UTC: the admin, pages and exports that read them fail). Without "
        "--apply it only reports them; with it, each such date becomes the nearest one that "
        "can be read (0001-01-01 or 9999-12-31 UTC)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--apply", action="store_true", help="repair them; without it, only report them"
        )

    def handle(self, *args: Any, apply: bool, **options: Any) -> None:
        found = repairs.do_repair_dates(apply=apply)
        for unreadable in found:
            verb = "repaired" if apply else "unreadable"
            self.stdout.write(
                f"{unreadable.table}.{unreadable.column}: {unreadable.rows} row(s) {verb}."
            )
        if not found:
            self.stdout.write("No date outside the years 1 to 9999: nothing to repair.")
        elif not apply:
            self.stdout.write("Nothing was changed; run again with --apply to repair them.")
