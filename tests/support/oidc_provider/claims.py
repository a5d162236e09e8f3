"""The claims the test provider gives: read from the users file at each sign-in, so a test
changes a user's groups by writing the file."""

import json
import os
from pathlib import Path
from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator


def users() -> dict[str, dict[str, Any]]:
    """The users file: name → password, email, given_name, family_name, groups."""
    loaded: dict[str, dict[str, Any]] = json.loads(Path(os.environ["IDP_USERS"]).read_text())
    return loaded


class Validator(OAuth2Validator):  # type: ignore[misc]
    """Every claim in the ID token and from userinfo, whatever the scopes."""

    oidc_claim_scope = None

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        person = users()[request.user.username]
        return {
            "preferred_username": request.user.username,
            "email": person.get("email", ""),
            "given_name": person.get("given_name", ""),
            "family_name": person.get("family_name", ""),
            "groups": person.get("groups", []),
        }
