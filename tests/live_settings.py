"""Settings for the daphne processes tests start: the real settings, with fast hashing.

Users made by the tests carry MD5 password hashes; the servers must be able to check them.
"""

import os

from chatsite.settings import *  # noqa: F403

# Hashing cost is for attackers, not for the test suite.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Fault tests run daphne processes whose layer loses, repeats or delays chosen messages.
if os.environ.get("CHAT_FAULTS"):
    from tests.faults import faulty_layer

    CHANNEL_LAYERS = {
        "default": faulty_layer(CHANNEL_LAYERS["default"], os.environ["CHAT_FAULTS"])  # noqa: F405
    }
