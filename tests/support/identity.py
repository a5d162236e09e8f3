"""The test identity provider (tests/support/oidc_provider) as a process the tests start on
a loopback port, and what chatsite's environment needs to sign in through it."""

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.support.servers import end_process, free_port, start_listening

CLIENT_ID = "chatsite-tests"
CLIENT_SECRET = "a-client-secret-for-the-tests-only"
PASSWORD = "provider-password-1"


class IdentityProvider:
    """A running provider; its users and their claims are a JSON file the test may rewrite."""

    def __init__(self, workdir: Path, people: dict[str, dict[str, Any]]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.users_path = workdir / "users.json"
        self.people = {name: {"password": PASSWORD, **person} for name, person in people.items()}
        self._write()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = f"{self.url}/o"
        self.log_path = workdir / "idp.log"
        self._log = self.log_path.open("wb")
        self.process = start_listening(
            [sys.executable, "-m", "tests.support.oidc_provider", str(self.port)],
            {
                "PATH": "/usr/bin:/bin",
                "IDP_WORKDIR": str(workdir),
                "IDP_USERS": str(self.users_path),
                "IDP_CLIENT_ID": CLIENT_ID,
                "IDP_CLIENT_SECRET": CLIENT_SECRET,
            },
            self._log,
            self.log_path,
            self.port,
        )

    def _write(self) -> None:
        self.users_path.write_text(json.dumps(self.people))

    def set_groups(self, name: str, groups: list[str]) -> None:
        """What the groups claim says of ``name`` from their next sign-in on."""
        self.people[name]["groups"] = groups
        self._write()

    def chatsite_env(self, **extra: str) -> dict[str, str]:
        """chatsite's environment for signing in here."""
        return {
            "OIDC_SERVER_URL": self.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_NAME": "Test Company",
            "OIDC_SCOPES": "openid,profile,email,groups",
            "OIDC_GROUPS_CLAIM": "groups",
            **extra,
        }

    def log(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the process, and close its log."""
        end_process(self.process)
        self._log.close()


@contextmanager
def identity_provider(
    workdir: Path, people: dict[str, dict[str, Any]]
) -> Iterator[IdentityProvider]:
    """A provider with ``people`` (name → email, given_name, family_name, groups)."""
    provider = IdentityProvider(workdir, people)
    try:
        yield provider
    finally:
        provider.stop()


def sign_in_at_provider(page: Page, name: str) -> None:
    """From chatsite's login page: its button, then the provider's own form (the provider
    of ``IdentityProvider.chatsite_env``, named Test Company)."""
    page.goto("/login/")
    page.get_by_role("button", name="Sign in with Test Company").click()
    expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in at the provider").click()
