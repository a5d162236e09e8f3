"""The environment variables: their readers, README's table of them, and the settings they make.

Settings are imported afresh in a child process under each environment, as a server would
import them, so nothing here depends on the suite's own settings or environment.
"""

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from chatsite import environment as env
from chatsite import variables
from chatsite.environment import VARIABLES
from chatsite.variables import Variable, Whole
from tests.support.servers import ROOT

KEY = "tests-only-secret-key"

# --- The readers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "raw", "value"),
    [
        (env.HTTPS, "Yes", True),
        (env.HTTPS, "off", False),
        (env.DB_THREADS, " 3 ", 3),
        (env.DAILY_TOKEN_BUDGET, "0", 0),
        (env.SIMULATOR_PORT, "65535", 65535),
        (env.OPENAI_READ_TIMEOUT, "2.5", 2.5),
        (env.ALLOWED_HOSTS, " a.example , ,b.example ", ["a.example", "b.example"]),
        (env.CLIENT_IP_HEADER, " X-Real-IP ", "X-Real-IP"),
        (env.SECRET_KEY, " spaced key ", " spaced key "),  # a key's every character counts
        (env.CHANNEL_LAYER, "CORE", "core"),
        (env.LOG_LEVEL, "warning", "WARNING"),
    ],
)
def test_variable_reads_what_is_set(
    monkeypatch: pytest.MonkeyPatch, variable: Variable[Any], raw: str, value: object
) -> None:
    monkeypatch.setenv(variable.name, raw)
    assert variable.read(default=None if variable.default is not None else "derived") == value


@pytest.mark.parametrize(
    ("variable", "raw", "complaint"),
    [
        (env.HTTPS, "maybe", "HTTPS must be true or false, not 'maybe'."),
        (env.DB_THREADS, "eight", "DB_THREADS must be a whole number, not 'eight'."),
        (env.DB_THREADS, "0", "DB_THREADS must be at least 1, not '0'."),
        (env.OPENAI_MAX_RETRIES, "-1", "OPENAI_MAX_RETRIES must be at least 0, not '-1'."),
        (env.SIMULATOR_PORT, "70000", "SIMULATOR_PORT must be at most 65535, not '70000'."),
        (env.OPENAI_READ_TIMEOUT, "soon", "OPENAI_READ_TIMEOUT must be a number, not 'soon'."),
        (env.OPENAI_READ_TIMEOUT, "0", "OPENAI_READ_TIMEOUT must be greater than 0, not '0'."),
        (env.OPENAI_READ_TIMEOUT, "nan", "OPENAI_READ_TIMEOUT must be greater than 0, not 'nan'."),
        (
            env.CLIENT_IP_HEADER,
            "X-Real-IP:",
            "CLIENT_IP_HEADER must be an HTTP header name such as X-Real-IP, not 'X-Real-IP:'.",
        ),
        (env.CHANNEL_LAYER, "redis", "CHANNEL_LAYER must be pubsub or core, not 'redis'."),
        (env.LOG_LEVEL, "loud", "LOG_LEVEL must be CRITICAL, FATAL, ERROR, WARN, WARNING, INFO,"),
    ],
)
def test_variable_refuses_a_value_it_cannot_be_naming_both(
    monkeypatch: pytest.MonkeyPatch, variable: Variable[Any], raw: str, complaint: str
) -> None:
    monkeypatch.setenv(variable.name, raw)
    with pytest.raises(ImproperlyConfigured) as refused:
        variable.read()
    assert str(refused.value).startswith(complaint)


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_variable_unset_or_empty_is_its_default(
    monkeypatch: pytest.MonkeyPatch, raw: str | None
) -> None:
    for variable in (env.ALLOWED_HOSTS, env.DB_POOL_SIZE):
        monkeypatch.delenv(variable.name, raising=False)
        if raw is not None:
            monkeypatch.setenv(variable.name, raw)
    hosts = env.ALLOWED_HOSTS.read()
    assert hosts == ["localhost", "127.0.0.1", "[::1]"]
    hosts.append("changed.example")  # a setting's list, not the table's
    assert env.ALLOWED_HOSTS.read() == ["localhost", "127.0.0.1", "[::1]"]
    assert env.DB_POOL_SIZE.read(default=12) == 12  # derived by settings


def test_variable_default_is_declared_or_derived_by_settings_never_both() -> None:
    with pytest.raises(TypeError, match="declares its default"):
        env.DB_THREADS.read(default=3)
    with pytest.raises(TypeError, match="must derive"):
        env.DB_POOL_SIZE.read()
    with pytest.raises(TypeError, match="how it is derived"):
        Whole("SOME_LIMIT", None, "A limit with no default and no words for one.")


def test_table_declares_each_variable_once_under_its_own_name() -> None:
    assert len({variable.name for variable in VARIABLES}) == len(VARIABLES)
    assert all(getattr(env, variable.name) is variable for variable in VARIABLES)


# --- README's configuration table -------------------------------------------------------------


def readme_defaults() -> dict[str, str]:
    """Each variable in README.md's configuration table, and the default the table shows."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    defaults = {}
    for row in section.splitlines():
        if row.startswith("| `"):
            # A row may name two variables with one default: `REDIS_PASSWORD`, `REDIS_…`.
            names, default, _meaning = row.strip("| ").split(" | ", 2)
            for name in re.findall(r"`(\w+)`", names):
                defaults[name] = default
    return defaults


def test_readme_table_shows_every_variable_and_its_default() -> None:
    """A variable missing on either side, or a default that differs, fails here.

    A plain default is compared as the code has it (`60` for 60.0, "empty" for ""); a
    default worked out from other settings, in the words the table declares for it.
    """
    assert readme_defaults() == {variable.name: variable.readme_default() for variable in VARIABLES}


# --- The settings they make ----------------------------------------------------------------

IMPORT_SETTINGS = """
import json
import chatsite.settings as settings

names = [name for name in dir(settings) if name.isupper()]
print(json.dumps({name: getattr(settings, name) for name in names}, default=repr))
"""

# Records which file read each environment variable, and how it got there.
RECORD_READS = """
import json, os, sys

reads = []

class Recorded(dict):
    def record(self, key):
        frame = sys._getframe(2)
        while frame.f_code.co_filename == os.__file__:  # os.getenv and friends
            frame = frame.f_back
        reads.append([frame.f_code.co_filename, key])

    def get(self, key, default=None):
        self.record(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.record(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.record(key)
        return super().__contains__(key)

os.environ = Recorded(os.environ)
import chatsite.settings
print(json.dumps(reads))
"""


def python_under(code: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python with only these of the table's variables set."""
    names = {variable.name for variable in VARIABLES}
    child = {name: value for name, value in os.environ.items() if name not in names}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**child, **environ},
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_under(**environ: str) -> dict[str, Any]:
    """Every setting chatsite/settings.py makes under this environment, as JSON has them."""
    result = python_under(IMPORT_SETTINGS, **environ)
    assert result.returncode == 0, result.stderr
    settings: dict[str, Any] = json.loads(result.stdout)
    return settings


def test_settings_read_the_environment_only_through_the_table() -> None:
    # PostgreSQL, Sentinel and HTTPS: every variable is read on one of these branches.
    result = python_under(
        RECORD_READS,
        SECRET_KEY=KEY,
        DATABASE_URL="postgres://chat@db.example/chat",
        REDIS_SENTINELS="s1:26379",
        HTTPS="true",
    )
    assert result.returncode == 0, result.stderr
    reads = json.loads(result.stdout)
    # The table's variables read themselves (chatsite/variables.py), and nothing else does.
    reader = variables.__file__
    assert {name for path, name in reads if path == reader} == {v.name for v in VARIABLES}
    elsewhere = [read for read in reads if read[0].startswith(str(ROOT / "chatsite"))]
    assert [read for read in elsewhere if read[0] != reader] == []


def test_settings_hold_the_table_defaults_when_nothing_is_set() -> None:
    settings = settings_under(SECRET_KEY=KEY)
    same_name = {
        v.name: v.default for v in VARIABLES if v.default is not None and v.name in settings
    }
    assert {name: settings[name] for name in same_name} == same_name
    assert len(same_name) > len(VARIABLES) / 2  # the others are derived or renamed
    assert settings["OPENAI_SIMULATED"] is True
    assert settings["OPENAI_BASE_URL"] == "http://127.0.0.1:8001/v1"
    assert settings["OPENAI_MODEL"] == "simulated"
    assert settings["OPENAI_PROVIDER_NAME"] == "Simulator"
    assert settings["PROVIDER_KEY_SECRET"] == KEY
    assert settings["MAX_FRAME_CHARS"] == 6 * 32000 + 1024
    assert settings["DB_POOL_SIZE"] == 8 + 4
    assert settings["REDIS_URLS"] == settings["REDIS_SENTINELS"] == settings["REDIS_HOSTS"] == []
    assert settings["CHANNEL_LAYERS"] == {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    }
    database = settings["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == str(ROOT / "db.sqlite3")
    assert database["OPTIONS"] == {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    assert settings["SECURE_HSTS_SECONDS"] == 0
    assert settings["SESSION_COOKIE_SECURE"] is settings["SECURE_SSL_REDIRECT"] is False
    assert "SECURE_PROXY_SSL_HEADER" not in settings
    assert (settings["AXES_FAILURE_LIMIT"], settings["AXES_COOLOFF_TIME"]) == (
        5,
        "datetime.timedelta(seconds=900)",
    )
    assert settings["CLIENT_IP_META_KEY"] == ""
    assert settings["LOGGING"]["handlers"]["console"]["formatter"] == "plain"
    assert settings["LOGGING"]["loggers"]["streaming"] == {"level": "INFO"}


def test_settings_need_a_secret_key_unless_debugging() -> None:
    refused = python_under(IMPORT_SETTINGS)
    assert refused.returncode != 0
    assert "ImproperlyConfigured: Set SECRET_KEY to a long random string" in refused.stderr
    debugging = settings_under(DEBUG="true")
    assert debugging["SECRET_KEY"] == "insecure-development-key-only-for-debug"


@pytest.mark.parametrize(
    ("environ", "simulated", "base_url", "model", "provider"),
    [
        ({"SIMULATOR_PORT": "9001"}, True, "http://127.0.0.1:9001/v1", "simulated", "Simulator"),
        (
            {"OPENAI_API_KEY": "sk-test"},
            False,
            "https://api.openai.com/v1",
            "gpt-4o-mini",
            "Default",
        ),
        (
            {"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"},
            False,
            "http://127.0.0.1:11434/v1",
            "gpt-4o-mini",
            "Default",
        ),
        (
            {"OPENAI_API_KEY": "k", "OPENAI_MODEL": "m", "OPENAI_PROVIDER_NAME": " Mine "},
            False,
            "https://api.openai.com/v1",
            "m",
            "Mine",
        ),
    ],
)
def test_settings_choose_the_simulator_only_with_no_key_and_no_base_url(
    environ: dict[str, str], simulated: bool, base_url: str, model: str, provider: str
) -> None:
    settings = settings_under(SECRET_KEY=KEY, **environ)
    assert settings["OPENAI_SIMULATED"] is simulated
    assert settings["OPENAI_BASE_URL"] == base_url
    assert settings["OPENAI_MODEL"] == model
    assert settings["OPENAI_PROVIDER_NAME"] == provider


def test_settings_on_postgresql_pool_connections_and_keep_what_the_url_sets() -> None:
    keepalives = {
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": 30_000,
    }
    # After an outage, seconds (not minutes) between tries to reconnect.
    reconnecting = {"timeout": 3, "reconnect_timeout": 5}
    url = "postgres://chat:pw@db.example:5432/chat"
    settings = settings_under(
        SECRET_KEY=KEY, DATABASE_URL=f"{url}?sslmode=require&connect_timeout=3", DB_THREADS="3"
    )
    assert settings["DATABASES"]["default"]["OPTIONS"] == {
        "sslmode": "require",
        "connect_timeout": 3,
        **keepalives,
        "pool": {"min_size": 2, "max_size": 3 + 4, **reconnecting},
    }
    pooled = settings_under(SECRET_KEY=KEY, DATABASE_URL=url, DB_POOL_SIZE="20")
    assert pooled["DATABASES"]["default"]["OPTIONS"] == {
        "connect_timeout": 10,
        **keepalives,
        "pool": {"min_size": 2, "max_size": 20, **reconnecting},
    }


def test_settings_with_redis_urls_shard_the_layer_over_them() -> None:
    urls = ["redis://a.example:6379/0", "redis://b.example:6379/1"]
    settings = settings_under(SECRET_KEY=KEY, REDIS_URL=",".join(urls), CHANNEL_LAYER="core")
    assert settings["REDIS_HOSTS"] == [{"address": url} for url in urls]
    layer = settings["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert layer["CONFIG"] == {
        "hosts": [
            {
                "address": url,
                "socket_timeout": None,
                "socket_connect_timeout": 5.0,
                "max_connections": 1000,
            }
            for url in urls
        ],
        "capacity": 10000,
        "expiry": 60,
    }


def test_settings_with_sentinels_find_each_master_through_them() -> None:
    settings = settings_under(
        SECRET_KEY=KEY,
        REDIS_SENTINELS="s1.example:26379,[::1]:26380",
        REDIS_SENTINEL_MASTERS="one,two",
        REDIS_PASSWORD="pw",
        REDIS_SENTINEL_PASSWORD="spw",
    )
    hosts = settings["REDIS_HOSTS"]
    for host in hosts:
        assert host["sentinel_kwargs"].pop("retry").startswith("<redis.asyncio.retry.Retry")
    assert hosts == [
        {
            "sentinels": [["s1.example", 26379], ["::1", 26380]],
            "master_name": name,
            "sentinel_kwargs": {
                "socket_timeout": 0.5,
                "socket_connect_timeout": 0.5,
                "password": "spw",
            },
            "password": "pw",
        }
        for name in ("one", "two")
    ]
    layer = settings["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "chatsite.pubsub.PipelinedPubSubChannelLayer"
    assert [host["master_name"] for host in layer["CONFIG"]["hosts"]] == ["one", "two"]


def test_settings_with_https_behind_a_proxy() -> None:
    settings = settings_under(
        SECRET_KEY=KEY,
        HTTPS="true",
        HSTS_PRELOAD="false",
        CLIENT_IP_HEADER="X-Real-IP",
        LOG_FORMAT=" JSON ",
        LOG_LEVEL="debug",
    )
    assert settings["SECURE_HSTS_SECONDS"] == 31_536_000
    assert (settings["SECURE_HSTS_INCLUDE_SUBDOMAINS"], settings["SECURE_HSTS_PRELOAD"]) == (
        True,
        False,
    )
    assert settings["SESSION_COOKIE_SECURE"] is settings["CSRF_COOKIE_SECURE"] is True
    assert settings["SECURE_SSL_REDIRECT"] is True
    assert settings["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert settings["CLIENT_IP_META_KEY"] == "HTTP_X_REAL_IP"
    assert settings["LOGGING"]["handlers"]["console"]["formatter"] == "json"
    assert settings["LOGGING"]["loggers"]["streaming"] == {"level": "DEBUG"}


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        # Once read with a bare int(): a ValueError traceback that named no variable.
        ({"SIMULATOR_PORT": "eighty"}, "SIMULATOR_PORT must be a whole number, not 'eighty'."),
        ({"OPENAI_MAX_RETRIES": "3.5"}, "OPENAI_MAX_RETRIES must be a whole number, not '3.5'."),
        ({"MAX_MESSAGE_CHARS": "32k"}, "MAX_MESSAGE_CHARS must be a whole number, not '32k'."),
        ({"MAX_MESSAGE_CHARS": "0"}, "MAX_MESSAGE_CHARS must be at least 1, not '0'."),
        # Across two variables; the other such checks are tested beside what they guard.
        ({"MAX_FRAME_CHARS": "2000"}, "MAX_FRAME_CHARS must be at least MAX_MESSAGE_CHARS + 1024"),
        # Single sign-on: a client to name, and secrets never over plain HTTP to another host.
        ({"OIDC_SERVER_URL": "https://id.example.com"}, "With OIDC_SERVER_URL, set OIDC_CLIENT_ID"),
        (
            {"OIDC_SERVER_URL": "http://id.example.com", "OIDC_CLIENT_ID": "c"},
            "OIDC_SERVER_URL must be an https:// URL (http:// only to this host).",
        ),
        ({"LOCAL_LOGIN": "staff"}, "LOCAL_LOGIN must be everyone or superusers, not 'staff'."),
    ],
)
def test_settings_refuse_an_environment_they_cannot_use_saying_why(
    environ: dict[str, str], complaint: str
) -> None:
    result = python_under(IMPORT_SETTINGS, SECRET_KEY=KEY, **environ)
    assert result.returncode != 0
    assert f"django.core.exceptions.ImproperlyConfigured: {complaint}" in result.stderr
    assert "ValueError" not in result.stderr
    assert result.stdout == ""  # no settings came of it
