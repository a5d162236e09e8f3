"""Settings for the daphne processes tests start: the real settings, with fast hashing.

Users made by the tests carry MD5 password hashes; the servers must be able to check them.
"""

import os

from chatsite.channel_layers import redis_layer
from chatsite.settings import *  # noqa: F403
from chatsite.settings import CHANNEL_LAYER, REDIS_HOSTS

# Hashing cost is for attackers, not for the test suite.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Pub/Sub channels belong to the whole Redis server, not to a database: the servers one test
# process starts share a prefix no other test process uses (its conftest sets it).
if REDIS_HOSTS and (layer_prefix := os.environ.get("TEST_LAYER_PREFIX")):
    CHANNEL_LAYERS = {"default": redis_layer(REDIS_HOSTS, CHANNEL_LAYER, prefix=layer_prefix)}

# Fault tests run daphne processes whose layer loses, repeats or delays chosen messages.
if os.environ.get("CHAT_FAULTS"):
    from tests.support.faults import faulty_layer

    CHANNEL_LAYERS = {"default": faulty_layer(CHANNEL_LAYERS["default"], os.environ["CHAT_FAULTS"])}
