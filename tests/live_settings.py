"""Settings for the daphne processes tests start: the real settings, with fast hashing.

Users made by the tests carry MD5 password hashes; the servers must be able to check them.
"""

from chatsite.settings import *  # noqa: F403

# Hashing cost is for attackers, not for the test suite.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
