"""Create the demo account `make run` prints, once, and print its credentials."""

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a demo superuser (first run only) and print how to log in."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="demo")
        parser.add_argument(
            "--credentials-file",
            default=str(Path(settings.BASE_DIR) / "var" / "demo-credentials"),
            help="Where the generated password is kept, so later runs can print it again.",
        )

    def handle(self, *args: Any, username: str, credentials_file: str, **options: Any) -> None:
        path = Path(credentials_file)
        User = get_user_model()
        if not User.objects.filter(username=username).exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(username, email="", password=password)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(password + "\n")
            path.chmod(0o600)
        if path.exists():
            password = path.read_text().strip()
            self.stdout.write(f"Log in as {username!r} with password {password!r}")
        else:
            self.stdout.write(
                f"User {username!r} exists; set its password with "
                f"`manage.py changepassword {username}`."
            )
