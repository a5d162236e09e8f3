"""The channels-redis layers chatsite configures, and the Redis hosts they connect to.

settings.py builds CHANNEL_LAYERS with these from the environment; tests and benchmarks
build the same layers on Redis servers of their own.
"""

from collections.abc import Sequence

from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

# A Redis server the layer uses: a redis:// URL, or a dict of redis-py connection keywords
# (channels-redis's host format; with `sentinels` and `master_name`, a Sentinel-managed one).
RedisHost = str | dict[str, object]


# Connecting to Redis gives up after this: reads have no timeout (below), so without one a
# host that drops packets would hold a send for as long as TCP tries.
REDIS_CONNECT_TIMEOUT_SECONDS = 5.0


def redis_connection(host: RedisHost, **options: object) -> dict[str, object]:
    """channels-redis's host entry for ``host``, with these redis-py connection options."""
    return {**({"address": host} if isinstance(host, str) else host), **options}


def redis_channel_layer(hosts: Sequence[RedisHost], **config: object) -> dict[str, object]:
    """The channels-redis layer for these Redis hosts (several shard the channels)."""
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 gives every socket a 5 s read timeout, which kills channels-redis's
            # blocking receive on any idle socket (channels_redis issue #422). The layer's
            # own BZPOPMIN timeout already bounds each wait, so reads need none.
            # Every concurrent send holds a connection; redis-py's default ceiling of 100
            # fails sends with MaxConnectionsError when a process streams ~100 answers.
            "hosts": [
                redis_connection(
                    host,
                    socket_timeout=None,
                    socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
                    max_connections=1000,
                )
                for host in hosts
            ],
            # Per channel, and a process's sockets all share one Redis key: over this,
            # sends are dropped silently (the protocol heals it, but rarely is better).
            "capacity": 10000,
            "expiry": 60,
            **config,
        },
    }


def redis_pubsub_layer(hosts: Sequence[RedisHost], **config: object) -> dict[str, object]:
    """channels-redis's Pub/Sub layer for these Redis hosts: a group send is one PUBLISH,
    pipelined with the process's others (chatsite/pubsub.py)."""
    return {
        "BACKEND": "chatsite.pubsub.PipelinedPubSubChannelLayer",
        "CONFIG": {
            "hosts": [
                redis_connection(
                    host, socket_timeout=None, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS
                )
                for host in hosts
            ],
            **config,
        },
    }


def redis_layer(hosts: Sequence[RedisHost], kind: str, **config: object) -> dict[str, object]:
    """The channels-redis layer of ``kind`` ("pubsub" or "core") for these Redis hosts."""
    return (redis_pubsub_layer if kind == "pubsub" else redis_channel_layer)(hosts, **config)


# How long a sentinel may take to answer before the next one is asked.
REDIS_SENTINEL_TIMEOUT_SECONDS = 0.5


def sentinel_hosts(
    sentinels: list[str], masters: list[str], password: str, sentinel_password: str
) -> list[dict[str, object]]:
    """One host entry per master name, each found through the same Redis Sentinels."""
    addresses: list[tuple[str, int]] = []
    for sentinel in sentinels:
        host, _, port = sentinel.rpartition(":")
        if not host or not port.isdigit():
            raise ImproperlyConfigured(
                f"REDIS_SENTINELS lists host:port pairs, such as 10.0.0.5:26379, not {sentinel!r}."
            )
        addresses.append((host.strip("[]"), int(port)))
    # Asked in turn: one that went silent must not hold up finding the master. redis-py
    # would ask it again ten times, backing off, before the next; the next is the retry.
    sentinel_kwargs: dict[str, object] = {
        "socket_timeout": REDIS_SENTINEL_TIMEOUT_SECONDS,
        "socket_connect_timeout": REDIS_SENTINEL_TIMEOUT_SECONDS,
        "retry": Retry(NoBackoff(), 0),
        **({"password": sentinel_password} if sentinel_password else {}),
    }
    return [
        {
            "sentinels": addresses,
            "master_name": master,
            "sentinel_kwargs": dict(sentinel_kwargs),
            **({"password": password} if password else {}),
        }
        for master in masters
    ]
